/*
 * test_config.c -- the settings table, the YAML loader and its messages
 * (file and line asserted exactly), trb_config_set, and print -> load.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/names.h"

typedef struct tcfg {
  char *dir;
  char path[512];
  int nfile;
} tcfg;

static int setup(void **state) {
  tcfg *t = calloc(1, sizeof *t);
  assert_non_null(t);
  t->dir = trb_test_mkdtemp("trb-config");
  assert_non_null(t->dir);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  tcfg *t = *state;
  trb_test_rmrf(t->dir);
  free(t->dir);
  free(t);
  return 0;
}

/* Writes text to a fresh file in the test dir; the path is in t->path. */
static const char *write_cfg(tcfg *t, const char *text) {
  snprintf(t->path, sizeof t->path, "%s/cfg%d.yaml", t->dir, t->nfile++);
  FILE *f = fopen(t->path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
  return t->path;
}

static trb_err load_text(tcfg *t, const char *text, trb_config *cfg, trb_status *st) {
  trb_config_defaults(cfg);
  trb_status_init(st);
  return trb_config_load(write_cfg(t, text), cfg, st);
}

/* Loading text fails with exactly "PATH:" + rest. */
static void expect_err(tcfg *t, const char *text, const char *rest) {
  trb_config cfg;
  trb_status st;
  char want[1024];
  assert_int_equal(load_text(t, text, &cfg, &st), TRB_ECONFIG);
  snprintf(want, sizeof want, "%s:%s", t->path, rest);
  assert_string_equal(trb_status_msg(&st), want);
}

static void expect_ok(tcfg *t, const char *text, trb_config *cfg) {
  trb_status st;
  trb_err rc = load_text(t, text, cfg, &st);
  if (rc) fail_msg("load failed: %s", trb_status_msg(&st));
}

/* trb_config_set(name, value) fails with exactly msg (NULL: succeeds). */
static void expect_set(const char *name, const char *value, const char *msg) {
  trb_config cfg;
  trb_status st;
  trb_config_defaults(&cfg);
  trb_status_init(&st);
  trb_err rc = trb_config_set(&cfg, name, value, &st);
  if (!msg) {
    if (rc) fail_msg("set %s=%s: %s", name, value, trb_status_msg(&st));
    return;
  }
  assert_int_equal(rc, TRB_ECONFIG);
  assert_string_equal(trb_status_msg(&st), msg);
}

static void assert_is_defaults(const trb_config *cfg) {
  assert_string_equal(cfg->data_dir, "./tributary-data");
  assert_int_equal(cfg->wal.sync, TRB_CFG_SYNC_ALWAYS);
  assert_int_equal(cfg->wal.sync_interval_ms, 10);
  assert_int_equal(cfg->wal.segment_size, 64ull << 20);
  assert_int_equal(cfg->wal.commit_delay_us, 0);
  assert_string_equal(cfg->api.listen, "127.0.0.1:8000");
  assert_string_equal(cfg->region, "us-east-1");
  assert_string_equal(cfg->log_level, "info");
}

static void test_defaults(void **state) {
  (void)state;
  trb_config cfg;
  memset(&cfg, 0xAB, sizeof cfg);
  trb_config_defaults(&cfg);
  assert_is_defaults(&cfg);
}

static void test_full_file(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  expect_ok(t,
            "# all settings\n"
            "data_dir: /var/lib/trb\n"
            "wal:\n"
            "  sync: interval      # batch fsyncs\n"
            "  sync_interval_ms: 250\n"
            "  segment_size: 128MiB\n"
            "api:\n"
            "  listen: \"[::1]:9000\"\n"
            "region: 'eu-west-1'\n"
            "log_level: debug\n",
            &cfg);
  assert_string_equal(cfg.data_dir, "/var/lib/trb");
  assert_int_equal(cfg.wal.sync, TRB_CFG_SYNC_INTERVAL);
  assert_int_equal(cfg.wal.sync_interval_ms, 250);
  assert_int_equal(cfg.wal.segment_size, 128ull << 20);
  assert_string_equal(cfg.api.listen, "[::1]:9000");
  assert_string_equal(cfg.region, "eu-west-1");
  assert_string_equal(cfg.log_level, "debug");

  /* Flow style, and a partial file keeps the other defaults. */
  expect_ok(t, "wal: {sync: interval, segment_size: 1G}\n", &cfg);
  assert_int_equal(cfg.wal.sync, TRB_CFG_SYNC_INTERVAL);
  assert_int_equal(cfg.wal.segment_size, 1ull << 30);
  assert_int_equal(cfg.wal.sync_interval_ms, 10);
  assert_string_equal(cfg.region, "us-east-1");

  /* A dotted key at the top level names the same setting. */
  expect_ok(t, "wal.sync: interval\n", &cfg);
  assert_int_equal(cfg.wal.sync, TRB_CFG_SYNC_INTERVAL);

  /* Loading on top of existing values only changes what the file names. */
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_config_set(&cfg, "region", "ap-south-1", &st), TRB_OK);
  assert_int_equal(trb_config_load(write_cfg(t, "log_level: warn\n"), &cfg, &st), TRB_OK);
  assert_string_equal(cfg.region, "ap-south-1");
  assert_string_equal(cfg.log_level, "warn");
}

