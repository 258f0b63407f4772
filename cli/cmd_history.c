/*
 * cmd_history.c -- `tributary history TABLE --key KEY`: every version of one
 * item that the WAL still holds, oldest first.
 *
 * The WAL is the truth (ARCHITECTURE.md invariant 3) and keeps the old and
 * new image of every change, so the history of an item is a scan of the log
 * for the records whose table name and decoded keys match. The log is opened
 * read-only (trb_wal_open with readonly=1: no recovery writes, no directory
 * lock) and the engine is never opened (its LOCK stays free), so this runs
 * beside a server using the same data directory; it sees the records that
 * were durable when it started.
 *
 * Table incarnations: a table deleted and created again under the same name
 * is another table (another table_id) to the WAL. history shows the records
 * of every table of that name in LSN order, and in pretty output a
 * TABLE_DELETE line where a deletion took a live version of the item with it
 * (a deletion writes no REMOVE record per item). The key schema of each
 * incarnation comes from its TABLE_CREATE/TABLE_UPDATE records; --key must
 * match one of them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "capture/wal.h"
#include "cli/cli.h"
#include "engine/tabledef.h"
#include "transform/stream_record.h"

static const char *history_help =
    "usage: tributary history TABLE --key KEY_JSON [--since TIME] [--until TIME]\n"
    "                         [--format pretty|json]\n"
    "\n"
    "Prints every change of one item that the write-ahead log still holds, in LSN\n"
    "(commit) order. KEY_JSON is the item's primary key as DynamoDB JSON, e.g.\n"
    "'{\"id\":{\"S\":\"a\"}}' (inline, file://PATH or -); numbers compare by value.\n"
    "The WAL is read without changing anything and without the engine's lock, so\n"
    "this works while a server uses the data directory.\n"
    "\n"
    "  --since TIME, --until TIME   only changes committed at or after / at or before\n"
    "                 TIME: ISO-8601 (2026-12-01T21:00:00Z, 2026-12-01T21:00:00.25Z,\n"
    "                 2026-12-01T22:00:00+01:00, 2026-12-01 = midnight UTC; no zone\n"
    "                 means UTC) or seconds since the epoch (1796158800, 1796158800.5)\n"
    "  --format pretty   (default) one line per change:\n"
    "                 TIME  SEQUENCE_NUMBER  EVENT  new=ITEM_JSON   (REMOVE: deleted)\n"
    "                 TIME is the commit time, UTC with microseconds. A TABLE_DELETE\n"
    "                 line marks a table deletion that took the item with it.\n"
    "  --format json  one DynamoDB Streams record per line (NEW_AND_OLD_IMAGES), as\n"
    "                 GetRecords returns them; item changes only\n"
    "\n"
    "Records of every table named TABLE are shown, including tables deleted and\n"
    "created again under that name. Changes older than the WAL's retention are gone:\n"
    "when retention has removed the WAL's beginning, a note on stderr says where it\n"
    "starts now.\n"
    "Exit 0 (with \"no changes of this item are in the WAL\" on stderr when there are\n"
    "none), 1 when the WAL cannot be read or holds no record of TABLE, 2 for a bad\n"
    "command line.\n";

/* ---- time arguments ---- */

/* Up to `max` digits into *v; the number of digits read. */
static int digits(const char **p, int max, long long *v) {
  int n = 0;
  *v = 0;
  while (n < max && **p >= '0' && **p <= '9') {
    *v = *v * 10 + (**p - '0');
    (*p)++;
    n++;
  }
  return n;
}

/* Fractional seconds ".ddd" (any number of digits, kept to microseconds). */
static int frac_us(const char **p, int64_t *us) {
  *us = 0;
  if (**p != '.' && **p != ',') return 0;
  (*p)++;
  int n = 0;
  int64_t scale = 100000;
  while (**p >= '0' && **p <= '9') {
    *us += (**p - '0') * scale;
    scale /= 10;
    (*p)++;
    n++;
  }
  return n ? 0 : -1;
}

/*
 * ISO-8601 (YYYY-MM-DD[(T| )HH:MM[:SS[.f]]][Z|(+|-)HH[:]MM]) or epoch
 * seconds (digits, optional fraction) into microseconds since the epoch.
 * 0 ok, -1 malformed.
 */
