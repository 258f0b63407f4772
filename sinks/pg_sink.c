/*
 * pg_sink.c -- the PostgreSQL sink (see pg_sink.h).
 *
 * TABLES IT KEEPS (identifiers always quoted: PQescapeIdentifier)
 *
 *   <schema>.<table>            replica: the key attributes as columns (S text,
 *                               N numeric, B bytea; the primary key), item jsonb
 *                               (the whole item), lsn bigint (of the change that
 *                               wrote the row), then the typed columns of the
 *                               config, (item #>> path)::type, computed by
 *                               PostgreSQL from item
 *   <schema>.<table>_history    history: lsn bigint primary key, event_name,
 *                               sequence_number, commit_time timestamptz,
 *                               transaction_id, shard_id, the key columns,
 *                               old_image jsonb, new_image jsonb, user_identity
 *                               (dynamodb.amazonaws.com on a delete made by Time
 *                               to Live, else NULL; added to a history table an
 *                               older version made)
 *   <control>.checkpoints       (sink, shard_id, lsn, sequence_number, updated_at):
 *                               shard_id '*' holds the sink's checkpoint C (every
 *                               change with LSN <= C is applied, once); a row per
 *                               shard holds its last applied record
 *   <control>.tables            (sink, source_table, table_id, state, snapshot_lsn,
 *                               snapshot_key, snapshot_items): state 'streaming'
 *                               (changes with LSN <= snapshot_lsn are in the
 *                               snapshot and skipped) or 'snapshot' (a copy in
 *                               progress, snapshot_key the last store key copied)
 *   <control>.dead_letters      changes PostgreSQL refused, with the error
 *
 * ONE BATCH, EXACTLY ONCE
 *   BEGIN; per table: the history rows (COPY); the replica's changes collapsed
 *   to the last per key, COPY'd into a temporary stage table, then one DELETE
 *   ... USING stage for removed keys and one INSERT ... SELECT ... ON CONFLICT
 *   DO UPDATE for the rest; the checkpoint rows; COMMIT. COPY plus one merge
 *   per table is a constant number of round trips per batch, whatever its
 *   size (bench/bench_pg measures it against a plain COPY of the same rows).
 *   A crash anywhere before COMMIT leaves nothing; after it, the checkpoint
 *   says so. A COMMIT whose answer is lost (the connection broke) is settled
 *   at reconnection: the checkpoint read back says whether it happened.
 *   Changes at or below the checkpoint are never applied again.
 *
 * A CHANGE POSTGRESQL REFUSES (a data error: SQLSTATE classes 22 and 23,
 * 42804, 54000) fails the batch; it is done again change by change, each
 * in a savepoint, and each refused change goes to dead_letters with the
 * error, in the same transaction (or, postgres.on_error stop, the sink
 * stops naming it). Any other failure (the connection, a server restart)
 * is TRB_EIO: the processor retries the batch with backoff, the sink
 * reconnects and reads its checkpoint again.
 *
 * SNAPSHOTS (a table whose changes are not all in the WAL)
 * A table is complete in the WAL when its stream started with it
 * (StreamStartLsn = its table id), the sink's checkpoint is before its
 * creation, and retention kept its creation. Otherwise, when the sink
 * first meets it (at open, or at its first change), it copies the table
 * from a store snapshot at LSN S1 (<control>.tables: state 'snapshot',
 * snapshot_lsn S1), in chunks of 1000 items, each chunk one transaction
 * that also records the last key copied. A crash resumes after that key in
 * a new snapshot at S2 >= S1; the changes after S1 are then applied over
 * it in LSN order, so every key ends at its latest state. At the end the
 * state is 'streaming': changes of the table at or below S1 are skipped.
 * The history table gets the changes after S1 only (a snapshot is not a
 * change). A table deleted and created again (another table id) starts
 * over: its replica is emptied and copied again.
 */
#include "sinks/pg_sink.h"

#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/value.h"
#include "transform/doc_json.h"
#include "transform/stream_record.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/names.h"

#define SNAP_CHUNK 1000

typedef struct pg_col {
  char path[256];
  char name[64];
  char type[64];
  char *expr;               /* SQL computing it from s.item (malloc'ed) */
} pg_col;

typedef struct pg_tab {
  char src[256];
  int mode;                 /* TRB_PG_REPLICA | TRB_PG_HISTORY; 0 = not sent */
  char schema[64], table[64];
  char *q_dest, *q_hist, *q_stage; /* quoted names (malloc'ed) */
  pg_col *cols;
  size_t ncols;
  trb_keyschema ks;
  char *q_k1, *q_k2;        /* quoted key column names */
  /* state */
  int known;                /* its <control>.tables row is loaded */
  uint64_t table_id;
  uint64_t stream_lsn;      /* where its stream started (StreamStartLsn) */
  char label[32];           /* the stream label of its last change seen ("" = none yet) */
  uint64_t skip_through;
  int ready;                /* its tables exist (this connection) */
  int stage_made;           /* its temporary stage exists (this connection) */
  int stage_dirty;          /* rows went into it in the open transaction */
} pg_tab;

typedef struct pg_sink {
  trb_sink base;
  trb_pg_sink_opts o;
  char *conninfo, *name, *schema, *ctl;
  json_t *tables_cfg;
  const trb_sink_source *src;
  PGconn *conn;
  char *q_ctl;              /* quoted control schema */
  char *l_name;             /* the sink name as an SQL literal */
  pg_tab *tabs;
  size_t ntabs, captabs;
  uint64_t ck;              /* checkpoint as PostgreSQL holds it */
  int opened;
  trb_buf sql, copy, doc, tmp;
  pthread_mutex_t mu;
  trb_pg_sink_stats stats;
  uint64_t pend_rows, pend_hist, pend_dead; /* counted when their transaction commits */
  int merge_only;           /* no direct COPY into replicas (see replica_direct) */
  char last_state[8];       /* SQLSTATE of the last failure ("" = none known) */
  int gap;                  /* at open: the WAL starts after the checkpoint (changes lost) */
  /* per-batch scratch */
  size_t *idx;
  size_t capidx;
} pg_sink;

/* ---- small helpers ----------------------------------------------------- */

static void stat_add(pg_sink *k, uint64_t *field, uint64_t v) {
  pthread_mutex_lock(&k->mu);
  *field += v;
  pthread_mutex_unlock(&k->mu);
}

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  return d;
}

static char *quote_ident(PGconn *c, const char *s) {
  char *q = PQescapeIdentifier(c, s, strlen(s));
  char *d = q ? strdup(q) : NULL;
  PQfreemem(q);
  return d;
}

static char *quote_lit(PGconn *c, const char *s) {
  char *q = PQescapeLiteral(c, s, strlen(s));
  char *d = q ? strdup(q) : NULL;
  PQfreemem(q);
  return d;
}

/* A PostgreSQL failure as a status: data errors are TRB_EINVAL (the
 * caller routes them to dead letters), the rest TRB_EIO. */
static int is_data_error(const char *state) {
  return state && (!strncmp(state, "22", 2) || !strncmp(state, "23", 2) ||
                   !strcmp(state, "42804") || !strcmp(state, "54000"));
}

static void drop_conn(pg_sink *k) {
  if (k->conn) PQfinish(k->conn);
  k->conn = NULL;
  for (size_t i = 0; i < k->ntabs; i++)
    k->tabs[i].ready = k->tabs[i].stage_made = k->tabs[i].stage_dirty = 0;
  pthread_mutex_lock(&k->mu);
  k->stats.connected = 0;
  pthread_mutex_unlock(&k->mu);
}

/* libpq's messages end in a newline and may hold more (a HINT, "Is the
 * server running...?"): one line for the log. */
static void one_line(char *m) {
  size_t l = strlen(m);
  while (l && (m[l - 1] == '\n' || m[l - 1] == ' ')) m[--l] = '\0';
  for (char *p = m; *p; p++)
    if (*p == '\n' || *p == '\t') *p = ' ';
}

static trb_err res_fail(pg_sink *k, PGresult *r, const char *what, trb_status *st) {
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(k->conn);
  char m[600];
  snprintf(m, sizeof m, "%s", msg && *msg ? msg : "no answer");
  one_line(m);
  trb_err rc = is_data_error(state) ? TRB_EINVAL : TRB_EIO;
  snprintf(k->last_state, sizeof k->last_state, "%s", state ? state : "");
  trb_status_set(st, rc, "postgres: %s: %s%s%s%s", what, m, state ? " (SQLSTATE " : "",
                 state ? state : "", state ? ")" : "");
  if (r) PQclear(r);
  if (rc == TRB_EIO && (!k->conn || PQstatus(k->conn) != CONNECTION_OK)) drop_conn(k);
  return rc;
}

/* Runs SQL that returns no rows (several statements allowed). */
static trb_err exec(pg_sink *k, const char *sql, const char *what, trb_status *st) {
  PGresult *r = PQexec(k->conn, sql);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) return res_fail(k, r, what, st);
  PQclear(r);
  return TRB_OK;
}

static trb_err query(pg_sink *k, const char *sql, int np, const char *const *params,
                     PGresult **out, const char *what, trb_status *st) {
  PGresult *r = PQexecParams(k->conn, sql, np, NULL, params, NULL, NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) return res_fail(k, r, what, st);
  if (out) *out = r;
  else PQclear(r);
  return TRB_OK;
}