static void test_empty_files(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  expect_ok(t, "", &cfg);
  assert_is_defaults(&cfg);
  expect_ok(t, "# nothing but a comment\n\n", &cfg);
  assert_is_defaults(&cfg);
  expect_ok(t, "---\n", &cfg);
  assert_is_defaults(&cfg);
  expect_ok(t, "~\n", &cfg);
  assert_is_defaults(&cfg);
  /* A group with everything under it commented out. */
  expect_ok(t, "wal:\n  # sync: interval\napi:\n", &cfg);
  assert_is_defaults(&cfg);
}

static void test_cannot_read(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  trb_status st;
  char path[600], want[700];
  trb_config_defaults(&cfg);
  trb_status_init(&st);
  snprintf(path, sizeof path, "%s/missing.yaml", t->dir);
  assert_int_equal(trb_config_load(path, &cfg, &st), TRB_ECONFIG);
  snprintf(want, sizeof want, "%s: cannot read: No such file or directory", path);
  assert_string_equal(trb_status_msg(&st), want);

  trb_status_init(&st);
  assert_int_equal(trb_config_load(t->dir, &cfg, &st), TRB_ECONFIG);
  snprintf(want, sizeof want, "%s: cannot read: Is a directory", t->dir);
  assert_string_equal(trb_status_msg(&st), want);
  assert_is_defaults(&cfg);

  assert_int_equal(trb_config_load(NULL, &cfg, &st), TRB_EINVAL);
}

static void test_yaml_syntax_errors(void **state) {
  tcfg *t = *state;
  expect_err(t, "region: a: b\n",
             "1: YAML syntax error: mapping values are not allowed in this context");
  expect_err(t, "data_dir: x\nwal:\n  sync: [always\nregion: x\n",
             "4: YAML syntax error: did not find expected ',' or ']' "
             "(while parsing a flow sequence)");
  /* an error libyaml finds at the end of the file is on its last line,
   * not the line after it */
  expect_err(t, "region: \"unterminated\n",
             "1: YAML syntax error: found unexpected end of stream "
             "(while scanning a quoted scalar)");
  expect_err(t, "api:\n  listen: 127.0.0.1:1\n  threads: [1, 2\n\n",
             "3: YAML syntax error: did not find expected ',' or ']' "
             "(while parsing a flow sequence)");
  expect_err(t, "region: *nowhere\n", "1: YAML syntax error: found undefined alias");
  expect_err(t, "region: a\n---\nregion: b\n",
             "3: expected one YAML document (got more)");
}

