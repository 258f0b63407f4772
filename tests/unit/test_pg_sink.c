/*
 * test_pg_sink.c -- the PostgreSQL sink (sinks/pg_sink.c) driven directly,
 * as the processor drives it, against a real PostgreSQL started by the
 * group setup in a temporary directory (the newest
 * /usr/lib/postgresql/<v>/bin; a Unix socket only, no TCP; as the
 * 'postgres' user when we are root). No PostgreSQL server: the tests fail,
 * they are not skipped.
 *
 * Records are built by hand (item encodings of trb_av maps), the tables
 * and their snapshots come from a fake trb_sink_source, and what the sink
 * wrote is read back over libpq. Every test uses its own schema, control
 * schema and sink name, so they do not see each other's rows.
 *
 * The last four tests are cases the sink gets wrong (found reading
 * pg_sink.c); each comment says what goes wrong, the assertion says what
 * the header comment and README promise:
 *   test_checkpoint_behind_wal_start   a checkpoint older than the WAL's
 *                                      start: known tables are not re-copied
 *   test_recreated_after_seen_deleted  a table first met while deleted, then
 *                                      created again: old rows stay
 *   test_dead_letter_long_value        a long error text loses the SQLSTATE
 *   test_recreated_other_key           created again with another key schema
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/keyenc.h"
#include "engine/value.h"
#include "sinks/pg_sink.h"
#include "testutil.h"
#include "transform/stream_record.h"
#include "util/buf.h"
#include "util/log.h"

/* ---- the server ---------------------------------------------------------- */

typedef struct pg_server {
  char *dir;           /* the temp dir: data/, the socket, logs */
  char bindir[256];
  char data[4200];
  char conninfo[4400];
  int port;
  int as_postgres;     /* we are root: binaries run as 'postgres' */
  int started;
  PGconn *db;          /* the test's own connection (checks) */
} pg_server;

static pg_server g_pg;

/* The newest /usr/lib/postgresql/<version>/bin holding pg_ctl. */
static int find_bindir(char *out, size_t cap) {
  DIR *d = opendir("/usr/lib/postgresql");
  if (!d) return -1;
  long best = -1;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char *end = NULL;
    long v = strtol(de->d_name, &end, 10);
    char p[600];
    snprintf(p, sizeof p, "/usr/lib/postgresql/%s/bin/pg_ctl", de->d_name);
    if (end == de->d_name || access(p, X_OK) != 0) continue;
    /* "15" or "9.6": major, then minor */
    long key = v * 1000 + (end && *end == '.' ? strtol(end + 1, NULL, 10) : 0);
    if (key > best) {
      best = key;
      snprintf(out, cap, "/usr/lib/postgresql/%.200s/bin", de->d_name);
    }
  }
  closedir(d);
  return best < 0 ? -1 : 0;
}

static void print_file_tail(const char *path) {
  size_t len = 0;
  char *s = trb_test_read_file(path, &len);
  if (!s) return;
  const char *p = len > 4000 ? s + len - 4000 : s;
  fprintf(stderr, "---- %s ----\n%s\n----\n", path, p);
  free(s);
}

/* Runs bindir/prog args... (as 'postgres' when root) in the temp dir,
 * output to <dir>/cmd.log; its exit status (-1 when it could not run). */
static int run_pg(const char *prog, const char *const *args) {
  char exe[512], log[4200];
  snprintf(exe, sizeof exe, "%s/%s", g_pg.bindir, prog);
  snprintf(log, sizeof log, "%s/cmd.log", g_pg.dir);
  const char *argv[32];
  size_t n = 0;
  static const char *const runusers[] = {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser",
                                         "/bin/runuser"};
  if (g_pg.as_postgres) {
    const char *ru = NULL;
    for (size_t i = 0; i < sizeof runusers / sizeof *runusers && !ru; i++)
      if (access(runusers[i], X_OK) == 0) ru = runusers[i];
    if (!ru) {
      fprintf(stderr, "test_pg_sink: running as root and no runuser to run %s as postgres\n", prog);
      return -1;
    }
    argv[n++] = ru, argv[n++] = "-u", argv[n++] = "postgres", argv[n++] = "--";
  }
  argv[n++] = exe;
  for (size_t i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0666);
    int in = open("/dev/null", O_RDONLY);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    if (in >= 0) dup2(in, 0);
    if (chdir(g_pg.dir) != 0) _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc != 0) {
    fprintf(stderr, "test_pg_sink: %s failed (status %d)\n", exe, rc);
    print_file_tail(log);
  }
  return rc;
}

static int pg_group_teardown(void **state);

static int setup_failed(void) {
  fprintf(stderr, "test_pg_sink: FAILED: the test PostgreSQL server could not be set up\n");
  pg_group_teardown(NULL);
  return -1;
}

static int pg_group_setup(void **state) {
  (void)state;
  memset(&g_pg, 0, sizeof g_pg);
  if (find_bindir(g_pg.bindir, sizeof g_pg.bindir)) {
    fprintf(stderr, "test_pg_sink: FAILED: no PostgreSQL server binaries in "
                    "/usr/lib/postgresql/*/bin (install postgresql): this test needs one\n");
    return -1;
  }
  g_pg.dir = trb_test_mkdtemp("pg");
  if (!g_pg.dir) {
    fprintf(stderr, "test_pg_sink: cannot make a temp dir: %s\n", strerror(errno));
    return -1;
  }
  /* from here a failure stops what was started and removes the dir */
  g_pg.as_postgres = geteuid() == 0;
  if (g_pg.as_postgres) {
    struct passwd *pw = getpwnam("postgres");
    if (!pw || chown(g_pg.dir, pw->pw_uid, pw->pw_gid) != 0) {
      fprintf(stderr, "test_pg_sink: running as root, but cannot give %s to the postgres user\n",
              g_pg.dir);
      return setup_failed();
    }
    /* the postgres user must reach the dir: every parent traversable */
    char p[4096];
    snprintf(p, sizeof p, "%s", g_pg.dir);
    for (;;) {
      char *slash = strrchr(p, '/');
      if (!slash) break;
      if (slash == p) slash[1] = '\0';
      else *slash = '\0';
      struct stat sb;
      if (stat(p, &sb) == 0 && !(sb.st_mode & S_IXOTH)) chmod(p, (sb.st_mode & 07777) | S_IXOTH);
      if (!strcmp(p, "/")) break;
    }
  }
  chmod(g_pg.dir, 0755);
  /* Unix socket only: the port just names the socket file in our dir */
  g_pg.port = 40000 + (int)(getpid() % 20000);
  snprintf(g_pg.data, sizeof g_pg.data, "%s/data", g_pg.dir);
  char pglog[4200], opts[4600];
  snprintf(pglog, sizeof pglog, "%s/pg.log", g_pg.dir);
  snprintf(opts, sizeof opts, "-c listen_addresses='' -c unix_socket_directories='%s' -c port=%d "
           "-c fsync=off -c max_connections=40", g_pg.dir, g_pg.port);
  const char *initdb[] = {"-D", g_pg.data, "-A", "trust", "-U", "postgres", "--no-sync",
                          "-E", "UTF8", "--locale=C", NULL};
  if (run_pg("initdb", initdb)) return setup_failed();
  const char *start[] = {"start", "-w", "-t", "60", "-D", g_pg.data, "-l", pglog, "-o", opts, NULL};
  g_pg.started = 1; /* a start that timed out may still leave a server: teardown stops it */
  if (run_pg("pg_ctl", start)) {
    print_file_tail(pglog);
    return setup_failed();
  }
  snprintf(g_pg.conninfo, sizeof g_pg.conninfo, "host=%s port=%d dbname=postgres user=postgres",
           g_pg.dir, g_pg.port);
  g_pg.db = PQconnectdb(g_pg.conninfo);
  if (PQstatus(g_pg.db) != CONNECTION_OK) {
    fprintf(stderr, "test_pg_sink: cannot connect to the test server (%s): %s\n", g_pg.conninfo,
            PQerrorMessage(g_pg.db));
    print_file_tail(pglog);
    return setup_failed();
  }
  PGresult *r = PQexec(g_pg.db, "SET client_min_messages = warning");
  PQclear(r);
  return 0;
}