/* sql = printf(...) into k->sql (NUL-terminated). */
static __attribute__((format(printf, 2, 3))) trb_err sqlf(pg_sink *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  trb_buf_reset(&k->sql);
  if (n < 0 || trb_buf_reserve(&k->sql, (size_t)n + 1)) return TRB_ENOMEM;
  va_start(ap, fmt);
  vsnprintf((char *)k->sql.p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  k->sql.len = (size_t)n;
  return TRB_OK;
}
#define SQL(k) ((const char *)(k)->sql.p)

/* COPY in a stream: the rows are sent while the next ones are built, so
 * PostgreSQL parses while the client encodes. */
#define COPY_CHUNK (128 * 1024)

static trb_err copy_start(pg_sink *k, const char *copy_sql, const char *what, trb_status *st) {
  PGresult *r = PQexec(k->conn, copy_sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) return res_fail(k, r, what, st);
  PQclear(r);
  return TRB_OK;
}

/* Sends what b holds once it is min bytes or more. */
static trb_err copy_put(pg_sink *k, trb_buf *b, size_t min, const char *what, trb_status *st) {
  if (b->len < min || !b->len) return TRB_OK;
  if (PQputCopyData(k->conn, (const char *)b->p, (int)b->len) != 1)
    return res_fail(k, NULL, what, st);
  trb_buf_reset(b);
  return TRB_OK;
}

/* Sends the rest and ends the COPY; fail (not NULL) aborts it instead. */
static trb_err copy_end(pg_sink *k, trb_buf *b, const char *fail, const char *what,
                        trb_status *st) {
  trb_err rc = fail ? TRB_OK : copy_put(k, b, 0, what, st);
  if (rc) return rc;
  if (PQputCopyEnd(k->conn, fail) != 1) return res_fail(k, NULL, what, st);
  PGresult *r;
  while ((r = PQgetResult(k->conn)) != NULL) {
    if (!rc && !fail && PQresultStatus(r) != PGRES_COMMAND_OK) rc = res_fail(k, r, what, st);
    else PQclear(r);
    if (!k->conn) break;
  }
  if (fail && !rc) rc = trb_status_set(st, TRB_ENOMEM, "postgres: %s: %s", what, fail);
  return rc;
}

/* COPY text format: \ tab newline CR escaped. */
static trb_err copy_text(trb_buf *b, const char *p, size_t n) {
  trb_err rc = trb_buf_reserve(b, n + 8);
  if (rc) return rc;
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i], e = 0;
    if (c == '\\') e = '\\';
    else if (c == '\t') e = 't';
    else if (c == '\n') e = 'n';
    else if (c == '\r') e = 'r';
    if (!e) {
      run++;
      continue;
    }
    if (run && (rc = trb_buf_append(b, p + i - run, run))) return rc;
    run = 0;
    char esc[2] = {'\\', e};
    if ((rc = trb_buf_append(b, esc, 2))) return rc;
  }
  return run ? trb_buf_append(b, p + n - run, run) : TRB_OK;
}

static trb_err copy_str(trb_buf *b, const char *s) { return copy_text(b, s, strlen(s)); }

/* A key value as COPY text of its column (S text, N numeric, B bytea). */
static trb_err copy_key(trb_buf *b, const trb_av *v) {
  static const char hex[] = "0123456789abcdef";
  if (!v) return trb_buf_append(b, "\\N", 2);
  if (v->type == TRB_T_S) return copy_text(b, v->u.s.p, v->u.s.len);
  if (v->type == TRB_T_N) {
    char t[TRB_DEC_STR_MAX];
    size_t n = trb_dec_format(&v->u.n, t, sizeof t);
    return trb_buf_append(b, t, n);
  }
  trb_err rc = trb_buf_append(b, "\\\\x", 3);
  for (size_t i = 0; !rc && i < v->u.s.len; i++) {
    char h[2] = {hex[(unsigned char)v->u.s.p[i] >> 4], hex[(unsigned char)v->u.s.p[i] & 15]};
    rc = trb_buf_append(b, h, 2);
  }
  return rc;
}

/* The item's JSON (the configured form) into k->doc. */
static trb_err item_doc(pg_sink *k, const trb_av *item) {
  trb_buf_reset(&k->doc);
  if (!k->o.json_typed) return trb_doc_json(item, &k->doc);
  char *t = trb_item_to_json_text(item);
  if (!t) return TRB_ENOMEM;
  trb_err rc = trb_buf_append(&k->doc, t, strlen(t));
  free(t);
  return rc;
}

static trb_err copy_doc(pg_sink *k, trb_buf *b, const trb_av *item) {
  if (!item) return trb_buf_append(b, "\\N", 2);
  trb_err rc = item_doc(k, item);
  return rc ? rc : copy_text(b, (const char *)k->doc.p, k->doc.len);
}

static const char *key_type(trb_type t) {
  return t == TRB_T_S ? "text" : t == TRB_T_N ? "numeric" : "bytea";
}

/* ---- configuration of the tables -------------------------------------- */

static pg_tab *tab_find(pg_sink *k, const char *src) {
  for (size_t i = 0; i < k->ntabs; i++)
    if (!strcmp(k->tabs[i].src, src)) return &k->tabs[i];
  return NULL;
}

static void tab_free(pg_tab *t) {
  free(t->q_dest), free(t->q_hist), free(t->q_stage), free(t->q_k1), free(t->q_k2);
  for (size_t i = 0; i < t->ncols; i++) free(t->cols[i].expr);
  free(t->cols);
}

/* The SQL that reads a typed column's value from s.item: plain JSON
 * (s.item #>> '{a,b,0}')::type; DynamoDB JSON walks M and L and takes the
 * scalar's S, N or BOOL. */
static char *col_expr(pg_sink *k, const pg_col *c) {
  trb_path_step st[TRB_PATH_MAX_STEPS];
  size_t n;
  if (!trb_path_parse(c->path, st, TRB_PATH_MAX_STEPS, &n)) return NULL;
  /* the jsonb path, a text[] literal: {"a","b","0"}; the typed form has
   * "M" before a member and "L" before an index, after the first step */
  trb_buf arr;
  trb_buf_init(&arr, 0);
  trb_buf_append(&arr, "{", 1);
  for (size_t i = 0; i < n; i++) {
    if (i) trb_buf_append(&arr, ",", 1);
    if (i && k->o.json_typed) trb_buf_append(&arr, st[i].is_index ? "\"L\"," : "\"M\",", 4);
    trb_buf_append(&arr, "\"", 1);
    for (size_t j = 0; j < st[i].len; j++) {
      if (st[i].text[j] == '"' || st[i].text[j] == '\\') trb_buf_append(&arr, "\\", 1);
      trb_buf_append(&arr, st[i].text + j, 1);
    }
    trb_buf_append(&arr, "\"", 1);
  }
  trb_buf_append(&arr, "}", 2); /* with the NUL */
  char *lit = quote_lit(k->conn, (const char *)arr.p);
  trb_buf_fini(&arr);
  if (!lit) return NULL;
  char *out = NULL;
  int w;
  if (k->o.json_typed)
    w = asprintf(&out, "(coalesce((s.item #> %s) ->> 'S', (s.item #> %s) ->> 'N', "
                 "(s.item #> %s) ->> 'BOOL'))::%s", lit, lit, lit, c->type);
  else
    w = asprintf(&out, "(s.item #>> %s)::%s", lit, c->type);
  free(lit);
  return w < 0 ? NULL : out;
}

/* 1 when b's replica is a's history table (b is "<a's table>_history" in
 * the same schema). */
static int is_history_of(const pg_tab *a, const pg_tab *b) {
  size_t n = strlen(a->table);
  return (a->mode & TRB_PG_HISTORY) && (b->mode & TRB_PG_REPLICA) &&
         !strcmp(a->schema, b->schema) && !strncmp(b->table, a->table, n) &&
         !strcmp(b->table + n, "_history");
}

/* Two source tables whose PostgreSQL tables would be one: a table named
 * like another's history ("orders_history" beside "orders"), or two given
 * the same table: name. The one met later (t, being added) is left out,
 * loudly, so that neither holds back the others (PostgreSQL would refuse
 * its rows for ever) and a table already in PostgreSQL is never taken
 * over. At open the tables the sink has sent before are met first (see
 * ps_open), so a restart keeps the choice. */
static void tab_clash(pg_sink *k, pg_tab *t) {
  for (size_t i = 0; i < k->ntabs && t->mode; i++) {
    const pg_tab *o = &k->tabs[i];
    if (o == t || !o->mode) continue;
    const char *what, *suffix = "";
    if (is_history_of(o, t)) {
      what = "is the history table of";
    } else if (is_history_of(t, o)) {
      what = "would be the history table of";
      suffix = "_history";
    } else if (!strcmp(t->schema, o->schema) && !strcmp(t->table, o->table)) {
      what = "is also the table of";
    } else {
      continue;
    }
    trb_log_error("postgres", "table %s is not sent to PostgreSQL: its table %s.%s%s %s table "
                  "%s (met first); give it another name with postgres.tables.%s.table and "
                  "restart", t->src, t->schema, t->table, suffix, what, o->src, t->src);
    t->mode = 0;
  }
}

/* A table's entry (created the first time the sink meets the table): its
 * destination from the config, or NULL when it does not go to PostgreSQL
 * (*mode 0). Needs the connection (quoting). */