static int parse_time(const char *s, int64_t *out) {
  const char *p = s;
  long long v;
  int64_t us = 0;
  int n = digits(&p, 12, &v);
  if (!n) return -1;
  if (*p != '-') { /* epoch seconds */
    if (frac_us(&p, &us) || *p || v > 253402300799LL) return -1;
    *out = (int64_t)v * 1000000 + us;
    return 0;
  }
  if (n != 4) return -1;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = (int)v - 1900;
  if (*p++ != '-' || digits(&p, 2, &v) != 2 || v < 1 || v > 12) return -1;
  tm.tm_mon = (int)v - 1;
  if (*p++ != '-' || digits(&p, 2, &v) != 2 || v < 1 || v > 31) return -1;
  tm.tm_mday = (int)v;
  int64_t off_s = 0;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (digits(&p, 2, &v) != 2 || v > 23) return -1;
    tm.tm_hour = (int)v;
    if (*p++ != ':' || digits(&p, 2, &v) != 2 || v > 59) return -1;
    tm.tm_min = (int)v;
    if (*p == ':') {
      p++;
      if (digits(&p, 2, &v) != 2 || v > 60) return -1;
      tm.tm_sec = (int)v;
      if (frac_us(&p, &us)) return -1;
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1;
      long long hh, mm = 0;
      if (digits(&p, 2, &hh) != 2 || hh > 23) return -1;
      if (*p == ':') p++;
      if (*p && (digits(&p, 2, &mm) != 2 || mm > 59)) return -1;
      off_s = sign * (hh * 3600 + mm * 60);
    }
  }
  if (*p) return -1;
  struct tm chk = tm;
  time_t t = timegm(&tm);
  if (tm.tm_mday != chk.tm_mday) return -1; /* e.g. February 30 */
  *out = ((int64_t)t - off_s) * 1000000 + us;
  return 0;
}

/* "2026-12-01T21:06:52.123456Z" into out (at least 32 bytes). */
static void format_time(int64_t us, char *out, size_t n) {
  int64_t secs = us / 1000000, frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs--;
  }
  time_t t = (time_t)secs;
  struct tm tm;
  gmtime_r(&t, &tm);
  char ts[24];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, n, "%s.%06dZ", ts, (int)frac);
}

/* ---- the scan ---- */

/* Key schemas of the incarnations of the table, by table_id. */
typedef struct incarnation {
  uint64_t table_id;
  trb_keyschema ks;
  int has_ks;
  int live;        /* the item's last change in this incarnation left it existing */
} incarnation;

typedef struct history {
  const char *table;
  const trb_av *key;
  int json;
  int64_t since, until;
  const char *region;
  incarnation *inc;
  size_t ninc, capinc;
  char **lines;    /* output, printed once the key is known to fit the schema */
  size_t nlines, caplines;
  uint64_t table_records;
} history;

static incarnation *find_inc(history *h, uint64_t table_id, int add) {
  for (size_t i = 0; i < h->ninc; i++)
    if (h->inc[i].table_id == table_id) return &h->inc[i];
  if (!add) return NULL;
  if (h->ninc == h->capinc) {
    size_t nc = h->capinc ? h->capinc * 2 : 4;
    incarnation *ni = realloc(h->inc, nc * sizeof *ni);
    if (!ni) return NULL;
    h->inc = ni;
    h->capinc = nc;
  }
  incarnation *in = &h->inc[h->ninc++];
  memset(in, 0, sizeof *in);
  in->table_id = table_id;
  return in;
}

/* Takes ownership of line (freed on failure). -1 on OOM. */
static int add_line(history *h, char *line) {
  if (!line) return -1;
  if (h->nlines == h->caplines) {
    size_t nc = h->caplines ? h->caplines * 2 : 16;
    char **nl = realloc(h->lines, nc * sizeof *nl);
    if (!nl) {
      free(line);
      return -1;
    }
    h->lines = nl;
    h->caplines = nc;
  }
  h->lines[h->nlines++] = line;
  return 0;
}

static int in_window(const history *h, int64_t us) { return us >= h->since && us <= h->until; }

/* One item record of the table whose keys equal h->key. */
static trb_err on_change(history *h, const trb_wal_rec *r, incarnation *in, trb_status *st) {
  in->live = r->kind != TRB_WAL_REMOVE;
  if (!in_window(h, r->commit_us)) return TRB_OK;
  char *line = NULL;
  if (h->json) {
    trb_stream_rec_opts o = {.view = TRB_VIEW_NEW_AND_OLD_IMAGES, .region = h->region};
    json_t *j = NULL;
    trb_err rc = trb_stream_record(r, &o, &j, st);
    if (rc) return rc;
    line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
  } else {
    char ts[40], seq[TRB_SEQNO_BUF];
    format_time(r->commit_us, ts, sizeof ts);
    trb_seqno_format(r->lsn, seq);
    if (r->kind == TRB_WAL_REMOVE) {
      if (asprintf(&line, "%s  %s  REMOVE  %s", ts, seq,
                   trb_stream_rec_by_ttl(r) ? "deleted by Time to Live (expired)" : "deleted") < 0)
        line = NULL;
    } else {
      trb_av *img = NULL;
      if (!r->new_img || trb_av_decode(r->new_img, r->new_len, &img))
        return trb_status_set(st, TRB_ECORRUPT, "the new image at LSN %" PRIu64 " does not decode",
                              r->lsn);
      char *s = trb_item_to_json_text(img);
      trb_av_destroy(img);
      if (s && asprintf(&line, "%s  %s  %s  new=%s", ts, seq, trb_wal_kind_name(r->kind), s) < 0)
        line = NULL;
      free(s);
    }
  }
  if (add_line(h, line)) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  return TRB_OK;
}