static void test_shape_errors(void **state) {
  tcfg *t = *state;
  /* A sequence or a mapping where a single value is expected. */
  expect_err(t, "data_dir: x\nwal:\n  sync: [always]\n",
             "3: wal.sync: expected a single value (got a sequence)");
  expect_err(t, "wal:\n  segment_size:\n    - 1MiB\n",
             "3: wal.segment_size: expected a single value (got a sequence)");
  expect_err(t, "\nregion:\n  name: x\n", "3: region: expected a single value (got a mapping)");
  /* A value where a mapping of settings is expected. */
  expect_err(t, "log_level: info\nwal: fast\n",
             "2: wal: expected a mapping of settings (got a scalar)");
  expect_err(t, "api:\n  - listen\n", "2: api: expected a mapping of settings (got a sequence)");
  expect_err(t, "- region\n",
             "1: expected a mapping of settings at the top level (got a sequence)");
  expect_err(t, "hello\n", "1: expected a mapping of settings at the top level (got a scalar)");
  expect_err(t, "wal:\n  [a, b]: 1\n", "2: wal: expected a setting name (got a sequence)");
  expect_err(t, "region: x\n\"\": 1\n", "2: expected a setting name (got an empty key)");
}

static void test_duplicates(void **state) {
  tcfg *t = *state;
  expect_err(t, "region: a\nlog_level: info\nregion: b\n",
             "3: region: duplicate key (first at line 1)");
  expect_err(t, "wal:\n  sync: always\n  sync: interval\n",
             "3: wal.sync: duplicate key (first at line 2)");
  expect_err(t, "wal:\n  sync: always\napi: {}\nwal:\n  segment_size: 1MiB\n",
             "4: wal: duplicate key (first at line 1)");
  expect_err(t, "wal.sync: always\nwal:\n  sync: interval\n",
             "3: wal.sync: set twice (first at line 1)");
}

static void test_unknown_keys(void **state) {
  tcfg *t = *state;
  expect_err(t, "region: x\nregoin: y\n", "2: regoin: unknown setting (did you mean 'region'?)");
  expect_err(t, "wal:\n  sync: always\n  synk: interval\n",
             "3: wal.synk: unknown setting (did you mean 'wal.sync'?)");
  expect_err(t, "wal:\n  segmentsize: 1MiB\n",
             "2: wal.segmentsize: unknown setting (did you mean 'wal.segment_size'?)");
  expect_err(t, "log-level: info\n", "1: log-level: unknown setting (did you mean 'log_level'?)");
  expect_err(t, "listen: 0.0.0.0:80\n", "1: listen: unknown setting (did you mean 'api.listen'?)");
  expect_err(t, "wall:\n  sync: always\n", "1: wall: unknown setting (did you mean 'wal'?)");
  /* Nothing close: no suggestion. */
  expect_err(t, "bogus: 1\n", "1: bogus: unknown setting");
  expect_err(t, "wal:\n  bogus: 1\n", "2: wal.bogus: unknown setting");
  expect_err(t, "data_dir: x\napi:\n  tls:\n    cert: x.pem\n", "3: api.tls: unknown setting");
  /* A self-referencing alias ends at an unknown name instead of looping. */
  expect_err(t, "wal: &w\n  wal: *w\n", "2: wal.wal: unknown setting");
}