static trb_err tab_add(pg_sink *k, const char *src, const trb_keyschema *ks, pg_tab **out,
                       trb_status *st) {
  *out = NULL;
  json_t *cfg = json_object_get(k->tables_cfg, src);
  if (k->ntabs == k->captabs) {
    size_t cap = k->captabs ? 2 * k->captabs : 8;
    pg_tab *n = realloc(k->tabs, cap * sizeof *n);
    if (!n) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    k->tabs = n, k->captabs = cap;
  }
  pg_tab *t = &k->tabs[k->ntabs];
  memset(t, 0, sizeof *t);
  snprintf(t->src, sizeof t->src, "%s", src);
  t->ks = *ks;
  if (!cfg && !k->o.all_tables) {
    k->ntabs++;
    *out = t;
    return TRB_OK; /* mode 0: skipped */
  }
  const char *mode = json_string_value(json_object_get(cfg, "mode"));
  t->mode = !mode ? k->o.mode : !strcmp(mode, "replica") ? TRB_PG_REPLICA
            : !strcmp(mode, "history") ? TRB_PG_HISTORY : TRB_PG_REPLICA | TRB_PG_HISTORY;
  const char *sch = json_string_value(json_object_get(cfg, "schema"));
  const char *tbl = json_string_value(json_object_get(cfg, "table"));
  snprintf(t->schema, sizeof t->schema, "%s", sch ? sch : k->schema);
  if (!tbl && strlen(src) > 55) {
    if (!cfg) { /* a table only all_tables brings: it is left out, loudly, not the sink */
      trb_log_error("postgres", "table %s is not sent to PostgreSQL: its name is longer than "
                    "PostgreSQL takes (63 bytes, with _history); give it an entry in "
                    "postgres.tables with a table: name and restart", src);
      t->mode = 0;
      k->ntabs++;
      *out = t;
      return TRB_OK;
    }
    return trb_status_set(st, TRB_ECONFIG, "postgres.tables.%s: the table name is longer than "
                          "PostgreSQL takes (63 bytes, with _history): give it a table: name",
                          src);
  }
  snprintf(t->table, sizeof t->table, "%s", tbl ? tbl : src);
  if ((t->mode & TRB_PG_HISTORY) && strlen(t->table) > 55)
    return trb_status_set(st, TRB_ECONFIG, "postgres.tables.%s.table: at most 55 bytes when "
                          "the table has a history (%s_history must fit 63)", src, t->table);
  char hist[80], stage[32];
  snprintf(hist, sizeof hist, "%s_history", t->table);
  snprintf(stage, sizeof stage, "trb_stage_%zu", k->ntabs);
  char *qs = quote_ident(k->conn, t->schema), *qt = quote_ident(k->conn, t->table),
       *qh = quote_ident(k->conn, hist);
  if (!qs || !qt || !qh) {
    free(qs), free(qt), free(qh);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  if (asprintf(&t->q_dest, "%s.%s", qs, qt) < 0) t->q_dest = NULL;
  if (asprintf(&t->q_hist, "%s.%s", qs, qh) < 0) t->q_hist = NULL;
  free(qs), free(qt), free(qh);
  t->q_stage = xstrdup(stage);
  t->q_k1 = quote_ident(k->conn, ks->pk_name);
  t->q_k2 = ks->has_sk ? quote_ident(k->conn, ks->sk_name) : NULL;
  k->ntabs++; /* owned by the list from here: freed at destroy on any failure */
  if (!t->q_dest || !t->q_hist || !t->q_stage || !t->q_k1 || (ks->has_sk && !t->q_k2))
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  /* The key columns must not be one of the tables' own columns. */
  static const char *const rep_cols[] = {"item", "lsn", NULL};
  static const char *const hist_cols[] = {"lsn", "event_name", "sequence_number", "commit_time",
                                          "transaction_id", "shard_id", "old_image",
                                          "new_image", "user_identity", NULL};
  const char *clash = NULL;
  for (int m = 0; m < 2 && !clash; m++) {
    const char *const *cols = m ? hist_cols : rep_cols;
    if (!(t->mode & (m ? TRB_PG_HISTORY : TRB_PG_REPLICA))) continue;
    for (size_t i = 0; cols[i] && !clash; i++)
      if (!strcmp(ks->pk_name, cols[i]) || (ks->has_sk && !strcmp(ks->sk_name, cols[i])))
        clash = cols[i];
  }
  /* lsn is in both tables: then no mode avoids the clash, and the advice
   * must not offer one */
  int in_both = 0;
  for (size_t i = 0; clash && rep_cols[i]; i++) in_both |= !strcmp(rep_cols[i], clash);
  int in_hist = 0;
  for (size_t i = 0; clash && hist_cols[i]; i++) in_hist |= !strcmp(hist_cols[i], clash);
  in_both &= in_hist;
  const char *fix = in_both ? "rename the attribute (both the replica and the history have a "
                              "column of that name, so no mode avoids it)"
                            : "rename the attribute, or list the table in postgres.tables with "
                              "the mode that does not have that column";
  if (clash && !cfg) { /* a table only all_tables brings: left out, loudly, not the sink */
    trb_log_error("postgres", "table %s is not sent to PostgreSQL: its key attribute %s is also "
                  "the name of one of the sink's own columns; %s", src, clash, fix);
    t->mode = 0;
    *out = t;
    return TRB_OK;
  }
  if (clash)
    return trb_status_set(st, TRB_ECONFIG, "table %s: its key attribute %s is also the name of "
                          "one of the sink's own columns (replica: item, lsn; history: lsn, "
                          "event_name, ..., new_image); %s, or take the table out of "
                          "postgres.tables", src, clash,
                          in_both ? "rename the attribute" : "rename the attribute, choose the "
                          "mode that does not have that column");
  json_t *cols = json_object_get(cfg, "columns");
  size_t nc = json_object_size(cols);
  t->cols = calloc(nc ? nc : 1, sizeof *t->cols);
  if (!t->cols) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  const char *path;
  json_t *type;
  json_object_foreach(cols, path, type) {
    pg_col *c = &t->cols[t->ncols];
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->type, sizeof c->type, "%s", json_string_value(type));
    if (!trb_path_column(path, c->name, sizeof c->name) || !trb_sql_type_ok(c->type))
      return trb_status_set(st, TRB_ECONFIG, "postgres.tables.%s.columns.%s: not a valid "
                            "path and type", src, path);
    if (!strcmp(c->name, "item") || !strcmp(c->name, "lsn") ||
        !strcmp(c->name, ks->pk_name) || (ks->has_sk && !strcmp(c->name, ks->sk_name)))
      return trb_status_set(st, TRB_ECONFIG, "postgres.tables.%s.columns.%s: its column "
                            "name %s clashes with a key or the replica's own columns", src,
                            path, c->name);
    c->expr = col_expr(k, c);
    t->ncols++;
    if (!c->expr) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  tab_clash(k, t);
  *out = t;
  return TRB_OK;
}

/* ---- connection and the sink's own tables ------------------------------ */

static trb_err ensure_conn(pg_sink *k, trb_status *st);

/* Server notices ("relation already exists, skipping") say nothing a user
 * needs; warnings and errors come back as results. */
static void pg_notice(void *arg, const char *msg) {
  (void)arg;
  trb_log_debug("postgres", "%s", msg);
}

static trb_err load_ck(pg_sink *k, trb_status *st) {
  if (sqlf(k, "SELECT lsn FROM %s.checkpoints WHERE sink = %s AND shard_id = '*'", k->q_ctl,
           k->l_name))
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  PGresult *r = NULL;
  trb_err rc = query(k, SQL(k), 0, NULL, &r, "reading the checkpoint", st);
  if (rc) return rc;
  k->ck = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  return TRB_OK;
}

static trb_err ensure_conn(pg_sink *k, trb_status *st) {
  if (k->conn && PQstatus(k->conn) == CONNECTION_OK) return TRB_OK;
  if (k->conn) drop_conn(k);
  const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
  const char *vals[] = {"10", "tributary", k->conninfo, NULL};
  k->conn = PQconnectdbParams(keys, vals, 1);
  if (!k->conn) return trb_status_set(st, TRB_ENOMEM, "postgres: out of memory");
  if (PQstatus(k->conn) != CONNECTION_OK) {
    char m[512];
    snprintf(m, sizeof m, "%s", PQerrorMessage(k->conn));
    one_line(m);
    drop_conn(k);
    return trb_status_set(st, TRB_EIO, "postgres: cannot connect: %s", m);
  }
  PQsetNoticeProcessor(k->conn, pg_notice, NULL);
  if (!k->q_ctl) k->q_ctl = quote_ident(k->conn, k->ctl);
  if (!k->l_name) k->l_name = quote_lit(k->conn, k->name);
  if (!k->q_ctl || !k->l_name) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  const char *c = k->q_ctl;
  if (sqlf(k,
           "SET client_min_messages = warning;"
           /* the stage's joins: a nested loop on the replica's primary key
            * (a temporary table has no statistics, and PostgreSQL would
            * otherwise hash the stage and scan the whole replica) */
           "SET enable_hashjoin = off; SET enable_mergejoin = off;"
           "CREATE SCHEMA IF NOT EXISTS %s;"
           "CREATE TABLE IF NOT EXISTS %s.checkpoints (sink text NOT NULL, shard_id text NOT NULL,"
           " lsn bigint NOT NULL, sequence_number text, updated_at timestamptz NOT NULL DEFAULT"
           " now(), PRIMARY KEY (sink, shard_id));"
           "CREATE TABLE IF NOT EXISTS %s.tables (sink text NOT NULL, source_table text NOT NULL,"
           " table_id bigint NOT NULL, state text NOT NULL, snapshot_lsn bigint NOT NULL DEFAULT 0,"
           " snapshot_key bytea, snapshot_items bigint NOT NULL DEFAULT 0, destination text,"
           " stream_lsn bigint NOT NULL DEFAULT 0, key_schema text,"
           " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sink, source_table));"
           "CREATE TABLE IF NOT EXISTS %s.dead_letters (id bigserial PRIMARY KEY, sink text NOT"
           " NULL, source_table text NOT NULL, lsn bigint NOT NULL, sequence_number text NOT NULL,"
           " event_name text NOT NULL, sqlstate text, error text NOT NULL, record jsonb NOT NULL,"
           " at timestamptz NOT NULL DEFAULT now());",
           c, c, c, c))
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  trb_err rc = exec(k, SQL(k), "creating the sink's tables", st);
  if (!rc) rc = load_ck(k, st);
  if (rc) return rc;
  pthread_mutex_lock(&k->mu);
  k->stats.connected = 1;
  if (k->opened) k->stats.reconnects++;
  pthread_mutex_unlock(&k->mu);
  return TRB_OK;
}

/* The destination tables of t exist, with every configured column. */
static trb_err tab_ready(pg_sink *k, pg_tab *t, trb_status *st) {
  if (t->ready || !t->mode) return TRB_OK;
  trb_err rc;
  char *qs = quote_ident(k->conn, t->schema);
  char keys[700], keydefs[1400];
  if (t->ks.has_sk) {
    snprintf(keys, sizeof keys, "%s, %s", t->q_k1, t->q_k2);
    snprintf(keydefs, sizeof keydefs, "%s %s NOT NULL, %s %s NOT NULL", t->q_k1,
             key_type(t->ks.pk_type), t->q_k2, key_type(t->ks.sk_type));
  } else {
    snprintf(keys, sizeof keys, "%s", t->q_k1);
    snprintf(keydefs, sizeof keydefs, "%s %s NOT NULL", t->q_k1, key_type(t->ks.pk_type));
  }
  if (!qs || sqlf(k, "SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS %s", qs)) {
    free(qs);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  free(qs);
  if ((rc = exec(k, SQL(k), "creating the schema", st))) return rc;
  if (t->mode & TRB_PG_REPLICA) {
    if (sqlf(k, "CREATE TABLE IF NOT EXISTS %s (%s, item jsonb NOT NULL, lsn bigint NOT NULL, "
             "PRIMARY KEY (%s))", t->q_dest, keydefs, keys))
      return TRB_ENOMEM;
    if ((rc = exec(k, SQL(k), "creating the replica table", st))) return rc;
    /* Typed columns: added when the config grows, then filled from item. */
    for (size_t i = 0; i < t->ncols; i++) {
      char *ln = quote_lit(k->conn, t->cols[i].name), *qn = quote_ident(k->conn, t->cols[i].name);
      char *lsch = quote_lit(k->conn, t->schema), *ltab = quote_lit(k->conn, t->table);
      int bad = !ln || !qn || !lsch || !ltab ||
                sqlf(k, "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND "
                     "table_name = %s AND column_name = %s", lsch, ltab, ln);
      PGresult *r = NULL;
      if (!bad) rc = query(k, SQL(k), 0, NULL, &r, "reading the replica's columns", st);
      int have = !bad && !rc && PQntuples(r) > 0;
      if (r) PQclear(r);
      if (!bad && !rc && !have) {
        trb_log_info("postgres", "table %s: adding column %s %s (from attribute %s)", t->q_dest,
                     t->cols[i].name, t->cols[i].type, t->cols[i].path);
        /* Rows a value of which does not fit go to the dead letters, the
         * column stays NULL there. */
        bad = sqlf(k,
                   "ALTER TABLE %s ADD COLUMN %s %s;"
                   "DO $trb$ DECLARE r record; BEGIN"
                   " FOR r IN SELECT ctid AS c, * FROM %s s LOOP BEGIN"
                   "  UPDATE %s SET %s = (SELECT %s FROM (SELECT r.item AS item) s) WHERE ctid = r.c;"
                   " EXCEPTION WHEN others THEN"
                   "  INSERT INTO %s.dead_letters (sink, source_table, lsn, sequence_number,"
                   "   event_name, sqlstate, error, record) VALUES (%s, %s, r.lsn, '', 'BACKFILL',"
                   "   SQLSTATE, 'column ' || %s || ': ' || SQLERRM, r.item);"
                   " END; END LOOP; END $trb$",
                   t->q_dest, qn, t->cols[i].type, t->q_dest, t->q_dest, qn, t->cols[i].expr,
                   k->q_ctl, k->l_name, ln, ln);
        if (!bad) rc = exec(k, SQL(k), "adding a typed column", st);
      }
      free(ln), free(qn), free(lsch), free(ltab);
      if (bad) return trb_status_set(st, TRB_ENOMEM, "out of memory");
      if (rc) return rc;
    }
  }
  if (t->mode & TRB_PG_HISTORY) {
    if (sqlf(k, "CREATE TABLE IF NOT EXISTS %s (lsn bigint PRIMARY KEY, event_name text NOT NULL,"
             " sequence_number text NOT NULL, commit_time timestamptz NOT NULL, transaction_id"
             " text, shard_id text NOT NULL, %s, old_image jsonb, new_image jsonb,"
             " user_identity text)",
             t->q_hist, keydefs))
      return TRB_ENOMEM;
    if ((rc = exec(k, SQL(k), "creating the history table", st))) return rc;
    /* a history table made before user_identity existed gets it */
    if (sqlf(k, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS user_identity text", t->q_hist))
      return TRB_ENOMEM;
    if ((rc = exec(k, SQL(k), "adding user_identity to the history table", st))) return rc;
  }
  t->ready = 1;
  return TRB_OK;
}

static trb_err tab_stage(pg_sink *k, pg_tab *t, trb_status *st) {
  if (t->stage_made) return TRB_OK;
  char keydefs[1400];
  if (t->ks.has_sk)
    snprintf(keydefs, sizeof keydefs, "%s %s, %s %s", t->q_k1, key_type(t->ks.pk_type), t->q_k2,
             key_type(t->ks.sk_type));
  else
    snprintf(keydefs, sizeof keydefs, "%s %s", t->q_k1, key_type(t->ks.pk_type));
  if (sqlf(k, "CREATE TEMPORARY TABLE IF NOT EXISTS %s (%s, item jsonb, lsn bigint, del boolean)"
           " ON COMMIT DELETE ROWS", t->q_stage, keydefs))
    return TRB_ENOMEM;
  trb_err rc = exec(k, SQL(k), "creating a stage table", st);
  if (!rc) t->stage_made = 1;
  return rc;
}

/* Rolls the open transaction back: what it created (tables, stages) is
 * gone too, so they are made again. */
static void rollback(pg_sink *k) {
  for (size_t i = 0; i < k->ntabs; i++)
    k->tabs[i].ready = k->tabs[i].stage_made = k->tabs[i].stage_dirty = 0;
  if (!k->conn) return;
  trb_status ignore;
  trb_status_init(&ignore);
  exec(k, "ROLLBACK", "rolling back", &ignore);
}

/* ---- applying changes -------------------------------------------------- */

typedef struct rec_view {
  const trb_sink_rec *r;
  trb_av *keys, *old_img, *new_img; /* decoded, owned */
} rec_view;

static void view_fini(rec_view *v) {
  trb_av_destroy(v->keys), trb_av_destroy(v->old_img), trb_av_destroy(v->new_img);
  memset(v, 0, sizeof *v);
}

/* The old image only when asked (history); a dead letter decodes it. */
static trb_err view_init(rec_view *v, const trb_sink_rec *r, int want_old, trb_status *st) {
  memset(v, 0, sizeof *v);
  v->r = r;
  const trb_wal_rec *w = r->wal;
  if (trb_av_decode(w->keys, w->keys_len, &v->keys) ||
      (want_old && w->old_len && trb_av_decode(w->old_img, w->old_len, &v->old_img)) ||
      (w->new_len && trb_av_decode(w->new_img, w->new_len, &v->new_img))) {
    view_fini(v);
    return trb_status_set(st, TRB_ECORRUPT, "postgres: undecodable change at LSN %" PRIu64,
                          w->lsn);
  }
  return TRB_OK;
}

static const trb_av *key_attr(const pg_tab *t, const trb_av *keys, int second) {
  const char *n = second ? t->ks.sk_name : t->ks.pk_name;
  return trb_av_m_get(keys, n, strlen(n));
}

/* The key columns as COPY text, tab-separated, into b. */
static trb_err copy_keys(const pg_tab *t, trb_buf *b, const trb_av *keys) {
  trb_err rc = copy_key(b, key_attr(t, keys, 0));
  if (!rc && t->ks.has_sk) rc = trb_buf_append(b, "\t", 1);
  if (!rc && t->ks.has_sk) rc = copy_key(b, key_attr(t, keys, 1));
  return rc;
}

static const char *event_name(const trb_wal_rec *w) {
  return w->kind == TRB_WAL_INSERT ? "INSERT" : w->kind == TRB_WAL_MODIFY ? "MODIFY" : "REMOVE";
}

static trb_err history_rows(pg_sink *k, pg_tab *t, rec_view *v, size_t n, trb_status *st) {
  static const char what[] = "appending to the history table";
  trb_buf *b = &k->copy;
  trb_buf_reset(b);
  char keys[700];
  if (t->ks.has_sk) snprintf(keys, sizeof keys, "%s, %s", t->q_k1, t->q_k2);
  else snprintf(keys, sizeof keys, "%s", t->q_k1);
  if (sqlf(k, "COPY %s (lsn, event_name, sequence_number, commit_time, transaction_id, shard_id,"
           " %s, old_image, new_image, user_identity) FROM STDIN", t->q_hist, keys))
    return TRB_ENOMEM;
  trb_err rc = copy_start(k, SQL(k), what, st);
  if (rc) return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    const trb_wal_rec *w = v[i].r->wal;
    char line[200], seq[TRB_SEQNO_BUF], ts[64];
    trb_seqno_format(w->lsn, seq);
    time_t secs = (time_t)(w->commit_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    char txn[24] = "\\N";
    if (w->txn_id) snprintf(txn, sizeof txn, "%" PRIu64, w->txn_id);
    snprintf(line, sizeof line, "%" PRIu64 "\t%s\t%s\t%s.%06d+00\t%s\t", w->lsn, event_name(w),
             seq, ts, (int)(w->commit_us % 1000000), txn);
    rc = trb_buf_append(b, line, strlen(line));
    if (!rc) rc = copy_str(b, v[i].r->shard_id);
    if (!rc) rc = trb_buf_append(b, "\t", 1);
    if (!rc) rc = copy_keys(t, b, v[i].keys);
    if (!rc) rc = trb_buf_append(b, "\t", 1);
    if (!rc) rc = copy_doc(k, b, v[i].old_img);
    if (!rc) rc = trb_buf_append(b, "\t", 1);
    if (!rc) rc = copy_doc(k, b, v[i].new_img);
    if (!rc) {
      const char *uid = trb_stream_rec_by_ttl(w) ? "\t" TRB_TTL_PRINCIPAL "\n" : "\t\\N\n";
      rc = trb_buf_append(b, uid, strlen(uid));
    }
    if (rc) return copy_end(k, b, "out of memory", what, st);
    if ((rc = copy_put(k, b, COPY_CHUNK, what, st))) return rc;
  }
  rc = copy_end(k, b, NULL, what, st);
  if (!rc) k->pend_hist += n;
  return rc;
}

/* Upserts (item != NULL) and deletes (item NULL) of distinct keys, through
 * the stage table. */
typedef struct upsert {
  const trb_av *keys;
  const trb_av *item;
  uint64_t lsn;
} upsert;

/* Rows of keys that did not exist before the batch (their first change in
 * it is an INSERT): one COPY straight into the replica, the cost of the
 * ceiling. A row that is there after all (a snapshot taken after the
 * change: the overlap a resumed snapshot leaves) fails it with a unique
 * violation, and the batch is done again with merges only. */
static trb_err replica_direct(pg_sink *k, pg_tab *t, const upsert *u, size_t n, trb_status *st) {
  static const char what[] = "copying new rows into the replica";
  trb_buf *b = &k->copy;
  trb_buf_reset(b);
  char keys[700];
  if (t->ks.has_sk) snprintf(keys, sizeof keys, "%s, %s", t->q_k1, t->q_k2);
  else snprintf(keys, sizeof keys, "%s", t->q_k1);
  if (sqlf(k, "COPY %s (%s, item, lsn) FROM STDIN", t->q_dest, keys)) return TRB_ENOMEM;
  trb_err rc = copy_start(k, SQL(k), what, st);
  for (size_t i = 0; i < n && !rc; i++) {
    char tail[32];
    rc = copy_keys(t, b, u[i].keys);
    if (!rc) rc = trb_buf_append(b, "\t", 1);
    if (!rc) rc = copy_doc(k, b, u[i].item);
    snprintf(tail, sizeof tail, "\t%" PRIu64 "\n", u[i].lsn);
    if (!rc) rc = trb_buf_append(b, tail, strlen(tail));
    if (rc) return copy_end(k, b, "out of memory", what, st);
    rc = copy_put(k, b, COPY_CHUNK, what, st);
  }
  if (!rc) rc = copy_end(k, b, NULL, what, st);
  if (!rc) k->pend_rows += n;
  return rc;
}

static trb_err replica_rows(pg_sink *k, pg_tab *t, const upsert *u, size_t n, trb_status *st) {
  if (!n) return TRB_OK;
  trb_err rc = tab_stage(k, t, st);
  if (rc) return rc;
  static const char what[] = "copying into the stage table";
  trb_buf *b = &k->copy;
  trb_buf_reset(b);
  size_t ndel = 0;
  /* ON COMMIT DELETE ROWS empties it at the end of each transaction; only
   * a second use in one transaction (change by change) empties it here */
  if (t->stage_dirty) {
    if (sqlf(k, "DELETE FROM %s", t->q_stage)) return TRB_ENOMEM;
    if ((rc = exec(k, SQL(k), "emptying the stage table", st))) return rc;
  }
  if (sqlf(k, "COPY %s FROM STDIN", t->q_stage)) return TRB_ENOMEM;
  t->stage_dirty = 1;
  if ((rc = copy_start(k, SQL(k), what, st))) return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    char tail[40];
    rc = copy_keys(t, b, u[i].keys);
    if (!rc) rc = trb_buf_append(b, "\t", 1);
    if (!rc) rc = copy_doc(k, b, u[i].item);
    snprintf(tail, sizeof tail, "\t%" PRIu64 "\t%c\n", u[i].lsn, u[i].item ? 'f' : 't');
    if (!rc) rc = trb_buf_append(b, tail, strlen(tail));
    ndel += !u[i].item;
    if (rc) return copy_end(k, b, "out of memory", what, st);
    rc = copy_put(k, b, COPY_CHUNK, what, st);
  }
  if (!rc) rc = copy_end(k, b, NULL, what, st);
  if (rc) return rc;
  char keys[700], join[1600];
  if (t->ks.has_sk) {
    snprintf(keys, sizeof keys, "%s, %s", t->q_k1, t->q_k2);
    snprintf(join, sizeof join, "d.%s = s.%s AND d.%s = s.%s", t->q_k1, t->q_k1, t->q_k2,
             t->q_k2);
  } else {
    snprintf(keys, sizeof keys, "%s", t->q_k1);
    snprintf(join, sizeof join, "d.%s = s.%s", t->q_k1, t->q_k1);
  }
  if (ndel) {
    if (sqlf(k, "DELETE FROM %s d USING %s s WHERE s.del AND %s", t->q_dest, t->q_stage, join))
      return TRB_ENOMEM;
    if ((rc = exec(k, SQL(k), "deleting from the replica", st))) return rc;
  }
  if (ndel < n) {
    trb_buf cols, vals, sets;
    trb_buf_init(&cols, 0), trb_buf_init(&vals, 0), trb_buf_init(&sets, 0);
    for (size_t i = 0; i < t->ncols; i++) {
      char *qn = quote_ident(k->conn, t->cols[i].name);
      if (!qn) continue;
      trb_buf_append(&cols, ", ", 2), trb_buf_append(&cols, qn, strlen(qn));
      trb_buf_append(&vals, ", ", 2);
      trb_buf_append(&vals, t->cols[i].expr, strlen(t->cols[i].expr));
      trb_buf_append(&sets, ", ", 2), trb_buf_append(&sets, qn, strlen(qn));
      trb_buf_append(&sets, " = EXCLUDED.", 12), trb_buf_append(&sets, qn, strlen(qn));
      free(qn);
    }
    trb_buf_append(&cols, "", 1), trb_buf_append(&vals, "", 1), trb_buf_append(&sets, "", 1);
    char skeys[800];
    if (t->ks.has_sk) snprintf(skeys, sizeof skeys, "s.%s, s.%s", t->q_k1, t->q_k2);
    else snprintf(skeys, sizeof skeys, "s.%s", t->q_k1);
    int bad = sqlf(k, "INSERT INTO %s (%s, item, lsn%s) SELECT %s, s.item, s.lsn%s FROM %s s "
                   "WHERE NOT s.del ON CONFLICT (%s) DO UPDATE SET item = EXCLUDED.item, lsn = "
                   "EXCLUDED.lsn%s",
                   t->q_dest, keys, (char *)cols.p, skeys, (char *)vals.p, t->q_stage, keys,
                   (char *)sets.p);
    trb_buf_fini(&cols), trb_buf_fini(&vals), trb_buf_fini(&sets);
    if (bad) return TRB_ENOMEM;
    if ((rc = exec(k, SQL(k), "writing the replica", st))) return rc;
  }
  k->pend_rows += n;
  return TRB_OK;
}

/* Orders views by key (their COPY text), then LSN. */
typedef struct keyed {
  char *key;
  size_t len;
  size_t i;                 /* index in the views */
} keyed;

static int keyed_cmp(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->key, y->key, m);
  if (c) return c;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* One table's changes (in LSN order), history and collapsed replica. */
/* parts: TRB_PG_HISTORY and/or TRB_PG_REPLICA, of what the table has. */
static trb_err apply_table(pg_sink *k, pg_tab *t, rec_view *v, size_t n, int parts,
                           trb_status *st) {
  trb_err rc = tab_ready(k, t, st);
  if (rc || !n) return rc;
  int mode = t->mode & parts;
  if ((mode & TRB_PG_HISTORY) && (rc = history_rows(k, t, v, n, st))) return rc;
  if (!(mode & TRB_PG_REPLICA)) return TRB_OK;
  keyed *ks = calloc(n, sizeof *ks);
  upsert *u = calloc(n, sizeof *u);
  size_t nu = 0;
  if (!ks || !u) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < n; i++) {
    trb_buf_reset(&k->tmp);
    if (copy_keys(t, &k->tmp, v[i].keys) || !(ks[i].key = malloc(k->tmp.len + 1))) {
      rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
      break;
    }
    memcpy(ks[i].key, k->tmp.p, k->tmp.len);
    ks[i].len = k->tmp.len, ks[i].i = i;
  }
  if (!rc) {
    /* Merged rows fill u from the front, new ones from the back. Typed
     * columns are computed in the merge, so their tables merge everything. */
    int direct = !k->merge_only && t->ncols == 0;
    size_t nd = 0;
    qsort(ks, n, sizeof *ks, keyed_cmp);
    for (size_t i = 0, first = 0; i < n; i++) {
      if (i + 1 < n && ks[i + 1].len == ks[i].len && !memcmp(ks[i + 1].key, ks[i].key, ks[i].len))
        continue; /* a later change of the same key wins */
      rec_view *x = &v[ks[i].i];
      int gone = x->r->wal->kind == TRB_WAL_REMOVE;
      int fresh = direct && !gone && v[ks[first].i].r->wal->kind == TRB_WAL_INSERT;
      upsert one = {.keys = x->keys, .item = gone ? NULL : x->new_img, .lsn = x->r->wal->lsn};
      if (fresh) u[n - ++nd] = one;
      else u[nu++] = one;
      first = i + 1;
    }
    rc = replica_rows(k, t, u, nu, st);
    if (!rc && nd) rc = replica_direct(k, t, u + n - nd, nd, st);
  }
  for (size_t i = 0; ks && i < n; i++) free(ks[i].key);
  free(ks);
  free(u);
  return rc;
}

static trb_err dead_letter(pg_sink *k, pg_tab *t, rec_view *v, const trb_status *why,
                           const char *sqlstate, trb_status *st) {
  if (!v->old_img && v->r->wal->old_len)
    (void)trb_av_decode(v->r->wal->old_img, v->r->wal->old_len, &v->old_img);
  json_t *rec = json_pack("{s:s,s:s,s:o*,s:o*,s:o*}", "table", t->src, "eventName",
                          event_name(v->r->wal), "Keys", trb_item_to_json(v->keys),
                          "NewImage", v->new_img ? trb_item_to_json(v->new_img) : NULL,
                          "OldImage", v->old_img ? trb_item_to_json(v->old_img) : NULL);
  char *txt = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
  json_decref(rec);
  if (!txt) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  char lsn[24], seq[TRB_SEQNO_BUF];
  snprintf(lsn, sizeof lsn, "%" PRIu64, v->r->wal->lsn);
  trb_seqno_format(v->r->wal->lsn, seq);
  const char *p[] = {k->name, t->src, lsn, seq, event_name(v->r->wal), sqlstate,
                     trb_status_msg(why), txt};
  if (sqlf(k, "INSERT INTO %s.dead_letters (sink, source_table, lsn, sequence_number, "
           "event_name, sqlstate, error, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
           k->q_ctl)) {
    free(txt);
    return TRB_ENOMEM;
  }
  trb_err rc = query(k, SQL(k), 8, p, NULL, "writing a dead letter", st);
  free(txt);
  if (!rc) {
    k->pend_dead++;
    trb_log_warn("postgres", "table %s, LSN %s: PostgreSQL refused the change, it is in "
                 "%s.dead_letters: %s", t->src, lsn, k->ctl, trb_status_msg(why));
  }
  return rc;
}

static void commit_stats(pg_sink *k) {
  for (size_t i = 0; i < k->ntabs; i++) k->tabs[i].stage_dirty = 0;
  pthread_mutex_lock(&k->mu);
  k->stats.rows_applied += k->pend_rows;
  k->stats.history_rows += k->pend_hist;
  k->stats.dead_letters += k->pend_dead;
  pthread_mutex_unlock(&k->mu);
  k->pend_rows = k->pend_hist = k->pend_dead = 0;
}

/* ---- snapshots ---------------------------------------------------------- */

/* "pk:S" or "pk:S,sk:N": what the key columns are. */
static void key_sig(const trb_keyschema *ks, char *out, size_t cap) {
  if (ks->has_sk)
    snprintf(out, cap, "%s:%s,%s:%s", ks->pk_name, trb_type_name(ks->pk_type), ks->sk_name,
             trb_type_name(ks->sk_type));
  else
    snprintf(out, cap, "%s:%s", ks->pk_name, trb_type_name(ks->pk_type));
}

/* t's key schema as the table has it now (quoted names too). */
static trb_err tab_set_keys(pg_sink *k, pg_tab *t, const trb_keyschema *ks, trb_status *st) {
  t->ks = *ks;
  free(t->q_k1), free(t->q_k2);
  t->q_k1 = quote_ident(k->conn, ks->pk_name);
  t->q_k2 = ks->has_sk ? quote_ident(k->conn, ks->sk_name) : NULL;
  t->ready = t->stage_made = 0;
  if (!t->q_k1 || (ks->has_sk && !t->q_k2)) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  /* a stage with the old key's columns may exist on this connection */
  if (k->conn && !sqlf(k, "DROP TABLE IF EXISTS pg_temp.%s", t->q_stage))
    return exec(k, SQL(k), "dropping a stage table", st);
  return TRB_OK;
}

/* A table deleted and created again: its replica starts empty; when its
 * key is another, the replica is made again with the new key columns and
 * the old history is kept aside as <table>_history_<old table id>. */
static trb_err tab_reset(pg_sink *k, pg_tab *t, const char *old_sig, uint64_t old_tid,
                         trb_status *st) {
  char sig[600];
  key_sig(&t->ks, sig, sizeof sig);
  int other_key = old_sig && old_sig[0] && strcmp(old_sig, sig) != 0;
  trb_err rc = TRB_OK;
  if (other_key) {
    char hist[100];
    snprintf(hist, sizeof hist, "%s_history_%" PRIu64, t->table, old_tid);
    char *qh = quote_ident(k->conn, hist);
    if (!qh) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    trb_log_info("postgres", "table %s was created again with another key (%s, was %s): its "
                 "replica is made again%s%s", t->src, sig, old_sig,
                 (t->mode & TRB_PG_HISTORY) ? ", its old history is now " : "",
                 (t->mode & TRB_PG_HISTORY) ? hist : "");
    if (!sqlf(k, "DROP TABLE IF EXISTS %s", t->q_dest)) rc = exec(k, SQL(k), "dropping the replica", st);
    if (!rc && !sqlf(k, "ALTER TABLE IF EXISTS %s RENAME TO %s", t->q_hist, qh))
      rc = exec(k, SQL(k), "keeping the old history", st);
    free(qh);
    t->ready = 0;
    return rc;
  }
  if ((t->mode & TRB_PG_REPLICA) && !(rc = tab_ready(k, t, st)) &&
      !sqlf(k, "TRUNCATE %s", t->q_dest))
    rc = exec(k, SQL(k), "emptying the replica", st);
  return rc;
}

static trb_err set_state(pg_sink *k, pg_tab *t, const char *state, uint64_t snap_lsn,
                         const void *key, size_t kl, uint64_t items, int add_items,
                         trb_status *st) {
  char tid[24], sl[24], it[24], strm[24];
  snprintf(tid, sizeof tid, "%" PRIu64, t->table_id);
  snprintf(strm, sizeof strm, "%" PRIu64, t->stream_lsn);
  snprintf(sl, sizeof sl, "%" PRIu64, snap_lsn);
  snprintf(it, sizeof it, "%" PRIu64, items);
  char *hex = NULL;
  if (key) {
    static const char hx[] = "0123456789abcdef";
    hex = malloc(2 * kl + 3);
    if (!hex) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    hex[0] = '\\', hex[1] = 'x';
    for (size_t i = 0; i < kl; i++)
      hex[2 + 2 * i] = hx[((const unsigned char *)key)[i] >> 4],
      hex[3 + 2 * i] = hx[((const unsigned char *)key)[i] & 15];
    hex[2 + 2 * kl] = '\0';
  }
  char dest[200];
  snprintf(dest, sizeof dest, "%s.%s", t->schema, t->table);
  char ksig[600];
  key_sig(&t->ks, ksig, sizeof ksig);
  const char *p[] = {k->name, t->src, tid, state, sl, hex, it, dest, strm, ksig};
  if (sqlf(k, "INSERT INTO %s.tables (sink, source_table, table_id, state, snapshot_lsn, "
           "snapshot_key, snapshot_items, destination, stream_lsn, key_schema) VALUES ($1, $2, "
           "$3, $4, $5, $6::bytea, $7, $8, $9, $10) ON CONFLICT (sink, source_table) DO UPDATE "
           "SET table_id = EXCLUDED.table_id, stream_lsn = EXCLUDED.stream_lsn, key_schema = "
           "EXCLUDED.key_schema,"
           " state = EXCLUDED.state, snapshot_lsn = EXCLUDED.snapshot_lsn, snapshot_key = "
           "EXCLUDED.snapshot_key, snapshot_items = %s, destination = EXCLUDED.destination, "
           "updated_at = now()",
           k->q_ctl, add_items ? "tables.snapshot_items + EXCLUDED.snapshot_items"
                               : "EXCLUDED.snapshot_items")) {
    free(hex);
    return TRB_ENOMEM;
  }
  trb_err rc = query(k, SQL(k), 10, p, NULL, "recording the table's state", st);
  free(hex);
  return rc;
}

/* Copies t from snapshots: from the start, or after the last key copied
 * (resume). Ends with t streaming, skip_through = the first snapshot's LSN. */
static trb_err snapshot_table(pg_sink *k, pg_tab *t, uint64_t s1, const void *after,
                              size_t after_len, uint64_t done_items, trb_status *st) {
  if (!k->src || !k->src->snap_open)
    return trb_status_set(st, TRB_ECONFIG, "postgres: table %s needs a snapshot (its changes "
                          "are not all in the WAL) and this sink has no snapshot source",
                          t->src);
  uint64_t tid = 0, slsn = 0, total = 0;
  trb_keyschema ks;
  if (k->src->describe(k->src->ctx, t->src, &tid, &slsn, &total, &ks) != 1 ||
      tid != t->table_id)
    return trb_status_set(st, TRB_EIO, "postgres: table %s changed during its snapshot",
                          t->src);
  void *snap = NULL;
  uint64_t lsn = 0;
  trb_err rc = k->src->snap_open(k->src->ctx, t->src, after, after_len, &snap, &lsn, st);
  if (rc) return rc;
  if (!s1) { /* a new copy: the replica starts empty */
    s1 = lsn;
    trb_log_info("postgres", "table %s: its changes are not all in the WAL; copying a snapshot "
                 "at LSN %" PRIu64 " (%" PRIu64 " items) into %s.%s", t->src, s1, total,
                 t->schema, t->table);
    if (!(rc = exec(k, "BEGIN", "beginning a transaction", st)) &&
        !(rc = tab_ready(k, t, st)) && (t->mode & TRB_PG_REPLICA)) {
      if (!sqlf(k, "TRUNCATE %s", t->q_dest)) rc = exec(k, SQL(k), "emptying the replica", st);
    }
    if (!rc) rc = set_state(k, t, "snapshot", s1, NULL, 0, 0, 0, st);
    if (!rc) rc = exec(k, "COMMIT", "committing", st);
    if (rc) rollback(k);
  } else {
    trb_log_info("postgres", "table %s: resuming its snapshot after %" PRIu64 " items (now at "
                 "LSN %" PRIu64 ")", t->src, done_items, lsn);
  }
  int64_t t0 = trb_mono_ns(), last_log = t0;
  uint64_t copied = 0;
  upsert *u = calloc(SNAP_CHUNK, sizeof *u);
  trb_av **items = calloc(SNAP_CHUNK, sizeof *items);
  trb_buf lastkey;
  trb_buf_init(&lastkey, 0);
  if (!u || !items) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
  while (!rc) {
    size_t m = 0;
    while (m < SNAP_CHUNK) {
      trb_av *item = NULL;
      const void *key;
      size_t kl;
      if ((rc = k->src->snap_next(snap, &item, &key, &kl, st)) || !item) break;
      trb_av *keys = trb_key_from_item(&t->ks, item);
      if (!keys) {
        trb_av_destroy(item);
        rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
        break;
      }
      items[m] = item;
      u[m] = (upsert){.keys = keys, .item = item, .lsn = s1};
      m++;
      trb_buf_reset(&lastkey);
      trb_buf_append(&lastkey, key, kl);
    }
    if (!rc && m) {
      rc = exec(k, "BEGIN", "beginning a transaction", st);
      if (!rc) rc = tab_ready(k, t, st);
      if (!rc && (t->mode & TRB_PG_REPLICA)) rc = replica_rows(k, t, u, m, st);
      if (!rc) rc = set_state(k, t, "snapshot", s1, lastkey.p, lastkey.len, m, 1, st);
      if (!rc) rc = exec(k, "COMMIT", "committing", st);
      if (rc) rollback(k);
      else commit_stats(k);
    }
    for (size_t i = 0; i < m; i++) {
      trb_av_destroy((trb_av *)u[i].keys);
      trb_av_destroy(items[i]);
    }
    if (rc) break;
    copied += m;
    stat_add(k, &k->stats.snapshot_items, m);
    int64_t now = trb_mono_ns();
    if (m < SNAP_CHUNK || now - last_log >= 2000000000LL) {
      double secs = (double)(now - t0) / 1e9;
      double rate = secs > 0 ? (double)copied / secs : 0;
      uint64_t have = done_items + copied;
      double left = rate > 0 && total > have ? (double)(total - have) / rate : 0;
      trb_log_info("postgres", "table %s: snapshot %" PRIu64 " of about %" PRIu64 " items "
                   "(%.0f%%), %.0f items/s, about %.0f s left", t->src, have, total,
                   total ? 100.0 * (double)have / (double)total : 100.0, rate, left);
      last_log = now;
    }
    if (m < SNAP_CHUNK) break;
  }
  k->src->snap_close(snap);
  free(u);
  free(items);
  trb_buf_fini(&lastkey);
  if (rc) return rc;
  if ((rc = set_state(k, t, "streaming", s1, NULL, 0, 0, 1, st))) return rc;
  t->skip_through = s1;
  t->known = 1;
  trb_log_info("postgres", "table %s: snapshot done; changes after LSN %" PRIu64 " follow",
               t->src, s1);
  return TRB_OK;
}

/* Loads t's state, copying it first when needed: at open (ck_seen = the
 * checkpoint) or at its first change. */
static trb_err tab_known(pg_sink *k, pg_tab *t, trb_status *st) {
  if (t->known || !t->mode) return TRB_OK;
  uint64_t tid = 0, slsn = 0, items = 0;
  trb_keyschema ks;
  if (!k->src) { /* no source to ask: every change applies */
    t->known = 1;
    return TRB_OK;
  }
  if (k->src->describe(k->src->ctx, t->src, &tid, &slsn, &items, &ks) != 1) {
    /* Deleted since: its changes are skipped (see ps_deliver), and it is
     * asked again, so a table created again under the name is seen. */
    t->table_id = 0;
    return TRB_OK;
  }
  trb_err rc = tab_set_keys(k, t, &ks, st);
  if (rc) return rc;
  t->table_id = tid;
  t->stream_lsn = slsn;
  const char *p[] = {k->name, t->src};
  if (sqlf(k, "SELECT table_id, state, snapshot_lsn, snapshot_key, snapshot_items, stream_lsn, "
           "coalesce(key_schema, '') FROM %s.tables WHERE sink = $1 AND source_table = $2",
           k->q_ctl))
    return TRB_ENOMEM;
  PGresult *r = NULL;
  rc = query(k, SQL(k), 2, p, &r, "reading the table's state", st);
  if (rc) return rc;
  int have = PQntuples(r) > 0;
  uint64_t row_tid = have ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  int snapshotting = have && !strcmp(PQgetvalue(r, 0, 1), "snapshot");
  uint64_t s1 = have ? strtoull(PQgetvalue(r, 0, 2), NULL, 10) : 0;
  uint64_t done = have ? strtoull(PQgetvalue(r, 0, 4), NULL, 10) : 0;
  uint64_t row_slsn = have ? strtoull(PQgetvalue(r, 0, 5), NULL, 10) : 0;
  char row_sig[600] = "";
  if (have) snprintf(row_sig, sizeof row_sig, "%s", PQgetvalue(r, 0, 6));
  size_t kl = 0;
  unsigned char *key = NULL;
  if (have && !PQgetisnull(r, 0, 3))
    key = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 3), &kl);
  PQclear(r);
  if (have && row_tid == tid && k->gap && (t->mode & TRB_PG_REPLICA)) {
    /* The WAL no longer holds every change after the checkpoint (the sink
     * was away, or broken, while retention trimmed). */
    trb_log_warn("postgres", "table %s: the WAL no longer holds the changes after the sink's "
                 "checkpoint (LSN %" PRIu64 "); its replica is copied again", t->src, k->ck);
    rc = snapshot_table(k, t, 0, NULL, 0, 0, st);
  } else if (have && row_tid == tid && !snapshotting && row_slsn != slsn && slsn &&
             (t->mode & TRB_PG_REPLICA)) {
    /* Its stream was disabled and enabled again: the changes in between
     * were in no stream. */
    trb_log_warn("postgres", "table %s: its stream was disabled and enabled again (it now starts "
                 "at LSN %" PRIu64 "); the changes in between are in no stream, so its replica "
                 "is copied again", t->src, slsn);
    rc = snapshot_table(k, t, 0, NULL, 0, 0, st);
  } else if (have && row_tid == tid && !snapshotting) {
    t->skip_through = s1;
    t->known = 1;
    if (row_slsn != slsn) rc = set_state(k, t, "streaming", s1, NULL, 0, 0, 0, st);
  } else if (have && row_tid == tid) {
    rc = snapshot_table(k, t, s1, key, kl, done, st);
  } else {
    uint64_t first = k->src->wal_first_lsn ? k->src->wal_first_lsn(k->src->ctx) : 1;
    int complete = slsn == tid && k->ck < tid && first <= tid;
    if (have) {
      trb_log_info("postgres", "table %s was deleted and created again: its replica starts "
                   "over", t->src);
      rc = tab_reset(k, t, row_sig, row_tid, st); /* the old one's rows go */
    }
    if (rc) {
      /* said */
    } else if (complete) {
      rc = set_state(k, t, "streaming", 0, NULL, 0, 0, 0, st);
      if (!rc) t->skip_through = 0, t->known = 1;
    } else {
      rc = snapshot_table(k, t, 0, NULL, 0, 0, st);
    }
  }
  PQfreemem(key);
  return rc;
}