static trb_err on_record(history *h, const trb_wal_rec *r, trb_status *st) {
  size_t tl = strlen(h->table);
  if (r->table_len != tl || memcmp(r->table, h->table, tl)) return TRB_OK;
  h->table_records++;
  incarnation *in = find_inc(h, r->table_id, 1);
  if (!in) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  switch (r->kind) {
    case TRB_WAL_TABLE_CREATE:
    case TRB_WAL_TABLE_UPDATE: {
      trb_tabledef d;
      trb_err rc = trb_tabledef_decode(r->new_img, r->new_len, &d, st);
      if (rc) return rc;
      in->ks = d.ks;
      in->has_ks = 1;
      trb_tabledef_fini(&d);
      return TRB_OK;
    }
    case TRB_WAL_TABLE_DELETE:
      if (in->live && !h->json && in_window(h, r->commit_us)) {
        char ts[40], seq[TRB_SEQNO_BUF], *line = NULL;
        format_time(r->commit_us, ts, sizeof ts);
        trb_seqno_format(r->lsn, seq);
        if (asprintf(&line, "%s  %s  TABLE_DELETE  deleted with its table", ts, seq) < 0)
          line = NULL;
        if (add_line(h, line)) return trb_status_set(st, TRB_ENOMEM, "out of memory");
      }
      in->live = 0;
      return TRB_OK;
    case TRB_WAL_INSERT:
    case TRB_WAL_MODIFY:
    case TRB_WAL_REMOVE: {
      trb_av *keys = NULL;
      if (!r->keys || trb_av_decode(r->keys, r->keys_len, &keys))
        return trb_status_set(st, TRB_ECORRUPT, "the keys at LSN %" PRIu64 " do not decode",
                              r->lsn);
      int same = trb_av_equal(keys, h->key);
      trb_av_destroy(keys);
      return same ? on_change(h, r, in, st) : TRB_OK;
    }
    default:
      return TRB_OK;
  }
}

static void key_schema_text(const trb_keyschema *ks, char *out, size_t n) {
  if (ks->has_sk)
    snprintf(out, n, "partition key %s:%s, sort key %s:%s", ks->pk_name,
             trb_type_name(ks->pk_type), ks->sk_name, trb_type_name(ks->sk_type));
  else
    snprintf(out, n, "partition key %s:%s", ks->pk_name, trb_type_name(ks->pk_type));
}

