/*
 * cmd_serve.c -- `tributary serve`: the DynamoDB-compatible HTTP server
 * over the embedded engine. Stops cleanly on SIGTERM/SIGINT: the HTTP
 * server finishes the requests in flight (their writes are answered), then
 * the engine syncs and closes its WAL.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamo.h"
#include "api/http.h"
#include "api/stream_iter.h"
#include "capture/tailer.h"
#include "sinks/file_sink.h"
#include "transform/streams.h"
#include "cli/cli.h"
#include "util/log.h"

static const char *serve_help =
    "usage: tributary serve [--listen HOST:PORT] [--threads N]\n"
    "\n"
    "Serves the DynamoDB API and the DynamoDB Streams API over HTTP on HOST:PORT\n"
    "(default 127.0.0.1:8000, as DynamoDB Local; port 0 picks a free port). Point any\n"
    "AWS SDK or the AWS CLI at it:\n"
    "  aws dynamodb list-tables --endpoint-url http://127.0.0.1:8000\n"
    "With api.access_key_id and api.secret_access_key in the config file every\n"
    "request's SigV4 signature is verified; without them any signature is accepted\n"
    "and the server refuses to listen on anything but loopback.\n"
    "Stops on SIGTERM or SIGINT after answering the requests in flight.\n";

static int is_loopback(const char *listen) {
  return !strncmp(listen, "127.", 4) || !strncmp(listen, "localhost:", 10) ||
         !strncmp(listen, "[::1]:", 6);
}

int cmd_serve(cli *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    trb_status st;
    trb_status_init(&st);
    if (cli_is_help(argv[i])) {
      fputs(serve_help, stdout);
      return CLI_OK;
    } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
      if (trb_config_set(&c->cfg, "api.listen", argv[++i], &st))
        return cli_usage_err("serve", "--listen: %s", trb_status_msg(&st));
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      if (trb_config_set(&c->cfg, "api.threads", argv[++i], &st))
        return cli_usage_err("serve", "--threads: %s", trb_status_msg(&st));
    } else {
      return cli_usage_err("serve", "unknown or incomplete option %s", argv[i]);
    }
  }
  int auth = c->cfg.api.access_key_id[0] != 0;
  if (auth != (c->cfg.api.secret_access_key[0] != 0)) {
    fprintf(stderr, "tributary: api.access_key_id and api.secret_access_key go together\n");
    return CLI_FAIL;
  }
  if (!auth && !is_loopback(c->cfg.api.listen)) {
    fprintf(stderr,
            "tributary: refusing to listen on %s without authentication: set "
            "api.access_key_id and api.secret_access_key in the config file, or listen on "
            "127.0.0.1\n",
            c->cfg.api.listen);
    return CLI_FAIL;
  }
  /* Signals are taken by sigwait below; block them before any thread starts
   * so every thread inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  trb_engine *e = cli_engine(c);
  if (!e) return CLI_FAIL;
  /* The stream index (DynamoDB Streams) and the key that signs its shard
   * iterators, kept in the data directory so iterators survive a restart. */
  trb_status sst;
  trb_status_init(&sst);
  char keypath[TRB_CONFIG_PATH_MAX + 32];
  snprintf(keypath, sizeof keypath, "%s/stream-iterator.key", c->cfg.data_dir);
  trb_iter_key *ikey = NULL;
  if (trb_iter_key_load(keypath, &ikey, &sst)) {
    fprintf(stderr, "tributary: %s\n", trb_status_msg(&sst));
    return CLI_FAIL;
  }
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = trb_engine_wal(e);
  so.shards = c->cfg.streams.shards;
  so.rollover_us = (int64_t)c->cfg.streams.rollover_s * 1000000;
  so.region = c->cfg.region;
  trb_streams *streams = NULL;
  if (trb_streams_start(&so, &streams, &sst)) {
    fprintf(stderr, "tributary: %s\n", trb_status_msg(&sst));
    trb_iter_key_destroy(ikey);
    return CLI_FAIL;
  }
  /* The sinks, each fed by its own tailer from its checkpoint. */
  trb_tailer *file_tailer = NULL;
  if (c->cfg.file_sink.dir[0]) {
    trb_file_sink_opts fo = {.dir = c->cfg.file_sink.dir,
                             .rotate_bytes = c->cfg.file_sink.rotate_bytes,
                             .rotate_us = (int64_t)c->cfg.file_sink.rotate_s * 1000000};
    trb_sink *fs = NULL;
    trb_tailer_opts to = {.wal = trb_engine_wal(e), .streams = streams, .region = c->cfg.region};
    if (trb_file_sink_create(&fo, &fs, &sst) || trb_tailer_start(&to, fs, &file_tailer, &sst)) {
      fprintf(stderr, "tributary: the file sink in %s cannot start: %s\n", c->cfg.file_sink.dir,
              trb_status_msg(&sst));
      trb_streams_stop(streams);
      trb_iter_key_destroy(ikey);
      return CLI_FAIL;
    }
    trb_log_info("serve", "audit file sink writing to %s", c->cfg.file_sink.dir);
  }
  trb_sigv4_key key = {c->cfg.api.access_key_id, c->cfg.api.secret_access_key};
  trb_api_opts ao = {.region = c->cfg.region, .keys = auth ? &key : NULL, .nkeys = auth ? 1 : 0,
                     .streams = streams, .iter_key = ikey};
  trb_api *api = trb_api_create(e, &ao);
  if (!api) {
    fprintf(stderr, "tributary: out of memory\n");
    trb_tailer_stop(file_tailer);
    trb_streams_stop(streams);
    trb_iter_key_destroy(ikey);
    return CLI_FAIL;
  }
  trb_http_opts ho = {.listen = c->cfg.api.listen, .threads = c->cfg.api.threads};
  trb_http_server *srv = NULL;
  trb_status st;
  trb_status_init(&st);
  if (trb_http_start(&ho, trb_api_handle, trb_api_reject, api, &srv, &st)) {
    fprintf(stderr, "tributary: cannot listen on %s: %s\n", c->cfg.api.listen,
            trb_status_msg(&st));
    trb_api_destroy(api);
    trb_tailer_stop(file_tailer);
    trb_streams_stop(streams);
    trb_iter_key_destroy(ikey);
    return CLI_FAIL;
  }
  char where[300];
  snprintf(where, sizeof where, "%s", c->cfg.api.listen);
  char *colon = strrchr(where, ':');
  if (colon) snprintf(colon + 1, sizeof where - (size_t)(colon + 1 - where), "%d",
                      trb_http_port(srv));
  trb_log_info("serve",
               "listening on http://%s (data directory %s; authentication %s); stop with "
               "SIGTERM or Ctrl-C",
               where, c->cfg.data_dir,
               auth ? "on: SigV4 signatures are verified"
                    : "off: any signature is accepted, loopback only");
  int sig = 0;
  sigwait(&set, &sig);
  trb_log_info("serve", "%s received: finishing requests in flight", sig == SIGINT ? "SIGINT" : "SIGTERM");
  trb_http_stop(srv);
  trb_api_destroy(api);
  trb_tailer_stop(file_tailer);
  trb_streams_stop(streams);
  trb_iter_key_destroy(ikey);
  cli_close(c);
  trb_log_info("serve", "stopped; the WAL is synced");
  return CLI_OK;
}
