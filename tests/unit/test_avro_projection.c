/*
 * test_avro_projection.c -- typed projections (transform/avro_projection.c):
 * the derived schema parses in avro-c and keeps the envelope; an envelope
 * datum followed by the columns datum is read back by avro-c with that
 * schema, each column with its value; values that do not fit their type
 * are refused with the column's name, never coerced; bad configs.
 */
#include "testutil.h"

#include <avro.h>
#include <stdlib.h>
#include <string.h>

#include "transform/avro_projection.h"

static trb_av *item_of(const char *ddb_json) {
  trb_av *item = NULL;
  trb_status st;
  trb_status_init(&st);
  if (trb_item_from_json_text(ddb_json, strlen(ddb_json), &item, &st))
    fail_msg("bad test item: %s", trb_status_msg(&st));
  return item;
}

static trb_avro_proj *proj_of(trb_avro *a, const char *cols_json, trb_err want, const char *msg) {
  json_t *cols = json_loads(cols_json, JSON_PRESERVE_ORDER, NULL);
  assert_non_null(cols);
  trb_avro_proj *p = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_avro_proj_create(a, "my.orders-1", cols, &p, &st);
  json_decref(cols);
  if (rc != want) fail_msg("create: %d (%s), want %d", rc, trb_status_msg(&st), want);
  if (msg) assert_string_equal(trb_status_msg(&st), msg);
  return p;
}

static avro_value_t field(avro_value_t *rec, const char *name) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, name, &f, NULL)) fail_msg("no field %s", name);
  return f;
}

/* The value of a ["null", T] union, or 0 when null. */
static int branch(avro_value_t *u, avro_value_t *out) {
  int d = -1;
  assert_int_equal(avro_value_get_discriminant(u, &d), 0);
  if (d == 1) assert_int_equal(avro_value_get_current_branch(u, out), 0);
  return d;
}

static void test_round_trip(void **state) {
  (void)state;
  trb_avro *a = NULL;
  assert_int_equal(trb_avro_create(&a, NULL), TRB_OK);
  trb_avro_proj *p = proj_of(a,
      "{\"total\":\"long\",\"price\":\"double\",\"name\":\"string\",\"flag\":\"boolean\","
      "\"blob\":\"bytes\",\"lines[1].qty\":\"int\",\"ratio\":\"float\",\"missing\":\"string\"}",
      TRB_OK, NULL);
  assert_non_null(strstr(trb_avro_proj_schema(p), "Columns_my_orders_1"));
  assert_int_not_equal(trb_avro_proj_fingerprint(p), trb_avro_value_fingerprint(a));

  trb_av *item = item_of("{\"pk\":{\"S\":\"k\"},\"total\":{\"N\":\"-9223372036854775808\"},"
                         "\"price\":{\"N\":\"12.25\"},\"name\":{\"S\":\"caf\\u00e9\"},"
                         "\"flag\":{\"BOOL\":true},\"blob\":{\"B\":\"AAEC\"},"
                         "\"lines\":{\"L\":[{\"M\":{}},{\"M\":{\"qty\":{\"N\":\"7\"}}}]},"
                         "\"ratio\":{\"N\":\"0.5\"}}");
  trb_buf item_bytes;
  trb_buf_init(&item_bytes, 0);
  assert_int_equal(trb_av_encode(item, &item_bytes), TRB_OK);
  trb_wal_rec r = {.lsn = 42, .commit_us = 1700000000000000, .kind = TRB_WAL_INSERT,
                   .table = "my.orders-1", .table_len = 11, .new_img = item_bytes.p,
                   .new_len = item_bytes.len};
  trb_buf out;
  trb_buf_init(&out, 0);
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &r, NULL, &out, &st), TRB_OK);
  assert_int_equal(trb_avro_proj_encode(p, item, &out, &st), TRB_OK);

  avro_schema_t schema;
  const char *text = trb_avro_proj_schema(p);
  if (avro_schema_from_json_length(text, strlen(text), &schema))
    fail_msg("avro-c does not parse the projection's schema: %s", avro_strerror());
  avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
  avro_value_t v;
  assert_int_equal(avro_generic_value_new(iface, &v), 0);
  avro_reader_t in = avro_reader_memory((const char *)out.p, (int64_t)out.len);
  if (avro_value_read(in, &v)) fail_msg("avro-c cannot read the datum: %s", avro_strerror());
  char extra;
  assert_int_not_equal(avro_read(in, &extra, 1), 0); /* nothing left over */
  avro_reader_free(in);

  avro_value_t op = field(&v, "op"), cols_u = field(&v, "columns"), cols, x, y;
  const char *s;
  size_t n;
  assert_int_equal(avro_value_get_string(&op, &s, &n), 0);
  assert_string_equal(s, "c");
  assert_int_equal(branch(&cols_u, &cols), 1);
  int64_t l;
  double d;
  float f;
  int32_t i32;
  int b;
  const void *bp;
  x = field(&cols, "total");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_long(&y, &l), 0);
  assert_true(l == INT64_MIN);
  x = field(&cols, "price");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_double(&y, &d), 0);
  assert_true(d == 12.25);
  x = field(&cols, "name");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_string(&y, &s, &n), 0);
  assert_string_equal(s, "caf\xc3\xa9");
  x = field(&cols, "flag");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_boolean(&y, &b), 0);
  assert_int_equal(b, 1);
  x = field(&cols, "blob");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_bytes(&y, &bp, &n), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(bp, "\0\1\2", 3);
  x = field(&cols, "lines_1_qty");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_int(&y, &i32), 0);
  assert_int_equal(i32, 7);
  x = field(&cols, "ratio");
  assert_int_equal(branch(&x, &y), 1);
  assert_int_equal(avro_value_get_float(&y, &f), 0);
  assert_true(f == 0.5f);
  x = field(&cols, "missing");
  assert_int_equal(branch(&x, &y), 0);

  /* A REMOVE: columns null. */
  size_t mark = out.len;
  assert_int_equal(trb_avro_proj_encode(p, NULL, &out, &st), TRB_OK);
  assert_int_equal(out.len, mark + 1);
  assert_int_equal(out.p[mark], 0);

  avro_value_decref(&v);
  avro_value_iface_decref(iface);
  avro_schema_decref(schema);
  trb_buf_fini(&out);
  trb_buf_fini(&item_bytes);
  trb_av_destroy(item);
  trb_avro_proj_destroy(p);
  trb_avro_destroy(a);
}