/* ---- the sink interface ------------------------------------------------ */

static trb_err ps_open(trb_sink *s, uint64_t *checkpoint, trb_status *st) {
  pg_sink *k = (pg_sink *)s;
  trb_err rc = ensure_conn(k, st);
  if (rc) return rc;
  uint64_t first0 = k->src && k->src->wal_first_lsn ? k->src->wal_first_lsn(k->src->ctx) : 0;
  k->gap = k->ck && first0 > k->ck + 1;
  /* Tables that exist now: their state, and snapshots where needed. */
  if (k->src && k->src->tables) {
    char **names = NULL;
    size_t n = 0;
    if ((rc = k->src->tables(k->src->ctx, &names, &n, st))) return rc;
    /* The tables this sink has sent before first: one of two whose
     * PostgreSQL tables would be one keeps its place (tab_clash). */
    PGresult *sent = NULL;
    if (sqlf(k, "SELECT source_table FROM %s.tables WHERE sink = $1", k->q_ctl))
      rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    const char *sp[] = {k->name};
    if (!rc) rc = query(k, SQL(k), 1, sp, &sent, "reading the tables sent before", st);
    for (size_t x = 0; !rc && x < 2 * n; x++) {
      size_t i = x % n;
      int before = 0;
      for (int j = 0; sent && j < PQntuples(sent) && !before; j++)
        before = !strcmp(PQgetvalue(sent, j, 0), names[i]);
      if ((x < n) != before) continue; /* pass 1: sent before; pass 2: the others */
      uint64_t tid, slsn, items;
      trb_keyschema ks;
      if (k->src->describe(k->src->ctx, names[i], &tid, &slsn, &items, &ks) != 1 || !slsn)
        continue; /* no stream: nothing to send (yet) */
      pg_tab *t = tab_find(k, names[i]);
      if (!t) rc = tab_add(k, names[i], &ks, &t, st);
      if (!rc) rc = tab_known(k, t, st);
      /* its tables as the config has them now: a typed column added to
       * the config is added and filled at start, not at the next change */
      if (!rc) rc = tab_ready(k, t, st);
    }
    PQclear(sent);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc) return rc;
  }
  uint64_t first = k->src && k->src->wal_first_lsn ? k->src->wal_first_lsn(k->src->ctx) : 0;
  k->gap = 0;
  /* Changes below the WAL's start are in the snapshots just taken. */
  *checkpoint = first > k->ck + 1 ? first - 1 : k->ck;
  k->opened = 1;
  trb_log_info("postgres", "sink %s connected; checkpoint LSN %" PRIu64, k->name, k->ck);
  return TRB_OK;
}