static void test_sizes(void **state) {
  tcfg *t = *state;
  static const struct { const char *text; uint64_t want; } ok[] = {
      {"1MiB", 1ull << 20},     {"1M", 1ull << 20},      {"1048576", 1ull << 20},
      {"2048KiB", 2ull << 20},  {"1024K", 1ull << 20},   {"64 MiB", 64ull << 20},
      {"4GiB", 4ull << 30},     {"4G", 4ull << 30},      {"1048577", 1048577},
      {"1048576B", 1ull << 20}, {"3000MiB", 3000ull << 20},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    trb_config cfg;
    trb_status st;
    trb_config_defaults(&cfg);
    trb_status_init(&st);
    assert_int_equal(trb_config_set(&cfg, "wal.segment_size", ok[i].text, &st), TRB_OK);
    assert_int_equal(cfg.wal.segment_size, ok[i].want);
  }
  static const char *range[] = {"512KiB", "1048575", "4097M", "5GiB", "4294967297", "0",
                                "99999999999999999999", "99999999999G"};
  for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
    char want[200];
    snprintf(want, sizeof want, "wal.segment_size: must be from 1MiB to 4GiB (got '%s')",
             range[i]);
    expect_set("wal.segment_size", range[i], want);
  }
  static const char *junk[] = {"1.5GiB", "-1", "64MB", "", "MiB", "64mib", "64  MiB", "0x100000",
                               "1 GiB extra"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    char want[300];
    snprintf(want, sizeof want,
             "wal.segment_size: expected a size like 64MiB (an integer with optional suffix "
             "K, M, G, KiB, MiB or GiB) (got '%s')", junk[i]);
    expect_set("wal.segment_size", junk[i], want);
  }
  /* From a file, with the line. */
  expect_err(t, "wal:\n  sync: always\n  segment_size: 512KiB\n",
             "3: wal.segment_size: must be from 1MiB to 4GiB (got '512KiB')");
}

static void test_integers(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  expect_set("wal.sync_interval_ms", "1", NULL);
  expect_set("wal.sync_interval_ms", "10000", NULL);
  static const char *bad[] = {"0", "10001", "-5", "abc", "", "1e3", " 5", "4294967306"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[200];
    snprintf(want, sizeof want,
             "wal.sync_interval_ms: expected an integer from 1 to 10000 (got '%s')", bad[i]);
    expect_set("wal.sync_interval_ms", bad[i], want);
  }
  expect_ok(t, "wal:\n  sync_interval_ms: 10000\n", &cfg);
  assert_int_equal(cfg.wal.sync_interval_ms, 10000);
  expect_err(t, "wal:\n\n  sync_interval_ms: 0\n",
             "3: wal.sync_interval_ms: expected an integer from 1 to 10000 (got '0')");
}

static void test_enums(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  expect_ok(t, "wal: {sync: interval}\nlog_level: error\n", &cfg);
  assert_int_equal(cfg.wal.sync, TRB_CFG_SYNC_INTERVAL);
  assert_string_equal(cfg.log_level, "error");
  expect_ok(t, "wal: {sync: always}\nlog_level: warn\n", &cfg);
  assert_int_equal(cfg.wal.sync, TRB_CFG_SYNC_ALWAYS);
  assert_string_equal(cfg.log_level, "warn");
  expect_err(t, "data_dir: d\nregion: r\nwal:\n  sync: sometimes\n",
             "4: wal.sync: expected one of always, interval (got 'sometimes')");
  expect_err(t, "log_level: INFO\n",
             "1: log_level: expected one of debug, info, warn, error (got 'INFO')");
  expect_set("log_level", "trace",
             "log_level: expected one of debug, info, warn, error (got 'trace')");
  expect_set("wal.sync", "", "wal.sync: expected one of always, interval (got '')");
}

