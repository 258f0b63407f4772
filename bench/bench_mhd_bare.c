/*
 * bench_mhd_bare.c -- the HTTP layer's ceilings for bench/bench_http.sh: a
 * bare libmicrohttpd server (same threading mode as tributary's) answering
 * every request with a fixed small JSON body.
 *
 *   bench_mhd_bare PORT [THREADS] [--durable FILE]
 *
 * With --durable, every request's body is made durable before it is
 * answered, the least a durable write over HTTP must do: the connection is
 * suspended (as tributary's PutItem does), one sync thread appends the
 * bodies of all requests waiting to FILE with one pwrite, fdatasyncs it
 * (one fdatasync for the whole group, as tributary's group commit), and
 * resumes their connections. FILE is preallocated and zero-filled (as
 * tributary's WAL segments are), so an fdatasync is a pure data flush.
 * No JSON, no state store, no log format: the ceiling of a durable PutItem
 * on this machine's HTTP layer and disk.
 */
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/http.h" /* TRB_HTTP_CONN_MEMORY: the same connection memory as tributary's */

static const char body[] = "{}";

#define DUR_FILE_SIZE (256u << 20) /* wraps around: only the syncs matter */
#define DUR_MAX_BODY (64u << 10)

/* One request's state (con_cls), durable mode only. */
typedef struct req {
  struct MHD_Connection *c;
  char buf[DUR_MAX_BODY];
  size_t len;
  int synced;
  struct req *next;
} req;

static struct {
  int fd;
  off_t off;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  req *head, **tail;
  int stop;
} g = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

#define WBUF_SIZE (32u << 20)

static void put(const char *wbuf, size_t *n) {
  if (g.off + (off_t)*n > (off_t)DUR_FILE_SIZE) g.off = 0;
  if (pwrite(g.fd, wbuf, *n, g.off) != (ssize_t)*n) {
    perror("bench_mhd_bare: pwrite");
    exit(1);
  }
  g.off += (off_t)*n;
  *n = 0;
}

static void *sync_main(void *arg) {
  (void)arg;
  char *wbuf = malloc(WBUF_SIZE);
  if (!wbuf) abort();
  pthread_mutex_lock(&g.mu);
  for (;;) {
    while (!g.head && !g.stop) pthread_cond_wait(&g.cv, &g.mu);
    if (g.stop) break;
    req *grp = g.head;
    g.head = NULL;
    g.tail = &g.head;
    pthread_mutex_unlock(&g.mu);
    size_t n = 0;
    for (req *r = grp; r; r = r->next) { /* a group's bodies, one pwrite per 32 MB */
      if (n + r->len > WBUF_SIZE) put(wbuf, &n);
      memcpy(wbuf + n, r->buf, r->len);
      n += r->len;
    }
    put(wbuf, &n);
    if (fdatasync(g.fd) != 0) {
      perror("bench_mhd_bare: fdatasync");
      exit(1);
    }
    for (req *r = grp, *nx; r; r = nx) {
      nx = r->next;
      r->synced = 1;
      MHD_resume_connection(r->c);
    }
    pthread_mutex_lock(&g.mu);
  }
  pthread_mutex_unlock(&g.mu);
  free(wbuf);
  return NULL;
}

static enum MHD_Result answer(struct MHD_Connection *c) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/x-amz-json-1.0");
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)cls; (void)url; (void)method; (void)version;
  if (g.fd < 0) {
    if (!*con_cls) { /* first call: headers only */
      *con_cls = (void *)1;
      return MHD_YES;
    }
    if (*upload_size) { /* swallow the body */
      *upload_size = 0;
      return MHD_YES;
    }
    return answer(c);
  }
  req *r = *con_cls;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    r->c = c;
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_size) {
    size_t k = *upload_size < DUR_MAX_BODY - r->len ? *upload_size : DUR_MAX_BODY - r->len;
    memcpy(r->buf + r->len, upload, k);
    r->len += k;
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->synced) return answer(c);
  MHD_suspend_connection(c);
  pthread_mutex_lock(&g.mu);
  *g.tail = r;
  g.tail = &r->next;
  pthread_cond_signal(&g.cv);
  pthread_mutex_unlock(&g.mu);
  return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls; (void)c; (void)toe;
  if (g.fd >= 0) free(*con_cls);
  *con_cls = NULL;
}

int main(int argc, char **argv) {
  const char *durable = NULL;
  int pos = 0;
  unsigned port = 0, threads = 2;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: bench_mhd_bare PORT [THREADS] [--durable FILE]\n"
             "  A bare libmicrohttpd server answering {} to every request (THREADS\n"
             "  workers, default 2). With --durable FILE every request's body is\n"
             "  appended to FILE and fdatasync'ed (one sync per group of waiting\n"
             "  requests) before its answer. Stops on SIGTERM or SIGINT.\n");
      return 0;
    } else if (!strcmp(argv[i], "--durable") && i + 1 < argc) {
      durable = argv[++i];
    } else if (argv[i][0] != '-' && pos < 2) {
      unsigned v = (unsigned)strtoul(argv[i], NULL, 10);
      if (pos++ == 0) port = v;
      else threads = v;
    } else {
      fprintf(stderr, "bench_mhd_bare: unexpected argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (!port || port > 65535 || !threads) {
    fprintf(stderr, "usage: bench_mhd_bare PORT [THREADS] [--durable FILE]\n");
    return 2;
  }
  pthread_t thr;
  if (durable) {
    g.tail = &g.head;
    g.fd = open(durable, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char *zero = calloc(1, 1u << 20);
    if (g.fd < 0 || !zero || posix_fallocate(g.fd, 0, DUR_FILE_SIZE) != 0) {
      perror("bench_mhd_bare: cannot prepare the durable file");
      return 1;
    }
    for (off_t o = 0; o < (off_t)DUR_FILE_SIZE; o += 1u << 20)
      if (pwrite(g.fd, zero, 1u << 20, o) != 1 << 20) {
        perror("bench_mhd_bare: cannot zero the durable file");
        return 1;
      }
    free(zero);
    if (fsync(g.fd) != 0 || pthread_create(&thr, NULL, sync_main, NULL)) {
      perror("bench_mhd_bare: cannot start the sync thread");
      return 1;
    }
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (durable) flags |= MHD_ALLOW_SUSPEND_RESUME;
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)TRB_HTTP_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "bench_mhd_bare: cannot start on port %u\n", port);
    return 1;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sig;
  sigwait(&set, &sig);
  if (durable) {
    pthread_mutex_lock(&g.mu);
    g.stop = 1;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(thr, NULL);
  }
  MHD_stop_daemon(d);
  return 0;
}
