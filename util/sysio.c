/* sysio.c -- the syscall seam (see sysio.h). */
#include "util/sysio.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int sys_open(const char *path, int flags, mode_t mode) {
  return open(path, flags | O_CLOEXEC, mode);
}

static const trb_sysio defaults = {
    .open = sys_open,
    .pwrite = pwrite,
    .write = write,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .rename = rename,
    .ftruncate = ftruncate,
    .fallocate = fallocate,
    .unlink = unlink,
    .statvfs = statvfs,
};

trb_sysio trb_sys = {
    .open = sys_open,
    .pwrite = pwrite,
    .write = write,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .rename = rename,
    .ftruncate = ftruncate,
    .fallocate = fallocate,
    .unlink = unlink,
    .statvfs = statvfs,
};

void trb_sysio_reset(void) { trb_sys = defaults; }

ssize_t trb_sys_pwrite_all(int fd, const void *buf, size_t n, off_t off) {
  const char *p = buf;
  size_t done = 0;
  while (done < n) {
    ssize_t w = trb_sys.pwrite(fd, p + done, n - done, off + (off_t)done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = ENOSPC;
      return -1;
    }
    done += (size_t)w;
  }
  return (ssize_t)done;
}

int trb_sys_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = trb_sys.fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

int trb_sys_write_file_durable(const char *path, const void *buf, size_t n) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 8);
  char *dcopy = strdup(path);
  int fd = -1, rc = -1, e = 0;
  if (!tmp || !dcopy) {
    e = ENOMEM;
    goto done;
  }
  snprintf(tmp, plen + 8, "%s.tmp", path);
  fd = trb_sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { e = errno; goto done; }
  if (trb_sys_pwrite_all(fd, buf, n, 0) < 0) { e = errno; goto done; }
  if (trb_sys.fsync(fd) < 0) { e = errno; goto done; }
  close(fd);
  fd = -1;
  if (trb_sys.rename(tmp, path) < 0) { e = errno; goto done; }
  if (trb_sys_fsync_dir(dirname(dcopy)) < 0) { e = errno; goto done; }
  rc = 0;
done:
  if (fd >= 0) close(fd);
  if (rc < 0 && tmp) unlink(tmp);
  free(tmp);
  free(dcopy);
  if (rc < 0) errno = e;
  return rc;
}

int trb_sys_free_bytes(const char *path, uint64_t *out) {
  struct statvfs sv;
  if (trb_sys.statvfs(path, &sv) != 0) return -1;
  *out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
  return 0;
}