static void test_hostport(void **state) {
  tcfg *t = *state;
  static const char *ok[] = {"127.0.0.1:8000", "localhost:1",     "0.0.0.0:65535", "127.0.0.1:0",
                             "[::1]:8000",     "[2001:db8::1]:443", "my-host.example.com:80",
                             "[::]:8000"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    trb_config cfg;
    trb_status st;
    trb_config_defaults(&cfg);
    trb_status_init(&st);
    assert_int_equal(trb_config_set(&cfg, "api.listen", ok[i], &st), TRB_OK);
    assert_string_equal(cfg.api.listen, ok[i]);
  }
  static const struct { const char *text, *problem; } bad[] = {
      {"127.0.0.1", "expected HOST:PORT"},
      {":8000", "host must not be empty"},
      {"host:65536", "port must be between 0 and 65535"},
      {"host:", "port must be between 0 and 65535"},
      {"host:80x", "port must be between 0 and 65535"},
      {"::1:8000", "IPv6 addresses need brackets, like [::1]:8000"},
      {"[::1]8000", "expected HOST:PORT"},
      {"[::1]", "expected HOST:PORT"},
      {"[]:80", "expected HOST:PORT"},
      {"[1.2.3.4]:80", "bad IPv6 address in brackets"},
      {"[::g]:80", "bad IPv6 address in brackets"},
      {"ho st:80", "bad character in host name"},
      {"", "expected HOST:PORT"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[300];
    snprintf(want, sizeof want,
             "api.listen: %s, like 127.0.0.1:8000 or [::1]:8000 (got '%s')", bad[i].problem,
             bad[i].text);
    expect_set("api.listen", bad[i].text, want);
  }
  expect_err(t, "api:\n  listen: 8000\n",
             "2: api.listen: expected HOST:PORT, like 127.0.0.1:8000 or [::1]:8000 (got '8000')");
}

static void test_strings(void **state) {
  tcfg *t = *state;
  char region[80];
  memset(region, 'r', 63);
  region[63] = '\0';
  expect_set("region", region, NULL);
  region[63] = 'r';
  region[64] = '\0';
  expect_set("region", region, "region: too long (64 bytes, at most 63)");
  expect_set("data_dir", "", "data_dir: must not be empty");
  expect_set("region", "a\tb", "region: value contains a control character");
  expect_err(t, "region: \"\"\n", "1: region: must not be empty");
  expect_err(t, "region: \"a\\0b\"\n", "1: region: value contains a control character");
  expect_err(t, "data_dir: \"x\\ny\"\n", "1: data_dir: value contains a control character");
}

static void test_set(void **state) {
  (void)state;
  trb_config cfg;
  trb_status st;
  trb_config_defaults(&cfg);
  trb_status_init(&st);
  assert_int_equal(trb_config_set(&cfg, "wal.sync", "interval", &st), TRB_OK);
  assert_int_equal(cfg.wal.sync, TRB_CFG_SYNC_INTERVAL);
  assert_int_equal(trb_config_set(&cfg, "data_dir", "/tmp/x", &st), TRB_OK);
  assert_string_equal(cfg.data_dir, "/tmp/x");
  /* A failed set leaves the value alone. */
  assert_int_equal(trb_config_set(&cfg, "wal.segment_size", "1KiB", &st), TRB_ECONFIG);
  assert_int_equal(cfg.wal.segment_size, 64ull << 20);
  expect_set("wal.synk", "always", "wal.synk: unknown setting (did you mean 'wal.sync'?)");
  expect_set("wal", "always",
             "wal: is a group of settings; set one of them by its dotted name");
  expect_set("nonsense.thing", "1", "nonsense.thing: unknown setting");
  assert_int_equal(trb_config_set(&cfg, NULL, "x", &st), TRB_EINVAL);
  assert_int_equal(trb_config_set(&cfg, "region", NULL, &st), TRB_EINVAL);
}

static void assert_same(const trb_config *a, const trb_config *b) {
  assert_string_equal(a->data_dir, b->data_dir);
  assert_int_equal(a->wal.sync, b->wal.sync);
  assert_int_equal(a->wal.sync_interval_ms, b->wal.sync_interval_ms);
  assert_int_equal(a->wal.segment_size, b->wal.segment_size);
  assert_string_equal(a->api.listen, b->api.listen);
  assert_string_equal(a->region, b->region);
  assert_string_equal(a->log_level, b->log_level);
}

static void round_trip(tcfg *t, const trb_config *in) {
  trb_config out;
  trb_status st;
  snprintf(t->path, sizeof t->path, "%s/print%d.yaml", t->dir, t->nfile++);
  FILE *f = fopen(t->path, "w");
  assert_non_null(f);
  trb_config_print(in, f);
  assert_int_equal(fclose(f), 0);
  memset(&out, 0, sizeof out); /* load must fill every field itself */
  trb_status_init(&st);
  if (trb_config_load(t->path, &out, &st) != TRB_OK) {
    char *text = trb_test_read_file(t->path, NULL);
    fail_msg("reload failed: %s\n%s", trb_status_msg(&st), text ? text : "");
  }
  assert_same(in, &out);
}

static void test_print_round_trip(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  trb_status st;
  trb_config_defaults(&cfg);
  round_trip(t, &cfg);

  trb_status_init(&st);
  const char *odd = "/data/with \"quotes\" and \\ # : [x]";
  assert_int_equal(trb_config_set(&cfg, "data_dir", odd, &st), 0);
  assert_int_equal(trb_config_set(&cfg, "wal.sync", "interval", &st), 0);
  assert_int_equal(trb_config_set(&cfg, "wal.sync_interval_ms", "9999", &st), 0);
  assert_int_equal(trb_config_set(&cfg, "wal.segment_size", "1048577", &st), 0);
  assert_int_equal(trb_config_set(&cfg, "api.listen", "[::1]:8001", &st), 0);
  assert_int_equal(trb_config_set(&cfg, "region", "yes", &st), 0);
  assert_int_equal(trb_config_set(&cfg, "log_level", "debug", &st), 0);
  round_trip(t, &cfg);

  /* Random printable strings and sizes. */
  uint64_t seed = trb_test_seed(), rng = seed;
  printf("test_print_round_trip seed %llu\n", (unsigned long long)seed);
  for (int iter = 0; iter < 200; iter++) {
    char s[64], num[32];
    size_t n = 1 + trb_test_rand(&rng) % 62;
    for (size_t i = 0; i < n; i++) s[i] = (char)(0x20 + trb_test_rand(&rng) % 95);
    s[n] = '\0';
    assert_int_equal(trb_config_set(&cfg, "region", s, &st), 0);
    assert_int_equal(trb_config_set(&cfg, "data_dir", s, &st), 0);
    uint64_t size = (1ull << 20) + trb_test_rand(&rng) % ((4ull << 30) - (1ull << 20) + 1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)size);
    assert_int_equal(trb_config_set(&cfg, "wal.segment_size", num, &st), 0);
    round_trip(t, &cfg);
  }
}