/* --opt VALUE or --opt=VALUE: the value, advancing *i; NULL if not this opt. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n)) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n]) return NULL;
  if (*i + 1 >= argc) {
    *missing = 1;
    return NULL;
  }
  return argv[++*i];
}

int cmd_history(cli *c, int argc, char **argv) {
  const char *table = NULL, *key_arg = NULL, *since = NULL, *until = NULL, *format = "pretty";
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      fputs(history_help, stdout);
      return CLI_OK;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *v;
    int missing = 0;
    if ((v = opt_value(argc, argv, &i, "--key", &missing))) key_arg = v;
    else if ((v = opt_value(argc, argv, &i, "--since", &missing))) since = v;
    else if ((v = opt_value(argc, argv, &i, "--until", &missing))) until = v;
    else if ((v = opt_value(argc, argv, &i, "--format", &missing))) format = v;
    else if (missing) return cli_usage_err("history", "%s needs a value", argv[i]);
    else if (argv[i][0] == '-' && argv[i][1])
      return cli_usage_err("history", "unknown option %s", argv[i]);
    else if (table) return cli_usage_err("history", "unexpected argument '%s'", argv[i]);
    else table = argv[i];
  }
  if (!table) return cli_usage_err("history", "missing TABLE");
  if (!key_arg) return cli_usage_err("history", "missing --key KEY_JSON");
  if (strcmp(format, "pretty") && strcmp(format, "json"))
    return cli_usage_err("history", "--format must be pretty or json, not '%s'", format);
  history h;
  memset(&h, 0, sizeof h);
  h.table = table;
  h.json = !strcmp(format, "json");
  h.region = c->cfg.region;
  h.since = INT64_MIN;
  h.until = INT64_MAX;
  if (since && parse_time(since, &h.since))
    return cli_usage_err("history", "--since: '%s' is not an ISO-8601 time or epoch seconds",
                         since);
  if (until && parse_time(until, &h.until))
    return cli_usage_err("history", "--until: '%s' is not an ISO-8601 time or epoch seconds",
                         until);
  if (h.since > h.until) return cli_usage_err("history", "--since is after --until");
  trb_av *key = cli_parse_item(key_arg, "--key");
  if (!key) return CLI_FAIL; /* as put and get: the value was read and refused */
  h.key = key;

  int rc = CLI_OK;
  char *dir = NULL;
  trb_wal *w = NULL;
  trb_wal_reader *r = NULL;
  trb_status st;
  trb_status_init(&st);
  struct stat sb;
  if (stat(c->cfg.data_dir, &sb) != 0) {
    fprintf(stderr, "tributary: data directory %s: %s\n", c->cfg.data_dir, strerror(errno));
    rc = CLI_FAIL;
    goto done;
  }
  if (asprintf(&dir, "%s/wal", c->cfg.data_dir) < 0) {
    dir = NULL;
    rc = cli_fail(TRB_ENOMEM, NULL);
    goto done;
  }
  trb_wal_opts o = {.dir = dir, .readonly = 1};
  trb_err err = trb_wal_open(&o, &w, &st);
  if (!err && trb_wal_last_lsn(w))
    err = trb_wal_reader_open(w, trb_wal_first_lsn(w), &r, &st);
  /* Where the WAL starts, when retention has removed its beginning: said,
   * so that a short history is not taken for the whole one. */
  uint64_t first_lsn = w ? trb_wal_first_lsn(w) : 0;
  char trimmed[160] = "";
  int first_rec = 1;
  while (!err && r) {
    trb_wal_rec rec;
    err = trb_wal_reader_next(r, &rec, 0, &st);
    if (err == TRB_ETIMEDOUT) {
      err = TRB_OK;
      break;
    }
    if (!err && first_rec && first_lsn > 1) {
      char when[40];
      format_time(rec.commit_us, when, sizeof when);
      snprintf(trimmed, sizeof trimmed,
               "the WAL holds records from LSN %llu (%s) on: older versions were removed by "
               "retention", (unsigned long long)first_lsn, when);
    }
    first_rec = 0;
    if (!err) err = on_record(&h, &rec, &st);
  }
  if (err) {
    fprintf(stderr, "tributary: cannot read the WAL in %s: %s\n", dir, trb_status_msg(&st));
    rc = CLI_FAIL;
    goto done;
  }
  if (!h.table_records) {
    fprintf(stderr, "tributary: no records of table %s are in the WAL in %s%s%s\n", table, dir,
            trimmed[0] ? "; " : "", trimmed);
    rc = CLI_FAIL;
    goto done;
  }
  /* The key must be a key of (one incarnation of) the table: a key with a
   * wrong attribute name or type would otherwise just find nothing. */
  const trb_keyschema *last_ks = NULL;
  int fits = 0;
  for (size_t i = 0; i < h.ninc; i++) {
    if (!h.inc[i].has_ks) continue;
    last_ks = &h.inc[i].ks;
    trb_status kst;
    trb_status_init(&kst);
    if (!trb_key_check_key(&h.inc[i].ks, key, &kst)) fits = 1;
  }
  if (last_ks && !fits) {
    char ks[600];
    key_schema_text(last_ks, ks, sizeof ks);
    /* refused as get and put refuse a key of the wrong shape: exit 1 */
    fprintf(stderr, "tributary: ValidationException: --key does not match the key schema of "
            "table %s (%s)\n", table, ks);
    rc = CLI_FAIL;
    goto done;
  }
  for (size_t i = 0; i < h.nlines; i++) {
    fputs(h.lines[i], stdout);
    fputc('\n', stdout);
  }
  if (fflush(stdout) != 0) {
    fprintf(stderr, "tributary: writing the output: %s\n", strerror(errno));
    rc = CLI_FAIL;
  } else if (!h.nlines) {
    fprintf(stderr, "no changes of this item are in the WAL%s%s%s\n",
            since || until ? " in that time window" : "", trimmed[0] ? "; " : "", trimmed);
  } else if (trimmed[0]) {
    fprintf(stderr, "note: %s\n", trimmed);
  }
done:
  trb_wal_reader_close(r);
  trb_wal_close(w);
  free(dir);
  for (size_t i = 0; i < h.nlines; i++) free(h.lines[i]);
  free(h.lines);
  free(h.inc);
  trb_av_destroy(key);
  return rc;
}