/* The checkpoint rows: '*' and one per shard in the batch. */
static trb_err save_ck(pg_sink *k, const trb_sink_rec *recs, size_t n, uint64_t through,
                       trb_status *st) {
  trb_buf *b = &k->tmp;
  trb_buf_reset(b);
  char head[300];
  snprintf(head, sizeof head, "INSERT INTO %s.checkpoints (sink, shard_id, lsn, sequence_number)"
           " VALUES (%s, '*', %" PRIu64 ", NULL)", k->q_ctl, k->l_name, through);
  trb_err rc = trb_buf_append(b, head, strlen(head));
  /* the last record of each shard: walk backwards, first seen wins */
  for (size_t i = n; !rc && i-- > 0;) {
    int seen = 0;
    for (size_t j = i + 1; j < n && !seen; j++) seen = !strcmp(recs[j].shard_id, recs[i].shard_id);
    if (seen) continue;
    char *lit = quote_lit(k->conn, recs[i].shard_id);
    char seq[TRB_SEQNO_BUF], row[200];
    trb_seqno_format(recs[i].wal->lsn, seq);
    if (!lit) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    snprintf(row, sizeof row, ", (%s, %.80s, %" PRIu64 ", '%s')", k->l_name, lit,
             recs[i].wal->lsn, seq);
    free(lit);
    rc = trb_buf_append(b, row, strlen(row));
  }
  const char *tail = " ON CONFLICT (sink, shard_id) DO UPDATE SET lsn = EXCLUDED.lsn, "
                     "sequence_number = coalesce(EXCLUDED.sequence_number, "
                     "checkpoints.sequence_number), updated_at = now()";
  if (!rc) rc = trb_buf_append(b, tail, strlen(tail) + 1);
  if (rc) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  return exec(k, (const char *)b->p, "writing the checkpoint", st);
}