static void expect_misfit(trb_avro *a, const char *cols, const char *item_json, const char *msg) {
  trb_avro_proj *p = proj_of(a, cols, TRB_OK, NULL);
  trb_av *item = item_of(item_json);
  trb_buf out;
  trb_buf_init(&out, 0);
  trb_buf_append(&out, "x", 1);
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_avro_proj_encode(p, item, &out, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st), msg);
  assert_int_equal(out.len, 1); /* nothing appended */
  trb_buf_fini(&out);
  trb_av_destroy(item);
  trb_avro_proj_destroy(p);
}

static void test_misfits(void **state) {
  (void)state;
  trb_avro *a = NULL;
  assert_int_equal(trb_avro_create(&a, NULL), TRB_OK);
  expect_misfit(a, "{\"t\":\"long\"}", "{\"t\":{\"N\":\"1.5\"}}",
                "column t (path t, long): the number is not an integer");
  expect_misfit(a, "{\"t\":\"long\"}", "{\"t\":{\"N\":\"9223372036854775808\"}}",
                "column t (path t, long): the number is out of range");
  expect_misfit(a, "{\"t\":\"int\"}", "{\"t\":{\"N\":\"2147483648\"}}",
                "column t (path t, int): the number is out of range");
  expect_misfit(a, "{\"t\":\"long\"}", "{\"t\":{\"S\":\"12\"}}",
                "column t (path t, long): the value is not a number but a S");
  expect_misfit(a, "{\"t\":\"string\"}", "{\"t\":{\"N\":\"12\"}}",
                "column t (path t, string): the value is not a string but a N");
  expect_misfit(a, "{\"t\":\"float\"}", "{\"t\":{\"N\":\"1E+100\"}}",
                "column t (path t, float): the number is out of range");
  expect_misfit(a, "{\"a.b\":\"boolean\"}", "{\"a\":{\"M\":{\"b\":{\"N\":\"1\"}}}}",
                "column a_b (path a.b, boolean): the value is not a boolean but a N");
  trb_avro_destroy(a);
}

static void test_bad_config(void **state) {
  (void)state;
  trb_avro *a = NULL;
  assert_int_equal(trb_avro_create(&a, NULL), TRB_OK);
  proj_of(a, "{\"t\":\"decimal\"}", TRB_ECONFIG,
          "kafka.tables.my.orders-1.columns.t: not an Avro type the projection takes (string, "
          "bytes, long, int, double, float, boolean)");
  proj_of(a, "{\"0x\":\"long\"}", TRB_ECONFIG,
          "kafka.tables.my.orders-1.columns.0x: its column name must be an Avro name "
          "([A-Za-z_][A-Za-z0-9_]*, from the path with . and [n] as _)");
  proj_of(a, "{\"a.b\":\"long\",\"a_b\":\"long\"}", TRB_ECONFIG,
          "kafka.tables.my.orders-1.columns: a.b and a_b make the same column name a_b");
  trb_avro_destroy(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_misfits),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
