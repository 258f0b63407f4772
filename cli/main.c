/*
 * main.c -- the `tributary` command: global options and dispatch.
 *
 *   tributary [--data-dir DIR] [--config FILE] COMMAND [ARGS...]
 *
 * The two global options may also come anywhere among the command's
 * arguments, as in `tributary serve --config F`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/log.h"

static const char *usage_text =
    "usage: tributary [--data-dir DIR] [--config FILE] COMMAND [ARGS...]\n"
    "\n"
    "A DynamoDB-compatible table engine whose write-ahead log is a change stream.\n"
    "Items and keys are DynamoDB JSON, e.g. '{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}}',\n"
    "given inline, as file://PATH, or as - to read standard input.\n"
    "\n"
    "Commands:\n"
    "  serve [--listen HOST:PORT]   the DynamoDB-compatible HTTP API (default 127.0.0.1:8000)\n"
    "  kafka-mock [--brokers N]     a mock Kafka cluster for development and tests\n"
    "  table create NAME --partition-key NAME:TYPE [--sort-key NAME:TYPE]\n"
    "  table list | table describe NAME | table delete NAME\n"
    "  put TABLE ITEM_JSON          write an item (replaces any item with its key)\n"
    "  get TABLE KEY_JSON           read an item (strongly consistent)\n"
    "  delete TABLE KEY_JSON        delete an item\n"
    "  update TABLE KEY_JSON --set NAME=VALUE_JSON --remove NAME ...\n"
    "  query TABLE --partition VALUE_JSON [--sort OP VALUE_JSON [VALUE_JSON]]\n"
    "  scan TABLE [--segment I --total-segments N]\n"
    "  wal dump [--from LSN]        print WAL records\n"
    "  wal verify                   check every WAL record's CRC\n"
    "  history TABLE --key KEY_JSON [--since T] [--until T]\n"
    "                               every version of one item that the WAL holds\n"
    "  stream tail TABLE [--from trim_horizon|latest|SEQ] [--format json|pretty]\n"
    "                               follow a table's stream live from a server\n"
    "  config doc | config show     the settings reference / the current settings\n"
    "\n"
    "Global options (before the command or among its arguments):\n"
    "  --data-dir DIR   data directory (default ./tributary-data, or data_dir in the config)\n"
    "  --config FILE    YAML config file (see `tributary config doc`)\n"
    "  --help           this text; `tributary COMMAND --help` for a command\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed, 2 bad command line.\n";

int cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

int cli_no_options(const char *cmd, int argc, char **argv, int from) {
  for (int i = from; i < argc; i++)
    if (argv[i][0] == '-' && argv[i][1])
      return cli_usage_err(cmd, "unknown option %s", argv[i]);
  return 0;
}

const char *cli_exception_name(trb_err rc) {
  switch (rc) {
    case TRB_EINVAL: return "ValidationException";
    case TRB_ESERIAL: return "SerializationException";
    case TRB_ENOTFOUND: return "ResourceNotFoundException";
    case TRB_EEXISTS: return "ResourceInUseException";
    case TRB_ECONDFAIL: return "ConditionalCheckFailedException";
    case TRB_ELIMIT: return "ValidationException";
    case TRB_ECONFIG: return "ConfigError";
    case TRB_ECORRUPT: return "CorruptionError";
    default: return "InternalServerError";
  }
}

int cli_fail(trb_err rc, const trb_status *st) {
  fprintf(stderr, "tributary: %s: %s\n", cli_exception_name(rc),
          st && st->msg[0] ? st->msg : trb_err_str(rc));
  return CLI_FAIL;
}

int cli_usage_err(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "tributary: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see `tributary %s --help`)\n", cmd);
  return CLI_USAGE;
}

trb_engine *cli_engine(cli *c) {
  if (c->eng) return c->eng;
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = c->cfg.data_dir;
  o.sync_mode = c->cfg.wal.sync == TRB_CFG_SYNC_INTERVAL ? TRB_WAL_SYNC_INTERVAL
                                                         : TRB_WAL_SYNC_ALWAYS;
  o.sync_interval_ms = c->cfg.wal.sync_interval_ms;
  o.segment_size = c->cfg.wal.segment_size;
  o.commit_delay_us = c->cfg.wal.commit_delay_us;
  o.item_cache_bytes = c->cfg.store.item_cache;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_open(&o, &c->eng, &st);
  if (rc) {
    fprintf(stderr, "tributary: cannot open data directory %s: %s\n", c->cfg.data_dir,
            trb_status_msg(&st));
    c->eng = NULL;
  }
  return c->eng;
}

void cli_close(cli *c) {
  trb_engine_close(c->eng);
  c->eng = NULL;
}

/* JSON arguments may be given inline, as file://PATH (as the AWS CLI
 * accepts), or as - for standard input: items can be larger than one
 * command-line argument may be. Returns malloc'ed text or NULL (printed). */