static char *next_line(char *line) {
  char *nl = strchr(line, '\n');
  return nl ? nl + 1 : NULL;
}

static void test_print_doc(void **state) {
  (void)state;
  char *doc = NULL, *yaml = NULL;
  size_t doclen = 0, yamllen = 0;
  FILE *f = open_memstream(&doc, &doclen);
  assert_non_null(f);
  trb_config_print_doc(f);
  fclose(f);
  trb_config cfg;
  trb_config_defaults(&cfg);
  f = open_memstream(&yaml, &yamllen);
  assert_non_null(f);
  trb_config_print(&cfg, f);
  fclose(f);

  /* Every setting in the header is documented with its default. */
  static const char *names[] = {"data_dir", "wal.sync", "wal.sync_interval_ms", "wal.commit_delay_us",
                                "wal.segment_size", "store.item_cache", "api.listen",
                                "api.threads", "api.wait_threads",
                                "api.access_key_id", "api.secret_access_key", "streams.shards",
                                "streams.rollover_s", "streams.retention_s", "streams.priority_boost",
                                "streams.tables",
                                "retention.max_sink_lag", "retention.interval_s", "retention.min_disk_free", "ttl.interval_s", "ttl.scan_rate", "kafka.brokers",
                                "kafka.embedded", "kafka.embedded_brokers", "kafka.format",
                                "kafka.topic_template", "kafka.exactly_once",
                                "kafka.transactional_id", "kafka.offsets_topic", "kafka.tombstones",
                                "kafka.compression", "kafka.schema_registry", "kafka.tables",
                                "kafka.on_error", "kafka.dead_letter_topic", "sinks.file.dir",
                                "sinks.file.rotate_bytes", "sinks.file.rotate_s",
                                "postgres.conninfo", "postgres.sink_name", "postgres.schema",
                                "postgres.control_schema", "postgres.mode", "postgres.json",
                                "postgres.on_error", "postgres.all_tables", "postgres.tables",
                                "region", "log_level"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char line[100];
    snprintf(line, sizeof line, "\n%s\n", names[i]);
    if (!strstr(doc, line) && strncmp(doc, line + 1, strlen(line + 1)) != 0)
      fail_msg("%s missing from doc:\n%s", names[i], doc);
  }
  assert_non_null(strstr(doc, "  default: 64MiB\n"));
  assert_non_null(strstr(doc, "  values:  always, interval\n"));
  assert_non_null(strstr(doc, "  range:   1MiB to 4GiB\n"));

  /* Every documented block is a real setting whose default is accepted,
   * and print writes exactly as many settings as the doc describes. */
  size_t ndoc = 0, nyaml = 0;
  for (char *line = doc; line && *line; line = next_line(line)) {
    if (*line == ' ' || *line == '\n') continue;
    char name[100], def[200];
    size_t nl = strcspn(line, "\n");
    snprintf(name, sizeof name, "%.*s", (int)nl, line);
    const char *d = strstr(line, "  default: ");
    assert_non_null(d);
    d += strlen("  default: ");
    snprintf(def, sizeof def, "%.*s", (int)strcspn(d, "\n"), d);
    expect_set(name, def, NULL);
    ndoc++;
  }
  for (char *line = yaml; line && *line; line = next_line(line)) {
    size_t nl = strcspn(line, "\n"), sp = strspn(line, " ");
    if (line[sp] != '#' && line[sp] != '\n' && line[nl - 1] != ':') nyaml++;
  }
  assert_int_equal(ndoc, sizeof names / sizeof names[0]);
  assert_int_equal(nyaml, ndoc);
  free(doc);
  free(yaml);
}