/* One attempt at the whole batch in one transaction. slow: change by
 * change in savepoints, refused ones to the dead letters. */
static trb_err apply_batch(pg_sink *k, const trb_sink_rec *recs, rec_view *v, pg_tab **tabs,
                           size_t n, uint64_t through, int slow, trb_status *st) {
  k->pend_rows = k->pend_hist = k->pend_dead = 0;
  if (slow) k->merge_only = 1;
  trb_err rc = exec(k, "BEGIN", "beginning a transaction", st);
  if (rc) return rc;
  if (!slow) {
    /* per table, its changes in LSN order (views of one table are runs
     * gathered by index) */
    size_t *idx = k->idx;
    rec_view *run = calloc(n ? n : 1, sizeof *run);
    if (!run) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) idx[i] = 0;
    for (size_t i = 0; !rc && i < n; i++) {
      if (!tabs[i] || idx[i]) continue;
      size_t m = 0;
      for (size_t j = i; j < n; j++)
        if (tabs[j] == tabs[i] && !idx[j]) run[m++] = v[j], idx[j] = 1;
      rc = apply_table(k, tabs[i], run, m, TRB_PG_HISTORY | TRB_PG_REPLICA, st);
    }
    free(run);
  } else {
    for (size_t i = 0; !rc && i < n; i++) {
      if (!tabs[i]) continue;
      /* tables and stage outside the savepoint: a rollback to it keeps them */
      if ((rc = tab_ready(k, tabs[i], st))) break;
      if ((tabs[i]->mode & TRB_PG_REPLICA) && (rc = tab_stage(k, tabs[i], st))) break;
      /* the history and the replica each in a savepoint: a value the
       * replica's typed column refuses still has its history row */
      static const int parts[2] = {TRB_PG_HISTORY, TRB_PG_REPLICA};
      for (int pi = 0; !rc && pi < 2; pi++) {
        if (!(tabs[i]->mode & parts[pi])) continue;
        if ((rc = exec(k, "SAVEPOINT trb_change", "making a savepoint", st))) break;
        trb_status one;
        trb_status_init(&one);
        rc = apply_table(k, tabs[i], &v[i], 1, parts[pi], &one);
        if (rc == TRB_EINVAL) {
          if ((rc = exec(k, "ROLLBACK TO SAVEPOINT trb_change", "rolling back a change", st)))
            break;
          /* the stage table's rows went with the savepoint; it still exists */
          if (k->o.stop_on_error) {
            rc = trb_status_set(st, TRB_EFAILED, "postgres: table %s, LSN %" PRIu64 ": %s; the "
                                "sink stops (postgres.on_error: stop): fix the value or the "
                                "column type and restart", tabs[i]->src, v[i].r->wal->lsn,
                                trb_status_msg(&one));
            break;
          }
          char state[8];
          snprintf(state, sizeof state, "%s", k->last_state);
          rc = dead_letter(k, tabs[i], &v[i], &one, state[0] ? state : NULL, st);
        } else if (rc) {
          *st = one;
        } else {
          rc = exec(k, "RELEASE SAVEPOINT trb_change", "releasing a savepoint", st);
        }
      }
      if (rc) break;
    }
  }
  if (!rc) rc = save_ck(k, recs, n, through, st);
  if (!rc) rc = exec(k, "COMMIT", "committing", st);
  if (rc) rollback(k);
  else commit_stats(k);
  return rc;
}