static char *arg_text(const char *arg, const char *what) {
  FILE *f = NULL;
  if (!strcmp(arg, "-")) f = stdin;
  else if (!strncmp(arg, "file://", 7) && !(f = fopen(arg + 7, "rb"))) {
    fprintf(stderr, "tributary: %s: cannot read %s: %s\n", what, arg + 7, strerror(errno));
    return NULL;
  }
  if (!f) return strdup(arg);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n - 1 == 0) {
      char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
      if (!nb) {
        free(buf);
        buf = NULL;
        fprintf(stderr, "tributary: %s: input larger than 64 MiB\n", what);
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  if (f != stdin) fclose(f);
  if (buf) buf[n] = 0;
  return buf;
}

trb_av *cli_parse_item(const char *arg, const char *what) {
  trb_av *v = NULL;
  trb_status st;
  trb_status_init(&st);
  char *text = arg_text(arg, what);
  if (!text) return NULL;
  trb_err rc = trb_item_from_json_text(text, strlen(text), &v, &st);
  free(text);
  if (rc) {
    fprintf(stderr, "tributary: %s: %s: %s\n", cli_exception_name(rc), what, trb_status_msg(&st));
    return NULL;
  }
  return v;
}

trb_av *cli_parse_value(const char *arg, const char *what) {
  trb_av *v = NULL;
  trb_status st;
  trb_status_init(&st);
  char *text = arg_text(arg, what);
  if (!text) return NULL;
  trb_err rc = trb_av_from_json_text(text, strlen(text), &v, &st);
  free(text);
  if (rc) {
    fprintf(stderr, "tributary: %s: %s: %s\n", cli_exception_name(rc), what, trb_status_msg(&st));
    return NULL;
  }
  return v;
}

void cli_print_item(FILE *f, const trb_av *item) {
  char *s = trb_item_to_json_text(item);
  if (s) fprintf(f, "%s\n", s);
  free(s);
}

/* argv[*i] as a global option: 1 taken (its value too, *i moved past
 * it), 0 not one, -1 its value missing (said on stderr). */
static int global_opt(int argc, char **argv, int *i, const char **data_dir,
                      const char **config) {
  const char *a = argv[*i];
  if (!strcmp(a, "--data-dir") || !strcmp(a, "--config")) {
    if (*i + 1 >= argc) {
      fprintf(stderr, "tributary: %s needs a value (see `tributary --help`)\n", a);
      return -1;
    }
    *(a[2] == 'd' ? data_dir : config) = argv[++*i];
  } else if (!strncmp(a, "--data-dir=", 11)) {
    *data_dir = a + 11;
  } else if (!strncmp(a, "--config=", 9)) {
    *config = a + 9;
  } else {
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  cli c;
  memset(&c, 0, sizeof c);
  c.prog = argv[0];
  trb_config_defaults(&c.cfg);
  const char *data_dir = NULL, *config = NULL;
  int i = 1, g;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      fputs(usage_text, stdout);
      return CLI_OK;
    } else if (!strcmp(a, "--version")) {
      printf("tributary 0.1.0\n");
      return CLI_OK;
    } else if ((g = global_opt(argc, argv, &i, &data_dir, &config)) != 0) {
      if (g < 0) return CLI_USAGE;
    } else if (a[0] == '-') {
      fprintf(stderr, "tributary: unknown option %s (see `tributary --help`)\n", a);
      return CLI_USAGE;
    } else {
      break;
    }
  }
  if (i >= argc) {
    fputs(usage_text, stderr);
    return CLI_USAGE;
  }
  /* The global options may follow the command too (`tributary serve
   * --config F`): taken out of its arguments. */
  int sub_argc = 1;
  char **sub_argv = argv + i;
  for (int j = i + 1; j < argc; j++) {
    if ((g = global_opt(argc, argv, &j, &data_dir, &config)) < 0) return CLI_USAGE;
    if (!g) sub_argv[sub_argc++] = argv[j];
  }
  sub_argv[sub_argc] = NULL;
  trb_status st;
  trb_status_init(&st);
  if (config && trb_config_load(config, &c.cfg, &st)) {
    fprintf(stderr, "tributary: %s\n", trb_status_msg(&st));
    return CLI_FAIL;
  }
  if (data_dir && trb_config_set(&c.cfg, "data_dir", data_dir, &st)) {
    fprintf(stderr, "tributary: --data-dir: %s\n", trb_status_msg(&st));
    return CLI_USAGE;
  }
  if (!strcmp(c.cfg.log_level, "debug")) trb_log_set_level(TRB_LOG_DEBUG);
  else if (!strcmp(c.cfg.log_level, "warn")) trb_log_set_level(TRB_LOG_WARN);
  else if (!strcmp(c.cfg.log_level, "error")) trb_log_set_level(TRB_LOG_ERROR);

  const char *cmd = argv[i];
  int rc;
  if (!strcmp(cmd, "table")) rc = cmd_table(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "put")) rc = cmd_put(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "get")) rc = cmd_get(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "delete")) rc = cmd_delete(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "update")) rc = cmd_update(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "query")) rc = cmd_query(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "scan")) rc = cmd_scan(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "wal")) rc = cmd_wal(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "config")) rc = cmd_config(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "serve")) rc = cmd_serve(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "kafka-mock")) rc = cmd_kafka_mock(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "history")) rc = cmd_history(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "stream")) rc = cmd_stream(&c, sub_argc, sub_argv);
  else if (!strcmp(cmd, "help")) {
    fputs(usage_text, stdout);
    rc = CLI_OK;
  } else {
    fprintf(stderr, "tributary: unknown command '%s' (see `tributary --help`)\n", cmd);
    rc = CLI_USAGE;
  }
  cli_close(&c);
  return rc;
}