/* postgres.tables: the mapping is checked (file, line, dotted name) and
 * kept as canonical JSON that print -> load gives back. */
static void test_pg_tables(void **state) {
  tcfg *t = *state;
  trb_config cfg;
  assert_string_equal(((trb_config_defaults(&cfg)), cfg.postgres.tables), "{}");
  expect_ok(t,
            "postgres:\n"
            "  conninfo: host=/tmp dbname=x\n"
            "  tables:\n"
            "    orders:\n"
            "      schema: sales\n"
            "      mode: both\n"
            "      columns:\n"
            "        total: numeric(12,2)\n"
            "        customer.name: text\n"
            "        lines[0].qty: double precision\n"
            "    audit.log-2:\n",
            &cfg);
  assert_string_equal(cfg.postgres.conninfo, "host=/tmp dbname=x");
  assert_string_equal(cfg.postgres.tables,
                      "{\"orders\":{\"schema\":\"sales\",\"mode\":\"both\",\"columns\":{\"total\":"
                      "\"numeric(12,2)\",\"customer.name\":\"text\",\"lines[0].qty\":\"double "
                      "precision\"}},\"audit.log-2\":{}}");
  round_trip(t, &cfg);
  trb_config back;
  trb_status st;
  trb_status_init(&st);
  char path[600];
  snprintf(path, sizeof path, "%s", t->path);
  trb_config_defaults(&back);
  assert_int_equal(trb_config_load(path, &back, &st), TRB_OK);
  assert_string_equal(back.postgres.tables, cfg.postgres.tables);

  expect_err(t, "postgres:\n  tables:\n    orders:\n      mode: mirror\n",
             "4: postgres.tables.orders.mode: expected one of replica, history, both (got "
             "'mirror')");
  expect_err(t, "postgres:\n  tables:\n    orders:\n      columns:\n        total: 'text; drop table x'\n",
             "5: postgres.tables.orders.columns.total: expected a PostgreSQL type in lowercase, "
             "like text, numeric(12,2), bigint, boolean, timestamptz, double precision (got "
             "'text; drop table x')");
  expect_err(t, "postgres:\n  tables:\n    orders:\n      columns:\n        a..b: text\n",
             "5: postgres.tables.orders.columns.a..b: expected an attribute path like a.b[0].c "
             "whose column name (a_b_0_c) fits 63 bytes");
  expect_err(t, "postgres:\n  tables:\n    orders:\n      colums: {}\n",
             "4: postgres.tables.orders.colums: unknown setting (expected schema, table, mode or "
             "columns)");
  expect_err(t, "postgres:\n  tables:\n    x:\n",
             "3: postgres.tables.x: expected a table name (3 to 255 of a-z A-Z 0-9 _ . -)");
  expect_err(t, "postgres:\n  tables: [a, b]\n",
             "2: postgres.tables: expected a mapping of table name to its settings (got a "
             "sequence)");
  expect_set("postgres.tables", "{orders: {mode: history}}", NULL);
  /* kafka.tables: columns only, Avro types, Avro column names */
  expect_ok(t, "kafka:\n  tables:\n    orders:\n      columns:\n        total: long\n"
               "        a.b[1]: string\n", &cfg);
  assert_string_equal(cfg.kafka.tables,
                      "{\"orders\":{\"columns\":{\"total\":\"long\",\"a.b[1]\":\"string\"}}}");
  expect_err(t, "kafka:\n  tables:\n    orders:\n      columns:\n        total: numeric\n",
             "5: kafka.tables.orders.columns.total: expected one of string, bytes, long, int, "
             "double, float, boolean (got 'numeric')");
  expect_err(t, "kafka:\n  tables:\n    orders:\n      mode: both\n",
             "4: kafka.tables.orders.mode: unknown setting (expected columns)");
  expect_err(t, "kafka:\n  tables:\n    orders:\n      columns:\n        a-b: long\n",
             "5: kafka.tables.orders.columns.a-b: its column name a-b is not an Avro name "
             "(letters, digits and _)");
  expect_set("postgres.tables", "{orders: {mode: x}}",
             "postgres.tables.orders.mode: expected one of replica, history, both (got 'x')");
  /* two paths that would share a column (a PostgreSQL table or an Avro
   * record cannot have it twice) */
  expect_err(t, "postgres:\n  tables:\n    orders:\n      columns:\n        a.b: text\n"
                "        a_b: text\n",
             "6: postgres.tables.orders.columns.a_b: its column name a_b is also the column of "
             "a.b (each path needs a column of its own)");
  expect_err(t, "kafka:\n  tables:\n    orders:\n      columns:\n        x[0]: string\n"
                "        x_0: long\n",
             "6: kafka.tables.orders.columns.x_0: its column name x_0 is also the column of x[0] "
             "(each path needs a column of its own)");
}

