/*
 * sysio.h -- the syscall seam. Every write, sync, rename, truncate and
 * allocate that a durable format does goes through this table, so tests can
 * point an entry at a failing version (EIO, ENOSPC, short writes) the way
 * SQLite's aSyscall[] does. Production code never changes it.
 */
#ifndef TRB_SYSIO_H
#define TRB_SYSIO_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct trb_sysio {
  int (*open)(const char *path, int flags, mode_t mode);
  ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
  ssize_t (*write)(int fd, const void *buf, size_t n);
  int (*fdatasync)(int fd);
  int (*fsync)(int fd);
  int (*rename)(const char *from, const char *to);
  int (*ftruncate)(int fd, off_t len);
  int (*fallocate)(int fd, int mode, off_t off, off_t len);
  int (*unlink)(const char *path);
  int (*statvfs)(const char *path, struct statvfs *out); /* free space checks */
} trb_sysio;

/* The live table. Tests replace entries and call trb_sysio_reset() after. */
extern trb_sysio trb_sys;
void trb_sysio_reset(void);

/* Helpers built on the table. */
/* Writes all n bytes at off, retrying short writes and EINTR; -1 with errno
 * on failure (a short write that cannot progress reports the errno of the
 * failing call). */
ssize_t trb_sys_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* Durable replace (write temp, fsync, rename over, fsync the directory).
 * Returns 0 or -1 with errno. */
int trb_sys_write_file_durable(const char *path, const void *buf, size_t n);
/* Bytes an unprivileged writer may still use on path's filesystem
 * (statvfs through the table); -1 when it cannot be told. */
int trb_sys_free_bytes(const char *path, uint64_t *out);
/* fsync of a directory. 0 or -1 with errno. */
int trb_sys_fsync_dir(const char *dir);

#endif
