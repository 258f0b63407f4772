/*
 * bench_mhd_bare.c -- the HTTP layer's ceiling for bench/bench_http.sh: a
 * bare libmicrohttpd server (same threading mode as tributary's) answering
 * every request with a fixed small JSON body.
 *
 *   bench_mhd_bare PORT [THREADS]
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/http.h" /* TRB_HTTP_CONN_MEMORY: the same connection memory as tributary's */

static const char body[] = "{}";

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)cls; (void)url; (void)method; (void)version; (void)upload;
  if (!*con_cls) { /* first call: headers only */
    *con_cls = (void *)1;
    return MHD_YES;
  }
  if (*upload_size) { /* swallow the body */
    *upload_size = 0;
    return MHD_YES;
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/x-amz-json-1.0");
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_mhd_bare PORT [THREADS]\n");
    return 2;
  }
  unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]), NULL, NULL,
      handler, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)TRB_HTTP_CONN_MEMORY, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "cannot start\n");
    return 1;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sig;
  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  return 0;
}