static int pg_group_teardown(void **state) {
  (void)state;
  if (g_pg.db) PQfinish(g_pg.db);
  g_pg.db = NULL;
  if (g_pg.started) {
    const char *stop[] = {"stop", "-D", g_pg.data, "-m", "immediate", "-w", "-t", "60", NULL};
    run_pg("pg_ctl", stop);
  }
  if (g_pg.dir) trb_test_rmrf(g_pg.dir);
  free(g_pg.dir);
  g_pg.dir = NULL;
  return 0;
}

/* ---- reading PostgreSQL back -------------------------------------------- */

/* The first column of the first row of the query, or NULL (SQL NULL or no
 * row); the test fails on an SQL error. Static ring of results. */
static const char *qv(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *qv(const char *file, int line, const char *fmt, ...) {
  static char ring[8][8192];
  static int next;
  char sql[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  PGresult *r = PQexec(g_pg.db, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
    print_error("query failed: %s\n  %s\n", sql, PQresultErrorMessage(r));
    PQclear(r);
    _fail(file, line);
  }
  const char *out = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
    char *b = ring[next++ % 8];
    snprintf(b, sizeof ring[0], "%s", PQgetvalue(r, 0, 0));
    out = b;
  }
  PQclear(r);
  return out;
}
#define Q(...) qv(__FILE__, __LINE__, __VA_ARGS__)

/* The query's single value must be `want` (NULL: SQL NULL or no row). */
static void check_q(const char *file, int line, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_q(const char *file, int line, const char *want, const char *fmt, ...) {
  char sql[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  const char *got = qv(file, line, "%s", sql);
  if ((!got && !want) || (got && want && !strcmp(got, want))) return;
  print_error("%s\n  want: %s\n  got:  %s\n", sql, want ? want : "(NULL)", got ? got : "(NULL)");
  _fail(file, line);
}
#define EXPECT_Q(want, ...) check_q(__FILE__, __LINE__, want, __VA_ARGS__)

static const char *seqno(uint64_t lsn) {
  static char ring[8][TRB_SEQNO_BUF];
  static int next;
  char *b = ring[next++ % 8];
  trb_seqno_format(lsn, b);
  return b;
}

/* ---- what a test made, freed by its teardown (also when it fails) ---- */

typedef struct batch batch;
typedef struct fsrc fsrc;
static void batch_free(batch *b);
static void fs_free(fsrc *f);

static struct {
  trb_sink *sinks[16];
  batch *batches[32];
  fsrc *srcs[8];
} g_live;

static void live_add(void **slots, size_t n, void *p) {
  for (size_t i = 0; i < n; i++)
    if (!slots[i]) {
      slots[i] = p;
      return;
    }
  fail_msg("test_pg_sink: too many live objects");
}

static void sink_close(trb_sink *s) {
  for (size_t i = 0; i < 16; i++)
    if (g_live.sinks[i] == s) g_live.sinks[i] = NULL;
  s->ops->destroy(s);
}

static int test_cleanup(void **state) {
  (void)state;
  for (size_t i = 0; i < 16; i++)
    if (g_live.sinks[i]) g_live.sinks[i]->ops->destroy(g_live.sinks[i]);
  for (size_t i = 0; i < 32; i++) batch_free(g_live.batches[i]);
  for (size_t i = 0; i < 8; i++) fs_free(g_live.srcs[i]);
  memset(&g_live, 0, sizeof g_live);
  return 0;
}

/* ---- items --------------------------------------------------------------- */

/* item("id", 'S', "a", "n", 'N', "12.5", "ok", 'T', "1", NULL): an M of
 * name, type (S, N, B: the bytes of the string, T: BOOL "0"/"1"), value. */
static trb_av *item(const char *name, ...) {
  trb_av *m = trb_av_new_m();
  assert_non_null(m);
  va_list ap;
  va_start(ap, name);
  for (const char *n = name; n; n = va_arg(ap, const char *)) {
    int type = va_arg(ap, int);
    const char *val = va_arg(ap, const char *);
    trb_av *v = NULL;
    if (type == 'S') v = trb_av_new_s(val, strlen(val));
    else if (type == 'B') v = trb_av_new_b(val, strlen(val));
    else if (type == 'T') v = trb_av_new_bool(val[0] == '1');
    else {
      trb_dec d;
      assert_int_equal(trb_dec_parse(val, strlen(val), &d, NULL), TRB_OK);
      v = trb_av_new_n(&d);
    }
    assert_non_null(v);
    assert_int_equal(trb_av_m_set(m, n, strlen(n), v), TRB_OK);
  }
  va_end(ap);
  return m;
}

/* ---- records ------------------------------------------------------------- */

#define MAXREC 64
#define COMMIT_US 1796000000123456ll
#define SHARD_A "shardId-00000001796000000000-0000000a"
#define SHARD_B "shardId-00000001796000000000-0000000b"

struct batch {
  trb_wal_rec w[MAXREC];
  trb_buf kb[MAXREC], nb[MAXREC], ob[MAXREC];
  trb_sink_rec r[MAXREC];
  size_t n;
};

static batch *batch_new(void) {
  batch *b = calloc(1, sizeof *b);
  assert_non_null(b);
  live_add((void **)g_live.batches, 32, b);
  return b;
}

static void batch_free(batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++)
    trb_buf_fini(&b->kb[i]), trb_buf_fini(&b->nb[i]), trb_buf_fini(&b->ob[i]);
  free(b);
}

static void stream_info(trb_stream_info *si, const char *table, const char *label) {
  memset(si, 0, sizeof *si);
  snprintf(si->table, sizeof si->table, "%s", table);
  snprintf(si->label, sizeof si->label, "%s", label);
  si->view = TRB_VIEW_NEW_AND_OLD_IMAGES;
  strcpy(si->ks.pk_name, "id");
  si->ks.pk_type = TRB_T_S;
  si->ks.has_sk = 0;
  si->enabled = 1;
}

/* Appends a change; takes (and frees) the images. REMOVE: old only, INSERT:
 * new only, MODIFY: both. */
static void add(batch *b, const trb_stream_info *si, int kind, uint64_t lsn, uint64_t table_id,
                uint64_t txn, const char *shard, trb_av *old_img, trb_av *new_img) {
  assert_true(b->n < MAXREC);
  size_t i = b->n++;
  trb_buf_init(&b->kb[i], 0), trb_buf_init(&b->nb[i], 0), trb_buf_init(&b->ob[i], 0);
  trb_av *keys = trb_key_from_item(&si->ks, new_img ? new_img : old_img);
  assert_non_null(keys);
  assert_int_equal(trb_av_encode(keys, &b->kb[i]), TRB_OK);
  trb_av_destroy(keys);
  trb_wal_rec *w = &b->w[i];
  memset(w, 0, sizeof *w);
  if (new_img) {
    assert_int_equal(trb_av_encode(new_img, &b->nb[i]), TRB_OK);
    w->new_img = b->nb[i].p, w->new_len = b->nb[i].len;
  }
  if (old_img) {
    assert_int_equal(trb_av_encode(old_img, &b->ob[i]), TRB_OK);
    w->old_img = b->ob[i].p, w->old_len = b->ob[i].len;
  }
  trb_av_destroy(new_img);
  trb_av_destroy(old_img);
  w->lsn = lsn;
  w->commit_us = COMMIT_US;
  w->kind = (uint8_t)kind;
  w->table_id = table_id;
  w->txn_id = txn;
  w->table = si->table;
  w->table_len = strlen(si->table);
  w->keys = b->kb[i].p, w->keys_len = b->kb[i].len;
  b->r[i] = (trb_sink_rec){.wal = w, .stream = si, .shard_id = shard, .record = NULL};
}

/* ---- the fake source ------------------------------------------------------ */

typedef struct fitem {
  char key[32];        /* the "store key": any bytes, the snapshot's order */
  size_t klen;
  trb_av *item;
} fitem;

typedef struct ftab {
  char name[64];
  uint64_t table_id, stream_lsn, snap_lsn;
  trb_keyschema ks;
  fitem items[16];
  size_t nitems;
} ftab;

struct fsrc {
  ftab t[4];
  size_t n;
  uint64_t first_lsn;
  int snap_opens;
  trb_sink_source src;
};

typedef struct fsnap {
  ftab *t;
  size_t pos;
} fsnap;

static ftab *fs_find(fsrc *f, const char *name) {
  for (size_t i = 0; i < f->n; i++)
    if (!strcmp(f->t[i].name, name)) return &f->t[i];
  return NULL;
}

static trb_err fs_tables(void *ctx, char ***names, size_t *n, trb_status *st) {
  (void)st;
  fsrc *f = ctx;
  *names = calloc(f->n ? f->n : 1, sizeof **names);
  assert_non_null(*names);
  for (size_t i = 0; i < f->n; i++) (*names)[i] = strdup(f->t[i].name);
  *n = f->n;
  return TRB_OK;
}

static int fs_describe(void *ctx, const char *table, uint64_t *table_id, uint64_t *stream_lsn,
                       uint64_t *items, trb_keyschema *ks) {
  ftab *t = fs_find(ctx, table);
  if (!t) return 0;
  *table_id = t->table_id, *stream_lsn = t->stream_lsn, *items = t->nitems, *ks = t->ks;
  return 1;
}

static uint64_t fs_first(void *ctx) { return ((fsrc *)ctx)->first_lsn; }

static trb_err fs_snap_open(void *ctx, const char *table, const void *after, size_t after_len,
                            void **snap, uint64_t *lsn, trb_status *st) {
  fsrc *f = ctx;
  ftab *t = fs_find(f, table);
  if (!t) return trb_status_set(st, TRB_ENOTFOUND, "no table %s", table);
  fsnap *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->t = t;
  if (after) /* resume after that key */
    while (s->pos < t->nitems) {
      const fitem *it = &t->items[s->pos];
      size_t m = it->klen < after_len ? it->klen : after_len;
      int c = memcmp(it->key, after, m);
      if (c > 0 || (c == 0 && it->klen > after_len)) break;
      s->pos++;
    }
  *snap = s;
  *lsn = t->snap_lsn;
  f->snap_opens++;
  return TRB_OK;
}

static trb_err fs_snap_next(void *snap, trb_av **item_out, const void **key, size_t *key_len,
                            trb_status *st) {
  (void)st;
  fsnap *s = snap;
  if (s->pos >= s->t->nitems) {
    *item_out = NULL;
    return TRB_OK;
  }
  fitem *it = &s->t->items[s->pos++];
  *item_out = trb_av_copy(it->item);
  assert_non_null(*item_out);
  *key = it->key, *key_len = it->klen;
  return TRB_OK;
}

static void fs_snap_close(void *snap) { free(snap); }

static fsrc *fs_new(void) {
  fsrc *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->first_lsn = 1;
  live_add((void **)g_live.srcs, 8, f);
  f->src = (trb_sink_source){.ctx = f, .tables = fs_tables, .describe = fs_describe,
                           .wal_first_lsn = fs_first, .snap_open = fs_snap_open,
                           .snap_next = fs_snap_next, .snap_close = fs_snap_close};
  return f;
}

static ftab *fs_add(fsrc *f, const char *name, uint64_t table_id, uint64_t stream_lsn) {
  assert_true(f->n < 4);
  ftab *t = &f->t[f->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->table_id = table_id, t->stream_lsn = stream_lsn;
  strcpy(t->ks.pk_name, "id");
  t->ks.pk_type = TRB_T_S;
  return t;
}

/* Items must be added in key order (a store's order). */
static void fs_item(ftab *t, const char *key, trb_av *it) {
  assert_true(t->nitems < 16);
  fitem *x = &t->items[t->nitems++];
  snprintf(x->key, sizeof x->key, "%s", key);
  x->klen = strlen(key);
  x->item = it;
}

static void fs_free(fsrc *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++)
    for (size_t j = 0; j < f->t[i].nitems; j++) trb_av_destroy(f->t[i].items[j].item);
  free(f);
}

/* ---- the sink --------------------------------------------------------------- */

typedef struct names {
  char sink[64], schema[64], ctl[64];
} names;

static void mk_names(names *n, const char *base) {
  snprintf(n->sink, sizeof n->sink, "%s", base);
  snprintf(n->schema, sizeof n->schema, "%s_dst", base);
  snprintf(n->ctl, sizeof n->ctl, "%s_ctl", base);
}

static trb_sink *mk_sink(const names *nm, int mode, const char *tables_json, int stop_on_error,
                         fsrc *f) {
  trb_pg_sink_opts o = {.conninfo = g_pg.conninfo, .sink_name = nm->sink, .schema = nm->schema,
                        .control_schema = nm->ctl, .mode = mode, .stop_on_error = stop_on_error,
                        .tables_json = tables_json, .source = f ? &f->src : NULL};
  trb_sink *s = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_pg_sink_create(&o, &s, &st);
  if (rc) print_error("trb_pg_sink_create: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_non_null(s);
  live_add((void **)g_live.sinks, 16, s);
  return s;
}

static uint64_t sink_open(trb_sink *s) {
  trb_status st;
  trb_status_init(&st);
  uint64_t ck = 12345;
  trb_err rc = s->ops->open(s, &ck, &st);
  if (rc) print_error("open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return ck;
}

static trb_err deliver(trb_sink *s, const batch *b, uint64_t through, trb_status *st) {
  trb_status_init(st);
  return s->ops->deliver(s, b ? b->r : NULL, b ? b->n : 0, through, st);
}

static void deliver_ok(trb_sink *s, const batch *b, uint64_t through) {
  trb_status st;
  trb_err rc = deliver(s, b, through, &st);
  if (rc) print_error("deliver through %" PRIu64 ": %s: %s\n", through, trb_err_name(rc),
                      trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
}

#define INS TRB_WAL_INSERT
#define MOD TRB_WAL_MODIFY
#define REM TRB_WAL_REMOVE

/* ---- 1. replica and history ---------------------------------------------- */

static void test_replica_and_history(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_both");
  fsrc *f = fs_new();
  fs_add(f, "t1", 1, 1); /* its stream started with it: complete in the WAL */
  trb_stream_info si;
  stream_info(&si, "t1", "2026-01-01T00:00:00.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, "{\"t1\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  EXPECT_Q("streaming|1|0", "SELECT state || '|' || table_id || '|' || snapshot_lsn FROM %s.tables "
           "WHERE sink = '%s' AND source_table = 't1'", nm.ctl, nm.sink);

  const char *big = "12345678901234567890123456789012345678";
  const char *small = "-0.12345678901234567890123456789012345678";
  batch *b1 = batch_new();
  add(b1, &si, INS, 2, 1, 0, SHARD_B, NULL, item("id", 'S', "b", "n", 'N', "1", NULL));
  deliver_ok(s, b1, 2);
  EXPECT_Q("b|1|2", "SELECT id || '|' || (item->>'n') || '|' || lsn FROM %s.t1", nm.schema);

  batch *b2 = batch_new();
  add(b2, &si, INS, 3, 1, 77, SHARD_A, NULL, item("id", 'S', "a", "n", 'N', big, "s", 'S', "x", NULL));
  add(b2, &si, MOD, 4, 1, 77, SHARD_A, item("id", 'S', "a", "n", 'N', big, "s", 'S', "x", NULL),
      item("id", 'S', "a", "n", 'N', small, "s", 'S', "tab\there", NULL));
  add(b2, &si, REM, 5, 1, 77, SHARD_B, item("id", 'S', "b", "n", 'N', "1", NULL), NULL);
  deliver_ok(s, b2, 6); /* through past the batch's last record (a heartbeat's worth) */

  /* the replica: A with its last image, B gone; numbers exact */
  EXPECT_Q("1", "SELECT count(*) FROM %s.t1", nm.schema);
  EXPECT_Q("a|4", "SELECT id || '|' || lsn FROM %s.t1", nm.schema);
  EXPECT_Q("{\"n\": -0.12345678901234567890123456789012345678, \"s\": \"tab\\there\", \"id\": \"a\"}",
           "SELECT item::text FROM %s.t1 WHERE id = 'a'", nm.schema);
  EXPECT_Q(small, "SELECT item->>'n' FROM %s.t1 WHERE id = 'a'", nm.schema);

  /* the history: every change once, in LSN order */
  char want[2048];
  snprintf(want, sizeof want,
           "2:INSERT:%s:-:" SHARD_B ":b,3:INSERT:%s:77:" SHARD_A ":a,4:MODIFY:%s:77:" SHARD_A
           ":a,5:REMOVE:%s:77:" SHARD_B ":b",
           seqno(2), seqno(3), seqno(4), seqno(5));
  EXPECT_Q(want, "SELECT string_agg(lsn || ':' || event_name || ':' || sequence_number || ':' || "
           "coalesce(transaction_id, '-') || ':' || shard_id || ':' || id, ',' ORDER BY lsn) "
           "FROM %s.t1_history", nm.schema);
  EXPECT_Q("100000000000000000004", "SELECT sequence_number FROM %s.t1_history WHERE lsn = 4",
           nm.schema);
  EXPECT_Q("NULL -> {\"n\": 12345678901234567890123456789012345678, \"s\": \"x\", \"id\": \"a\"}",
           "SELECT coalesce(old_image::text, 'NULL') || ' -> ' || coalesce(new_image::text, 'NULL') "
           "FROM %s.t1_history WHERE lsn = 3", nm.schema);
  EXPECT_Q("{\"n\": 12345678901234567890123456789012345678, \"s\": \"x\", \"id\": \"a\"} -> "
           "{\"n\": -0.12345678901234567890123456789012345678, \"s\": \"tab\\there\", \"id\": \"a\"}",
           "SELECT coalesce(old_image::text, 'NULL') || ' -> ' || coalesce(new_image::text, 'NULL') "
           "FROM %s.t1_history WHERE lsn = 4", nm.schema);
  EXPECT_Q("{\"n\": 1, \"id\": \"b\"} -> NULL",
           "SELECT coalesce(old_image::text, 'NULL') || ' -> ' || coalesce(new_image::text, 'NULL') "
           "FROM %s.t1_history WHERE lsn = 5", nm.schema);
  EXPECT_Q(big, "SELECT new_image->>'n' FROM %s.t1_history WHERE lsn = 3", nm.schema);
  EXPECT_Q("4", "SELECT count(*) FROM %s.t1_history WHERE (extract(epoch FROM commit_time) * "
           "1000000)::bigint = 1796000000123456", nm.schema);

  /* the checkpoint rows: '*' = through, one per shard = its last record */
  snprintf(want, sizeof want, "*=6/-,%s=4/%s,%s=5/%s", SHARD_A, seqno(4), SHARD_B, seqno(5));
  EXPECT_Q(want, "SELECT string_agg(shard_id || '=' || lsn || '/' || coalesce(sequence_number, '-'), "
           "',' ORDER BY shard_id) FROM %s.checkpoints WHERE sink = '%s'", nm.ctl, nm.sink);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", nm.ctl);

  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(s, &ps);
  assert_int_equal(ps.rows_applied, 3);
  assert_int_equal(ps.history_rows, 4);
  assert_int_equal(ps.dead_letters, 0);
  assert_int_equal(ps.connected, 1);
  sink_close(s);
}


/* ---- 1b. a composite key: N partition key, B sort key --------------------- */

static void test_composite_key(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_comp");
  fsrc *f = fs_new();
  ftab *t = fs_add(f, "tc", 1, 1);
  trb_stream_info si;
  stream_info(&si, "tc", "2026-01-01T00:00:00.000");
  strcpy(si.ks.pk_name, "p");
  si.ks.pk_type = TRB_T_N;
  si.ks.has_sk = 1;
  strcpy(si.ks.sk_name, "s");
  si.ks.sk_type = TRB_T_B;
  t->ks = si.ks;
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, "{\"tc\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b1 = batch_new();
  add(b1, &si, INS, 2, 1, 0, SHARD_A, NULL, item("p", 'N', "1.50", "s", 'B', "k\t1", "v", 'S', "1", NULL));
  add(b1, &si, INS, 3, 1, 0, SHARD_A, NULL, item("p", 'N', "1.5", "s", 'B', "k\t2", "v", 'S', "1", NULL));
  add(b1, &si, INS, 4, 1, 0, SHARD_B, NULL, item("p", 'N', "-2e3", "s", 'B', "k\t1", "v", 'S', "1", NULL));
  deliver_ok(s, b1, 4);
  batch *b2 = batch_new();
  add(b2, &si, MOD, 5, 1, 0, SHARD_A, item("p", 'N', "1.5", "s", 'B', "k\t1", "v", 'S', "1", NULL),
      item("p", 'N', "1.5", "s", 'B', "k\t1", "v", 'S', "2", NULL));
  add(b2, &si, REM, 6, 1, 0, SHARD_A, item("p", 'N', "1.5", "s", 'B', "k\t2", "v", 'S', "1", NULL),
      NULL);
  add(b2, &si, MOD, 7, 1, 0, SHARD_B, item("p", 'N', "-2000", "s", 'B', "k\t1", "v", 'S', "1", NULL),
      item("p", 'N', "-2000", "s", 'B', "k\t1", "v", 'S', "3", NULL));
  deliver_ok(s, b2, 7);
  EXPECT_Q("-2000/6b0931=3@7,1.5/6b0931=2@5", "SELECT string_agg(p || '/' || encode(s, 'hex') || '=' "
           "|| (item->>'v') || '@' || lsn, ',' ORDER BY p, s) FROM %s.tc", nm.schema);
  EXPECT_Q("a1x=", "SELECT 'a' || count(*) || 'x=' FROM %s.tc WHERE item->>'s' = 'awkx' AND p = 1.5",
           nm.schema); /* B in item: base64 of "k\t1" */
  EXPECT_Q("2:1.5/6b0931,3:1.5/6b0932,4:-2000/6b0931,5:1.5/6b0931,6:1.5/6b0932,7:-2000/6b0931",
           "SELECT string_agg(lsn || ':' || p || '/' || encode(s, 'hex'), ',' ORDER BY lsn) "
           "FROM %s.tc_history", nm.schema);
  sink_close(s);
}

/* ---- 2. exactly once ------------------------------------------------------ */

static void test_exactly_once(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_once");
  fsrc *f = fs_new();
  fs_add(f, "t2", 1, 1);
  trb_stream_info si;
  stream_info(&si, "t2", "2026-01-01T00:00:00.000");
  const char *tj = "{\"t2\":{}}";
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, tj, 0, f);
  /* a second instance, opened now: its idea of the checkpoint is 0, as a
   * sink's is when the answer to its COMMIT was lost */
  trb_sink *late = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, tj, 0, f);
  assert_int_equal(sink_open(s), 0);
  assert_int_equal(sink_open(late), 0);

  batch *b = batch_new();
  add(b, &si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "a", "v", 'N', "1", NULL));
  add(b, &si, INS, 3, 1, 0, SHARD_B, NULL, item("id", 'S', "b", "v", 'N', "1", NULL));
  add(b, &si, MOD, 4, 1, 0, SHARD_A, item("id", 'S', "a", "v", 'N', "1", NULL),
      item("id", 'S', "a", "v", 'N', "2", NULL));
  deliver_ok(s, b, 4);
  const char *rows = "a=2@4,b=1@3";
  const char *rq = "SELECT string_agg(id || '=' || (item->>'v') || '@' || lsn, ',' ORDER BY id) "
                   "FROM %s.t2";
  EXPECT_Q(rows, rq, nm.schema);
  EXPECT_Q("3", "SELECT count(*) FROM %s.t2_history", nm.schema);

  /* the same batch again, same through */
  deliver_ok(s, b, 4);
  EXPECT_Q(rows, rq, nm.schema);
  EXPECT_Q("3", "SELECT count(*) FROM %s.t2_history", nm.schema);
  EXPECT_Q("4", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);

  /* a lost COMMIT answer: the batch is in PostgreSQL, the sink believes it
   * is not (late's checkpoint is 0) and its connection broke; the retries
   * must settle it from the checkpoint read back, not apply it again */
  Q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tributary'");
  for (int i = 0; i < 200 && strcmp(Q("SELECT count(*) FROM pg_stat_activity WHERE "
                                      "application_name = 'tributary'"), "0"); i++)
    usleep(20000);
  EXPECT_Q("0", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tributary'");
  trb_status st;
  trb_err rc = TRB_EIO;
  for (int attempt = 0; attempt < 3 && rc; attempt++) {
    rc = deliver(late, b, 4, &st);
    if (rc) assert_int_equal(rc, TRB_EIO); /* the broken connection: retried */
  }
  if (rc) print_error("late deliver: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  EXPECT_Q(rows, rq, nm.schema);
  EXPECT_Q("3", "SELECT count(*) FROM %s.t2_history", nm.schema);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", nm.ctl);
  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(late, &ps);
  assert_int_equal(ps.rows_applied, 0);
  assert_int_equal(ps.history_rows, 0);
  sink_close(late);
  /* the first one reconnects too (its backend was terminated as well) */
  rc = TRB_EIO;
  for (int attempt = 0; attempt < 3 && rc; attempt++) rc = deliver(s, b, 4, &st);
  assert_int_equal(rc, TRB_OK);
  sink_close(s);

  /* a new sink on the same names: open returns the checkpoint */
  trb_sink *s2 = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, tj, 0, f);
  assert_int_equal(sink_open(s2), 4);
  deliver_ok(s2, b, 4);
  EXPECT_Q(rows, rq, nm.schema);
  EXPECT_Q("3", "SELECT count(*) FROM %s.t2_history", nm.schema);
  /* a batch overlapping the checkpoint: only what is past it applies */
  batch *b2 = batch_new();
  add(b2, &si, INS, 3, 1, 0, SHARD_B, NULL, item("id", 'S', "b", "v", 'N', "1", NULL));
  add(b2, &si, MOD, 4, 1, 0, SHARD_A, item("id", 'S', "a", "v", 'N', "1", NULL),
      item("id", 'S', "a", "v", 'N', "2", NULL));
  add(b2, &si, MOD, 5, 1, 0, SHARD_B, item("id", 'S', "b", "v", 'N', "1", NULL),
      item("id", 'S', "b", "v", 'N', "3", NULL));
  deliver_ok(s2, b2, 5);
  EXPECT_Q("a=2@4,b=3@5", rq, nm.schema);
  EXPECT_Q("2,3,4,5", "SELECT string_agg(lsn::text, ',' ORDER BY lsn) FROM %s.t2_history", nm.schema);
  EXPECT_Q("5", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);
  sink_close(s2);
}

/* ---- 3. collapsing a key's changes ------------------------------------------ */

static void test_collapse(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_collapse");
  fsrc *f = fs_new();
  fs_add(f, "t3", 1, 1);
  trb_stream_info si;
  stream_info(&si, "t3", "2026-01-01T00:00:00.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, "{\"t3\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  /* b exists before the batch (merged), a is new in it (copied directly) */
  batch *b1 = batch_new();
  add(b1, &si, INS, 2, 1, 0, SHARD_B, NULL, item("id", 'S', "b", "v", 'N', "0", NULL));
  deliver_ok(s, b1, 2);

#define IT(k, v) item("id", 'S', k, "v", 'N', v, NULL)
  batch *b = batch_new();
  /* a: INSERT MODIFY REMOVE INSERT MODIFY; b: MODIFY REMOVE INSERT MODIFY MODIFY */
  add(b, &si, INS, 3, 1, 0, SHARD_A, NULL, IT("a", "1"));
  add(b, &si, MOD, 4, 1, 0, SHARD_B, IT("b", "0"), IT("b", "1"));
  add(b, &si, MOD, 5, 1, 0, SHARD_A, IT("a", "1"), IT("a", "2"));
  add(b, &si, REM, 6, 1, 0, SHARD_B, IT("b", "1"), NULL);
  add(b, &si, REM, 7, 1, 0, SHARD_A, IT("a", "2"), NULL);
  add(b, &si, INS, 8, 1, 0, SHARD_B, NULL, IT("b", "3"));
  add(b, &si, INS, 9, 1, 0, SHARD_A, NULL, IT("a", "4"));
  add(b, &si, MOD, 10, 1, 0, SHARD_B, IT("b", "3"), IT("b", "4"));
  add(b, &si, MOD, 11, 1, 0, SHARD_A, IT("a", "4"), IT("a", "5"));
  add(b, &si, MOD, 12, 1, 0, SHARD_B, IT("b", "4"), IT("b", "5"));
#undef IT
  deliver_ok(s, b, 12);
  EXPECT_Q("a=5@11,b=5@12", "SELECT string_agg(id || '=' || (item->>'v') || '@' || lsn, ',' "
           "ORDER BY id) FROM %s.t3", nm.schema);
  EXPECT_Q("INSERT,MODIFY,REMOVE,INSERT,MODIFY", "SELECT string_agg(event_name, ',' ORDER BY lsn) "
           "FROM %s.t3_history WHERE id = 'a'", nm.schema);
  EXPECT_Q("1,2,-,4,5", "SELECT string_agg(coalesce(new_image->>'v', '-'), ',' ORDER BY lsn) "
           "FROM %s.t3_history WHERE id = 'a'", nm.schema);
  EXPECT_Q("INSERT,MODIFY,REMOVE,INSERT,MODIFY,MODIFY", "SELECT string_agg(event_name, ',' ORDER BY "
           "lsn) FROM %s.t3_history WHERE id = 'b'", nm.schema);
  EXPECT_Q("11", "SELECT count(*) FROM %s.t3_history", nm.schema);
  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(s, &ps);
  assert_int_equal(ps.rows_applied, 3); /* b; then a and b, collapsed */
  assert_int_equal(ps.history_rows, 11);
  sink_close(s);
}

/* ---- 4. dead letters, and on_error: stop -------------------------------------- */

static batch *bad_batch(const trb_stream_info *si, uint64_t first) {
  batch *b = batch_new();
  add(b, si, INS, first, 1, 0, SHARD_A, NULL, item("id", 'S', "a", "total", 'N', "10", NULL));
  add(b, si, INS, first + 1, 1, 0, SHARD_B, NULL, item("id", 'S', "b", "total", 'S', "abc", NULL));
  add(b, si, INS, first + 2, 1, 0, SHARD_A, NULL, item("id", 'S', "c", "total", 'N', "2.5", NULL));
  add(b, si, MOD, first + 3, 1, 0, SHARD_A, item("id", 'S', "a", "total", 'N', "10", NULL),
      item("id", 'S', "a", "total", 'N', "11", NULL));
  return b;
}

static void test_dead_letter(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_dead");
  fsrc *f = fs_new();
  fs_add(f, "t4", 1, 1);
  trb_stream_info si;
  stream_info(&si, "t4", "2026-01-01T00:00:00.000");
  const char *tj = "{\"t4\":{\"columns\":{\"total\":\"numeric\"}}}";
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, tj, 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b = bad_batch(&si, 2); /* b (LSN 3) has total "abc" */
  deliver_ok(s, b, 5);
  EXPECT_Q("a=11,c=2.5", "SELECT string_agg(id || '=' || total, ',' ORDER BY id) FROM %s.t4",
           nm.schema);
  EXPECT_Q("11", "SELECT item->>'total' FROM %s.t4 WHERE id = 'a'", nm.schema);
  char want[512];
  snprintf(want, sizeof want, "%s|t4|3|%s|INSERT|22P02", nm.sink, seqno(3));
  EXPECT_Q(want, "SELECT string_agg(sink || '|' || source_table || '|' || lsn || '|' || "
           "sequence_number || '|' || event_name || '|' || coalesce(sqlstate, 'NULL'), ',') "
           "FROM %s.dead_letters", nm.ctl);
  EXPECT_Q("abc", "SELECT record->'NewImage'->'total'->>'S' FROM %s.dead_letters", nm.ctl);
  EXPECT_Q("b", "SELECT record->'Keys'->'id'->>'S' FROM %s.dead_letters", nm.ctl);
  EXPECT_Q("t", "SELECT error LIKE '%%numeric%%' FROM %s.dead_letters", nm.ctl);
  /* the good changes' history rows are there */
  EXPECT_Q("3", "SELECT count(*) FROM %s.t4_history WHERE lsn IN (2, 4, 5)", nm.schema);
  EXPECT_Q("5", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);
  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(s, &ps);
  assert_int_equal(ps.dead_letters, 1);
  sink_close(s);

  /* on_error: stop */
  names ns;
  mk_names(&ns, "ut_stop");
  s = mk_sink(&ns, TRB_PG_REPLICA | TRB_PG_HISTORY, tj, 1, f);
  assert_int_equal(sink_open(s), 0);
  batch *b1 = batch_new();
  add(b1, &si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "z", "total", 'N', "1", NULL));
  deliver_ok(s, b1, 2);
  b = bad_batch(&si, 3); /* the bad one at LSN 4 */
  trb_status st;
  trb_err rc = deliver(s, b, 6, &st);
  assert_int_equal(rc, TRB_EFAILED);
  assert_non_null(strstr(trb_status_msg(&st), "LSN 4"));
  assert_non_null(strstr(trb_status_msg(&st), "t4"));
  EXPECT_Q("z=1", "SELECT string_agg(id || '=' || total, ',' ORDER BY id) FROM %s.t4", ns.schema);
  EXPECT_Q("2", "SELECT string_agg(lsn::text, ',') FROM %s.t4_history", ns.schema);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", ns.ctl);
  EXPECT_Q("2", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", ns.ctl,
           ns.sink);
  /* it stays stopped on that change */
  rc = deliver(s, b, 6, &st);
  assert_int_equal(rc, TRB_EFAILED);
  EXPECT_Q("z=1", "SELECT string_agg(id || '=' || total, ',' ORDER BY id) FROM %s.t4", ns.schema);
  sink_close(s);
}

/* ---- 5. a snapshot's overlap: the direct COPY falls back to merges --------- */

static void test_snapshot_overlap(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_snap");
  fsrc *f = fs_new();
  /* created at 3, its stream enabled at 6: not complete in the WAL */
  ftab *t = fs_add(f, "t5", 3, 6);
  t->snap_lsn = 10;
  fs_item(t, "a", item("id", 'S', "a", "v", 'S', "snap", NULL));
  /* b as a resumed snapshot at a later LSN would have it */
  fs_item(t, "b", item("id", 'S', "b", "v", 'S', "snap", NULL));
  trb_stream_info si;
  stream_info(&si, "t5", "2026-01-01T00:00:00.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, "{\"t5\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  assert_int_equal(f->snap_opens, 1);
  EXPECT_Q("a=snap@10,b=snap@10", "SELECT string_agg(id || '=' || (item->>'v') || '@' || lsn, ',' "
           "ORDER BY id) FROM %s.t5", nm.schema);
  EXPECT_Q("streaming|3|10|2", "SELECT state || '|' || table_id || '|' || snapshot_lsn || '|' || "
           "snapshot_items FROM %s.tables WHERE sink = '%s' AND source_table = 't5'", nm.ctl, nm.sink);
  batch *b = batch_new();
  add(b, &si, INS, 8, 3, 0, SHARD_A, NULL, item("id", 'S', "a", "v", 'S', "old", NULL));
  add(b, &si, INS, 12, 3, 0, SHARD_B, NULL, item("id", 'S', "b", "v", 'S', "new", NULL));
  deliver_ok(s, b, 12);
  EXPECT_Q("a=snap@10,b=new@12", "SELECT string_agg(id || '=' || (item->>'v') || '@' || lsn, ',' "
           "ORDER BY id) FROM %s.t5", nm.schema);
  /* a snapshot is not a change: the history starts after it */
  EXPECT_Q("12:INSERT:b", "SELECT string_agg(lsn || ':' || event_name || ':' || id, ',' ORDER BY "
           "lsn) FROM %s.t5_history", nm.schema);
  EXPECT_Q("12", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", nm.ctl);
  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(s, &ps);
  assert_int_equal(ps.snapshot_items, 2);
  assert_int_equal(ps.dead_letters, 0);
  assert_int_equal(ps.history_rows, 1);
  sink_close(s);
}

/* ---- 6. a table created again in the middle of a batch ------------------------ */

static const char *RQ6 = "SELECT coalesce(string_agg(id || '=' || (item->>'v') || '@' || lsn, ',' "
                         "ORDER BY id), '') FROM %s.t6";

static void test_recreated_mid_batch(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_recreate");
  fsrc *f = fs_new();
  ftab *t = fs_add(f, "t6", 1, 1);
  trb_stream_info old_si, new_si;
  stream_info(&old_si, "t6", "2026-01-01T00:00:00.000");
  stream_info(&new_si, "t6", "2026-01-01T00:00:05.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, "{\"t6\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b1 = batch_new();
  add(b1, &old_si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "old", NULL));
  add(b1, &old_si, INS, 3, 1, 0, SHARD_B, NULL, item("id", 'S', "y", "v", 'S', "old", NULL));
  deliver_ok(s, b1, 3);
  EXPECT_Q("x=old@2,y=old@3", RQ6, nm.schema);

  /* deleted at 4 (after a last change of x), created again at 5 */
  t->table_id = 5, t->stream_lsn = 5;
  batch *b2 = batch_new();
  add(b2, &old_si, MOD, 4, 1, 0, SHARD_A, item("id", 'S', "x", "v", 'S', "old", NULL),
      item("id", 'S', "x", "v", 'S', "old2", NULL));
  add(b2, &new_si, INS, 6, 5, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "new", NULL));
  add(b2, &new_si, INS, 7, 5, 0, SHARD_B, NULL, item("id", 'S', "z", "v", 'S', "new", NULL));
  deliver_ok(s, b2, 7);
  EXPECT_Q("x=new@6,z=new@7", RQ6, nm.schema);
  EXPECT_Q("streaming|5", "SELECT state || '|' || table_id FROM %s.tables WHERE sink = '%s' AND "
           "source_table = 't6'", nm.ctl, nm.sink);
  EXPECT_Q("7", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", nm.ctl);
  sink_close(s);

  /* a sink meeting the table only now (describe already says 5), with the
   * old table's changes and the new one's in its first batch */
  names n2;
  mk_names(&n2, "ut_recreate2");
  s = mk_sink(&n2, TRB_PG_REPLICA | TRB_PG_HISTORY, "{\"t6\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b3 = batch_new();
  add(b3, &old_si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "old", NULL));
  add(b3, &old_si, INS, 3, 1, 0, SHARD_B, NULL, item("id", 'S', "y", "v", 'S', "old", NULL));
  add(b3, &old_si, MOD, 4, 1, 0, SHARD_A, item("id", 'S', "x", "v", 'S', "old", NULL),
      item("id", 'S', "x", "v", 'S', "old2", NULL));
  add(b3, &new_si, INS, 6, 5, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "new", NULL));
  add(b3, &new_si, INS, 7, 5, 0, SHARD_B, NULL, item("id", 'S', "z", "v", 'S', "new", NULL));
  deliver_ok(s, b3, 7);
  EXPECT_Q("x=new@6,z=new@7", RQ6, n2.schema);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", n2.ctl);
  sink_close(s);
}

/* ---- 7. history only ------------------------------------------------------------ */

static void test_history_only(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_hist");
  fsrc *f = fs_new();
  fs_add(f, "t7", 1, 1);
  trb_stream_info si;
  stream_info(&si, "t7", "2026-01-01T00:00:00.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_HISTORY, "{\"t7\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b = batch_new();
  add(b, &si, INS, 2, 1, 9, SHARD_A, NULL, item("id", 'S', "a", "v", 'N', "1", NULL));
  add(b, &si, MOD, 3, 1, 9, SHARD_A, item("id", 'S', "a", "v", 'N', "1", NULL),
      item("id", 'S', "a", "v", 'N', "2", NULL));
  add(b, &si, REM, 4, 1, 0, SHARD_A, item("id", 'S', "a", "v", 'N', "2", NULL), NULL);
  deliver_ok(s, b, 4);
  EXPECT_Q(NULL, "SELECT to_regclass('%s.t7')::text", nm.schema);
  EXPECT_Q("0", "SELECT count(*) FROM information_schema.tables WHERE table_schema = '%s' AND "
           "table_name = 't7'", nm.schema);
  EXPECT_Q("2:INSERT:9,3:MODIFY:9,4:REMOVE:-", "SELECT string_agg(lsn || ':' || event_name || ':' "
           "|| coalesce(transaction_id, '-'), ',' ORDER BY lsn) FROM %s.t7_history", nm.schema);
  EXPECT_Q("4", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);
  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(s, &ps);
  assert_int_equal(ps.rows_applied, 0);
  assert_int_equal(ps.history_rows, 3);
  sink_close(s);
}

/* ---- found while reading the sink: cases it gets wrong ------------------------ */

/* A sink whose checkpoint is older than the WAL's first record (retention
 * went on while it did not hold the WAL: the server ran without it, or it
 * was marked broken by the lag cap). open moves the checkpoint to the WAL's
 * start ("changes below the WAL's start are in the snapshots just taken"),
 * but a table the sink already knows is not copied again: the changes in
 * the gap never reach its replica. */
static void test_checkpoint_behind_wal_start(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_behind");
  fsrc *f = fs_new();
  ftab *t = fs_add(f, "t9", 1, 1);
  trb_stream_info si;
  stream_info(&si, "t9", "2026-01-01T00:00:00.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA, "{\"t9\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b = batch_new();
  add(b, &si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "1", NULL));
  add(b, &si, INS, 3, 1, 0, SHARD_B, NULL, item("id", 'S', "y", "v", 'S', "1", NULL));
  deliver_ok(s, b, 3);
  sink_close(s);
  /* without the sink: y removed, x modified, z put (LSNs 4..9), then
   * retention removed the WAL up to LSN 9 */
  f->first_lsn = 10;
  t->snap_lsn = 12;
  fs_item(t, "x", item("id", 'S', "x", "v", 'S', "2", NULL));
  fs_item(t, "z", item("id", 'S', "z", "v", 'S', "1", NULL));
  s = mk_sink(&nm, TRB_PG_REPLICA, "{\"t9\":{}}", 0, f);
  uint64_t ck = sink_open(s);
  assert_int_equal(ck, 9); /* the processor reads from the WAL's start */
  /* what the replica must hold now: the store (LSNs 4..9 are nowhere else) */
  EXPECT_Q("x=2,z=1", "SELECT coalesce(string_agg(id || '=' || (item->>'v'), ',' ORDER BY id), '') "
           "FROM %s.t9", nm.schema);
  assert_int_equal(f->snap_opens, 1);
  sink_close(s);
}

/* The sink first meets a table's changes after the table was deleted
 * (describe() says no such table: "its changes still apply"), then the
 * table is created again: the new table's changes are applied over the old
 * table's rows, which stay in the replica for good. */
static void test_recreated_after_seen_deleted(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_gone");
  fsrc *f = fs_new(); /* t10 deleted at LSN 4: not in the source */
  trb_stream_info old_si, new_si;
  stream_info(&old_si, "t10", "2026-01-01T00:00:00.000");
  stream_info(&new_si, "t10", "2026-01-01T00:00:05.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA, "{\"t10\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b1 = batch_new();
  add(b1, &old_si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "old", NULL));
  add(b1, &old_si, INS, 3, 1, 0, SHARD_B, NULL, item("id", 'S', "y", "v", 'S', "old", NULL));
  deliver_ok(s, b1, 4);
  /* created again at 5, its stream with it */
  fs_add(f, "t10", 5, 5);
  batch *b2 = batch_new();
  add(b2, &new_si, INS, 6, 5, 0, SHARD_A, NULL, item("id", 'S', "z", "v", 'S', "new", NULL));
  deliver_ok(s, b2, 6);
  EXPECT_Q("z=new", "SELECT coalesce(string_agg(id || '=' || (item->>'v'), ',' ORDER BY id), '') "
           "FROM %s.t10", nm.schema);
  sink_close(s);
}

/* A refused change whose error text is long (the value is in it): the
 * dead letter must still carry the SQLSTATE PostgreSQL gave. */
static void test_dead_letter_long_value(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_dead_long");
  fsrc *f = fs_new();
  fs_add(f, "t4", 1, 1);
  trb_stream_info si;
  stream_info(&si, "t4", "2026-01-01T00:00:00.000");
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA, "{\"t4\":{\"columns\":{\"total\":\"numeric\"}}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  char bad[601];
  memset(bad, 'x', 600);
  bad[600] = '\0';
  batch *b = batch_new();
  add(b, &si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "a", "total", 'N', "1", NULL));
  add(b, &si, INS, 3, 1, 0, SHARD_A, NULL, item("id", 'S', "b", "total", 'S', bad, NULL));
  deliver_ok(s, b, 3);
  EXPECT_Q("a=1", "SELECT string_agg(id || '=' || total, ',' ORDER BY id) FROM %s.t4", nm.schema);
  EXPECT_Q("3|INSERT", "SELECT lsn || '|' || event_name FROM %s.dead_letters", nm.ctl);
  EXPECT_Q("22P02", "SELECT sqlstate FROM %s.dead_letters", nm.ctl);
  sink_close(s);
}

/* A table deleted and created again with another key schema ("starts
 * over"): the new table's changes must reach the replica. */
static void test_recreated_other_key(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_rekey");
  fsrc *f = fs_new();
  ftab *t = fs_add(f, "t11", 1, 1);
  trb_stream_info old_si, new_si;
  stream_info(&old_si, "t11", "2026-01-01T00:00:00.000");
  stream_info(&new_si, "t11", "2026-01-01T00:00:05.000");
  strcpy(new_si.ks.pk_name, "pk");
  new_si.ks.pk_type = TRB_T_N;
  trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA, "{\"t11\":{}}", 0, f);
  assert_int_equal(sink_open(s), 0);
  batch *b1 = batch_new();
  add(b1, &old_si, INS, 2, 1, 0, SHARD_A, NULL, item("id", 'S', "x", "v", 'S', "old", NULL));
  deliver_ok(s, b1, 2);
  t->table_id = 5, t->stream_lsn = 5, t->ks = new_si.ks;
  batch *b2 = batch_new();
  add(b2, &new_si, INS, 6, 5, 0, SHARD_A, NULL, item("pk", 'N', "7", "v", 'S', "new", NULL));
  trb_status st;
  trb_err rc = deliver(s, b2, 6, &st);
  if (rc) print_error("deliver: %s: %s\n", trb_err_name(rc), trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  EXPECT_Q("0", "SELECT count(*) FROM %s.dead_letters", nm.ctl);
  EXPECT_Q("7=new", "SELECT coalesce(string_agg((item->>'pk') || '=' || (item->>'v'), ','), '') "
           "FROM %s.t11", nm.schema);
  sink_close(s);
}

/* A table named like another's history ("t12" and "t12_history", both
 * in mode both): PostgreSQL would refuse its rows into the history table
 * for ever, and hold back every table. The one met later is left out, the
 * others go on; reopened, the sink keeps the same choice. */
static void test_history_name_clash(void **state) {
  (void)state;
  names nm;
  mk_names(&nm, "ut_clash");
  fsrc *f = fs_new();
  fs_add(f, "t12", 1, 1);
  fs_add(f, "t12_history", 2, 2);
  fs_add(f, "t13", 3, 3);
  const char *cfg = "{\"t12\":{},\"t12_history\":{},\"t13\":{}}";
  trb_stream_info a, h, o;
  stream_info(&a, "t12", "2026-01-01T00:00:00.000");
  stream_info(&h, "t12_history", "2026-01-01T00:00:00.000");
  stream_info(&o, "t13", "2026-01-01T00:00:00.000");
  for (int round = 0; round < 2; round++) {
    trb_sink *s = mk_sink(&nm, TRB_PG_REPLICA | TRB_PG_HISTORY, cfg, 0, f);
    assert_int_equal(sink_open(s), round ? 6 : 0); /* the checkpoint */
    batch *b = batch_new();
    uint64_t l = 4 + 3 * (uint64_t)round;
    char v[8];
    snprintf(v, sizeof v, "%d", round);
    add(b, &a, INS, l, 1, 0, SHARD_A, NULL, item("id", 'S', v, "v", 'N', "1", NULL));
    add(b, &h, INS, l + 1, 2, 0, SHARD_A, NULL, item("id", 'S', v, "v", 'N', "2", NULL));
    add(b, &o, INS, l + 2, 3, 0, SHARD_A, NULL, item("id", 'S', v, "v", 'N', "3", NULL));
    deliver_ok(s, b, l + 2);
    sink_close(s);
  }
  /* t12 has its replica and history; t12_history is t12's history only */
  EXPECT_Q("0,1", "SELECT string_agg(item->>'id', ',' ORDER BY lsn) FROM %s.t12",
           nm.schema);
  EXPECT_Q("4:INSERT,7:INSERT", "SELECT string_agg(lsn || ':' || event_name, ',' ORDER BY lsn) "
           "FROM %s.t12_history", nm.schema);
  /* the table after it was not held back */
  EXPECT_Q("0,1", "SELECT string_agg(item->>'id', ',' ORDER BY lsn) FROM %s.t13",
           nm.schema);
  EXPECT_Q("9", "SELECT lsn FROM %s.checkpoints WHERE sink = '%s' AND shard_id = '*'", nm.ctl,
           nm.sink);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_replica_and_history, test_cleanup),
      cmocka_unit_test_teardown(test_composite_key, test_cleanup),
      cmocka_unit_test_teardown(test_exactly_once, test_cleanup),
      cmocka_unit_test_teardown(test_collapse, test_cleanup),
      cmocka_unit_test_teardown(test_dead_letter, test_cleanup),
      cmocka_unit_test_teardown(test_snapshot_overlap, test_cleanup),
      cmocka_unit_test_teardown(test_recreated_mid_batch, test_cleanup),
      cmocka_unit_test_teardown(test_history_only, test_cleanup),
      cmocka_unit_test_teardown(test_checkpoint_behind_wal_start, test_cleanup),
      cmocka_unit_test_teardown(test_recreated_after_seen_deleted, test_cleanup),
      cmocka_unit_test_teardown(test_dead_letter_long_value, test_cleanup),
      cmocka_unit_test_teardown(test_recreated_other_key, test_cleanup),
      cmocka_unit_test_teardown(test_history_name_clash, test_cleanup),
  };
  return cmocka_run_group_tests(tests, pg_group_setup, pg_group_teardown);
}