/* Tables created after the checkpoint (up to through) that no change has
 * made known yet: they are complete in the WAL, every change of theirs
 * comes after the checkpoint. Their state is settled here, before the
 * checkpoint passes their creation: heartbeats and other tables' changes
 * move it, and tab_known at a first change that comes later would find
 * the checkpoint past the creation and copy a snapshot, which would leave
 * the changes it holds out of the history. */
static trb_err register_new(pg_sink *k, uint64_t through, trb_status *st) {
  if (!k->src || !k->src->tables) return TRB_OK;
  char **names = NULL;
  size_t n = 0;
  trb_err rc = k->src->tables(k->src->ctx, &names, &n, st);
  for (size_t i = 0; !rc && i < n; i++) {
    pg_tab *t = tab_find(k, names[i]);
    if (t && (t->known || !t->mode)) continue;
    uint64_t tid, slsn, items;
    trb_keyschema ks;
    if (k->src->describe(k->src->ctx, names[i], &tid, &slsn, &items, &ks) != 1 || !slsn ||
        tid <= k->ck || tid > through)
      continue;
    if (!t) rc = tab_add(k, names[i], &ks, &t, st);
    if (!rc) rc = tab_known(k, t, st); /* with the checkpoint still before tid */
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static trb_err ps_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  pg_sink *k = (pg_sink *)s;
  int was = k->conn != NULL;
  trb_err rc = ensure_conn(k, st);
  if (rc) return rc;
  if (!was) trb_log_info("postgres", "sink %s connected again; checkpoint LSN %" PRIu64, k->name,
                         k->ck);
  if (through <= k->ck) return TRB_OK; /* committed already (an answer lost on the way) */
  if ((rc = register_new(k, through, st))) return rc == TRB_ECONFIG ? TRB_EFAILED : rc;
  if (n > k->capidx) {
    size_t *ni = realloc(k->idx, n * sizeof *ni);
    if (!ni) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    k->idx = ni, k->capidx = n;
  }
  rec_view *v = calloc(n ? n : 1, sizeof *v);
  pg_tab **tabs = calloc(n ? n : 1, sizeof *tabs);
  if (!v || !tabs) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
  /* First the tables' states: a table met for the first time, created
   * again (a newer table id) or whose stream was enabled again (a new
   * label) may be emptied or copied from a snapshot here, which moves what
   * of the batch still applies; so the changes are picked afterwards. */
  for (size_t i = 0; !rc && i < n; i++) {
    const trb_sink_rec *r = &recs[i];
    pg_tab *t = tab_find(k, r->stream->table);
    if (!t) rc = tab_add(k, r->stream->table, &r->stream->ks, &t, st);
    if (!rc && t->known && t->mode && t->table_id && k->src) {
      if (r->wal->table_id < t->table_id) continue; /* a deleted table's change */
      if (r->wal->table_id > t->table_id ||
          (t->label[0] && strcmp(t->label, r->stream->label) != 0))
        t->known = 0;
    }
    if (!rc) rc = tab_known(k, t, st);
    if (!rc) snprintf(t->label, sizeof t->label, "%s", r->stream->label);
  }
  for (size_t i = 0; !rc && i < n; i++) {
    const trb_sink_rec *r = &recs[i];
    pg_tab *t = tab_find(k, r->stream->table); /* k->tabs is stable from here */
    if (!t || !t->mode || !t->known || r->wal->lsn <= k->ck || r->wal->lsn <= t->skip_through ||
        (k->src && r->wal->table_id != t->table_id))
      continue; /* a deleted table's (known 0), an older or newer one's of the name */
    if ((rc = view_init(&v[i], r, t->mode & TRB_PG_HISTORY, st))) break;
    tabs[i] = t;
  }
  if (!rc) {
    k->merge_only = 0;
    rc = apply_batch(k, recs, v, tabs, n, through, 0, st);
    if (rc == TRB_EINVAL && !strcmp(k->last_state, "23505") && !k->merge_only) {
      trb_status_init(st);
      k->merge_only = 1;
      rc = apply_batch(k, recs, v, tabs, n, through, 0, st);
    }
    if (rc == TRB_EINVAL) {
      trb_log_warn("postgres", "a batch was refused (%s); applying it change by change",
                   trb_status_msg(st));
      trb_status_init(st);
      rc = apply_batch(k, recs, v, tabs, n, through, 1, st);
    }
    if (rc == TRB_EINVAL) rc = TRB_EIO; /* never skipped: retried */
  }
  if (!rc) k->ck = through;
  /* A configuration PostgreSQL cannot take (a name too long, a clash) does
   * not pass with retries: the sink stops, saying what to fix. */
  if (rc == TRB_ECONFIG) rc = TRB_EFAILED;
  for (size_t i = 0; v && i < n; i++) view_fini(&v[i]);
  free(v);
  free(tabs);
  return rc;
}

static void ps_destroy(trb_sink *s) {
  pg_sink *k = (pg_sink *)s;
  if (!k) return;
  if (k->conn) PQfinish(k->conn);
  for (size_t i = 0; i < k->ntabs; i++) tab_free(&k->tabs[i]);
  free(k->tabs);
  free(k->conninfo), free(k->name), free(k->schema), free(k->ctl), free(k->q_ctl),
      free(k->l_name), free(k->idx);
  json_decref(k->tables_cfg);
  trb_buf_fini(&k->sql), trb_buf_fini(&k->copy), trb_buf_fini(&k->doc), trb_buf_fini(&k->tmp);
  pthread_mutex_destroy(&k->mu);
  free(k);
}

static const trb_sink_ops pg_ops = {
    .kind = "postgres", .open = ps_open, .deliver = ps_deliver, .destroy = ps_destroy};

void trb_pg_sink_get_stats(trb_sink *s, trb_pg_sink_stats *out) {
  pg_sink *k = (pg_sink *)s;
  pthread_mutex_lock(&k->mu);
  *out = k->stats;
  pthread_mutex_unlock(&k->mu);
}

trb_err trb_pg_sink_create(const trb_pg_sink_opts *o, trb_sink **out, trb_status *st) {
  *out = NULL;
  if (!o->conninfo || !o->conninfo[0])
    return trb_status_set(st, TRB_ECONFIG, "postgres.conninfo is empty");
  if (!o->sink_name || !o->sink_name[0])
    return trb_status_set(st, TRB_ECONFIG, "postgres: the sink needs a name");
  json_error_t je;
  json_t *tc = json_loads(o->tables_json && o->tables_json[0] ? o->tables_json : "{}", 0, &je);
  if (!json_is_object(tc)) {
    json_decref(tc);
    return trb_status_set(st, TRB_ECONFIG, "postgres.tables: not a mapping: %s", je.text);
  }
  pg_sink *k = calloc(1, sizeof *k);
  if (!k) {
    json_decref(tc);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  k->base.ops = &pg_ops;
  k->base.wants_record = 0;
  k->o = *o;
  k->o.mode = o->mode ? o->mode : TRB_PG_REPLICA;
  k->conninfo = xstrdup(o->conninfo);
  k->name = xstrdup(o->sink_name);
  k->schema = xstrdup(o->schema && o->schema[0] ? o->schema : "public");
  k->ctl = xstrdup(o->control_schema && o->control_schema[0] ? o->control_schema : "tributary");
  k->tables_cfg = tc;
  k->src = o->source;
  pthread_mutex_init(&k->mu, NULL);
  trb_buf_init(&k->sql, 0), trb_buf_init(&k->copy, 0), trb_buf_init(&k->doc, 0),
      trb_buf_init(&k->tmp, 0);
  if (!k->conninfo || !k->name || !k->schema || !k->ctl) {
    ps_destroy(&k->base);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  *out = &k->base;
  return TRB_OK;
}