static void test_pg_names(void **state) {
  (void)state;
  char col[64];
  assert_true(trb_sql_type_ok("text"));
  assert_true(trb_sql_type_ok("numeric(38,0)"));
  assert_true(trb_sql_type_ok("numeric(12, 2)"));
  assert_true(trb_sql_type_ok("timestamp with time zone"));
  assert_true(trb_sql_type_ok("text[]"));
  assert_false(trb_sql_type_ok("Text"));
  assert_false(trb_sql_type_ok("text;"));
  assert_false(trb_sql_type_ok("numeric(1"));
  assert_false(trb_sql_type_ok("a  b"));
  assert_false(trb_sql_type_ok(""));
  assert_true(trb_path_column("a.b[10].c", col, sizeof col));
  assert_string_equal(col, "a_b_10_c");
  assert_true(trb_path_column("total", col, sizeof col));
  assert_string_equal(col, "total");
  assert_false(trb_path_column("a.", col, sizeof col));
  assert_false(trb_path_column("[0]", col, sizeof col));
  assert_false(trb_path_column("a[x]", col, sizeof col));
  assert_false(trb_path_column("a]", col, sizeof col));
  char longp[80];
  memset(longp, 'x', 64);
  longp[64] = '\0';
  assert_false(trb_path_column(longp, col, sizeof col));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cannot_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_yaml_syntax_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shape_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_integers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enums, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostport, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
      cmocka_unit_test(test_set),
      cmocka_unit_test_setup_teardown(test_print_round_trip, setup, teardown),
      cmocka_unit_test(test_print_doc),
      cmocka_unit_test_setup_teardown(test_pg_tables, setup, teardown),
      cmocka_unit_test(test_pg_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
