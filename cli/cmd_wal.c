/* cmd_wal.c -- `tributary wal dump|verify` and `tributary config doc|show`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

static const char *wal_help =
    "usage: tributary wal dump [--from LSN] [--limit N]\n"
    "       tributary wal verify\n"
    "\n"
    "dump prints WAL records from LSN (default: the first) in LSN order, one per line:\n"
    "  LSN, commit time (UTC, microseconds), event kind, table, transaction id, and the\n"
    "  keys, old image and new image as DynamoDB JSON. It does not change anything and\n"
    "  may run while a server uses the data directory.\n"
    "verify reads every segment and checks every record's length, LSN and CRC-32C.\n"
    "  Exit 0 when the log is sound (a torn tail, left by a crash and cut at the next\n"
    "  start, is reported but is not an error); exit 1 naming the segment file and byte\n"
    "  offset of the first bad record otherwise.\n";

static char *wal_dir(cli *c) {
  char *d = NULL;
  if (asprintf(&d, "%s/wal", c->cfg.data_dir) < 0) return NULL;
  return d;
}

static void print_image(const char *label, const void *p, size_t len, int present) {
  if (!present) return;
  trb_av *v = NULL;
  if (trb_av_decode(p, len, &v)) {
    printf(" %s=<undecodable %zu bytes>", label, len);
    return;
  }
  char *s = trb_item_to_json_text(v);
  printf(" %s=%s", label, s ? s : "?");
  free(s);
  trb_av_destroy(v);
}

static int wal_dump(cli *c, int argc, char **argv) {
  uint64_t from = 0;
  uint64_t limit = 0;
  for (int i = 2; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--from") && i + 1 < argc) {
      from = strtoull(argv[++i], &end, 10);
      if (*end || argv[i][0] == '-')
        return cli_usage_err("wal", "--from must be a non-negative integer LSN");
    } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
      limit = strtoull(argv[++i], &end, 10);
      if (*end || argv[i][0] == '-' || !limit)
        return cli_usage_err("wal", "--limit must be a positive integer");
    } else {
      return cli_usage_err("wal", "unknown or incomplete option %s", argv[i]);
    }
  }
  char *dir = wal_dir(c);
  trb_wal_opts o = {.dir = dir, .readonly = 1};
  trb_wal *w = NULL;
  trb_wal_reader *r = NULL;
  trb_status st;
  trb_status_init(&st);
  int rc = CLI_OK;
  trb_err err = trb_wal_open(&o, &w, &st);
  if (err) {
    rc = cli_fail(err, &st);
    goto done;
  }
  if (from < trb_wal_first_lsn(w)) from = trb_wal_first_lsn(w);
  if (!trb_wal_last_lsn(w) || from > trb_wal_last_lsn(w)) goto done;
  if ((err = trb_wal_reader_open(w, from, &r, &st))) {
    rc = cli_fail(err, &st);
    goto done;
  }
  uint64_t n = 0;
  while (!limit || n < limit) {
    trb_wal_rec rec;
    err = trb_wal_reader_next(r, &rec, 0, &st);
    if (err == TRB_ETIMEDOUT) break;
    if (err) {
      rc = cli_fail(err, &st);
      break;
    }
    time_t secs = (time_t)(rec.commit_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("lsn=%" PRIu64 " time=%s.%06dZ kind=%s table=%.*s table_id=%" PRIu64, rec.lsn, ts,
           (int)(rec.commit_us % 1000000), trb_wal_kind_name(rec.kind), (int)rec.table_len,
           rec.table, rec.table_id);
    if (rec.txn_id) printf(" txn=%" PRIu64, rec.txn_id);
    if (rec.flags & TRB_WAL_F_TTL) printf(" by=ttl");
    if (rec.kind == TRB_WAL_TABLE_CREATE || rec.kind == TRB_WAL_TABLE_UPDATE) {
      printf(" definition=%.*s", rec.new_len > 2 ? (int)rec.new_len - 2 : 0,
             rec.new_len > 2 ? (const char *)rec.new_img + 2 : "");
    } else if (rec.kind != TRB_WAL_TABLE_DELETE && rec.kind != TRB_WAL_TXN_COMMIT) {
      print_image("keys", rec.keys, rec.keys_len, rec.keys != NULL);
      print_image("old", rec.old_img, rec.old_len, rec.old_img != NULL);
      print_image("new", rec.new_img, rec.new_len, rec.new_img != NULL);
    }
    printf("\n");
    n++;
  }
done:
  trb_wal_reader_close(r);
  trb_wal_close(w);
  free(dir);
  return rc;
}

static int wal_verify(cli *c, int argc, char **argv) {
  (void)argv;
  if (cli_no_options("wal", argc, argv, 2)) return CLI_USAGE;
  if (argc > 2) return cli_usage_err("wal", "wal verify takes no arguments");
  char *dir = wal_dir(c);
  trb_wal_verify_result res;
  memset(&res, 0, sizeof res);
  trb_status st;
  trb_status_init(&st);
  trb_err err = trb_wal_verify(dir, &res, &st);
  int rc = CLI_OK;
  if (err) {
    rc = cli_fail(err, &st);
  } else if (!res.ok) {
    fprintf(stderr,
            "tributary: WAL corrupt: segment %s offset %" PRIu64 ": %s (expected LSN %" PRIu64
            "); %" PRIu64 " good records before it. Restore the data directory from a backup.\n",
            res.bad_segment, res.bad_offset, res.reason, res.bad_lsn, res.records);
    rc = CLI_FAIL;
  } else {
    printf("ok: %" PRIu64 " segments, %" PRIu64 " records, LSN %" PRIu64 "..%" PRIu64 "\n",
           res.segments, res.records, res.first_lsn, res.last_lsn);
    if (res.torn_tail)
      printf("torn tail: segment %s offset %" PRIu64 " (%s): a write that was never "
             "acknowledged; it is cut at the next start\n",
             res.bad_segment, res.bad_offset, res.reason);
  }
  free(dir);
  return rc;
}

int cmd_wal(cli *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (cli_is_help(argv[i])) {
      fputs(wal_help, stdout);
      return CLI_OK;
    }
  if (argc < 2) {
    fputs(wal_help, stderr);
    return CLI_USAGE;
  }
  if (!strcmp(argv[1], "dump")) return wal_dump(c, argc, argv);
  if (!strcmp(argv[1], "verify")) return wal_verify(c, argc, argv);
  return cli_usage_err("wal", "unknown wal command '%s'", argv[1]);
}

static const char *config_help =
    "usage: tributary config doc     every setting: name, type, default, range, help\n"
    "       tributary config show    the settings in effect (defaults + --config file),\n"
    "                                as YAML that --config accepts\n";

int cmd_config(cli *c, int argc, char **argv) {
  if (argc == 3 && cli_is_help(argv[2]) && (!strcmp(argv[1], "doc") || !strcmp(argv[1], "show"))) {
    fputs(config_help, stdout); /* `config doc --help`, as every command takes */
    return CLI_OK;
  }
  if (argc > 2 && cli_no_options("config", argc, argv, 2)) return CLI_USAGE;
  if (argc != 2 || cli_is_help(argv[1])) {
    fputs(config_help, argc == 2 ? stdout : stderr);
    return argc == 2 ? CLI_OK : CLI_USAGE;
  }
  if (!strcmp(argv[1], "doc")) {
    trb_config_print_doc(stdout);
    return CLI_OK;
  }
  if (!strcmp(argv[1], "show")) {
    trb_config_print(&c->cfg, stdout);
    return CLI_OK;
  }
  return cli_usage_err("config", "unknown config command '%s'", argv[1]);
}
