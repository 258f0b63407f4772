/*
 * kafka_mock.c -- librdkafka's mock cluster with a command language (see
 * kafka_mock.h).
 */
#include "sinks/kafka_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trb_kafka_mock {
  rd_kafka_t *rk;               /* the handle that owns the cluster */
  rd_kafka_mock_cluster_t *mc;
  int brokers;
};

trb_err trb_kafka_mock_start(int brokers, trb_kafka_mock **out, trb_status *st) {
  if (brokers < 1 || brokers > 32)
    return trb_status_set(st, TRB_EINVAL, "kafka mock: 1 to 32 brokers, not %d", brokers);
  trb_kafka_mock *m = calloc(1, sizeof *m);
  if (!m) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
  /* the mock's brokers take this for the connections they accept: without
   * it a broker's second answer on a connection waits ~40 ms for the
   * client's delayed ACK (every transaction commit did) */
  rd_kafka_conf_set(c, "socket.nagle.disable", "true", err, sizeof err);
  m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!m->rk) {
    free(m);
    return trb_status_set(st, TRB_EINTERNAL, "kafka mock: %s", err);
  }
  m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
  if (!m->mc) {
    rd_kafka_destroy(m->rk);
    free(m);
    return trb_status_set(st, TRB_EINTERNAL, "kafka mock: cannot start the mock cluster");
  }
  m->brokers = brokers;
  *out = m;
  return TRB_OK;
}

void trb_kafka_mock_stop(trb_kafka_mock *m) {
  if (!m) return;
  rd_kafka_mock_cluster_destroy(m->mc);
  rd_kafka_destroy(m->rk);
  free(m);
}

const char *trb_kafka_mock_bootstraps(const trb_kafka_mock *m) {
  return rd_kafka_mock_cluster_bootstraps(m->mc);
}

static int16_t api_key(const char *name) {
  static const struct {
    const char *n;
    int16_t k;
  } apis[] = {/* Kafka protocol API keys */
              {"produce", 0},         {"fetch", 1},
              {"listoffsets", 2},     {"metadata", 3},
              {"offsetcommit", 8},    {"offsetfetch", 9},
              {"findcoordinator", 10}, {"initproducerid", 22},
              {"addpartitionstotxn", 24}, {"addoffsetstotxn", 25},
              {"endtxn", 26},         {"txnoffsetcommit", 28}};
  for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
    if (!strcmp(apis[i].n, name)) return apis[i].k;
  return -1;
}

static int err_code(const char *name, rd_kafka_resp_err_t *out) {
  const struct rd_kafka_err_desc *d;
  size_t n;
  rd_kafka_get_err_descs(&d, &n);
  for (size_t i = 0; i < n; i++)
    if (d[i].name && !strcmp(d[i].name, name)) {
      *out = d[i].code;
      return 0;
    }
  return -1;
}

trb_err trb_kafka_mock_command(trb_kafka_mock *m, const char *line, trb_status *st) {
  char cmd[32] = "", a[256] = "", b[64] = "", c[64] = "";
  int n = sscanf(line, "%31s %255s %63s %63s", cmd, a, b, c);
  if (n < 1) return TRB_OK; /* blank */
  rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (!strcmp(cmd, "down") && n == 2) {
    r = rd_kafka_mock_broker_set_down(m->mc, atoi(a));
  } else if (!strcmp(cmd, "up") && n == 2) {
    r = rd_kafka_mock_broker_set_up(m->mc, atoi(a));
  } else if (!strcmp(cmd, "rtt") && n == 3) {
    r = rd_kafka_mock_broker_set_rtt(m->mc, atoi(a), atoi(b));
  } else if (!strcmp(cmd, "leader") && n == 4) {
    r = rd_kafka_mock_partition_set_leader(m->mc, a, atoi(b), atoi(c));
  } else if (!strcmp(cmd, "topic") && n == 3) {
    int reps = m->brokers < 3 ? m->brokers : 3;
    r = rd_kafka_mock_topic_create(m->mc, a, atoi(b), reps);
  } else if (!strcmp(cmd, "errors") && n >= 3) {
    int16_t k = api_key(a);
    int cnt = atoi(b);
    if (k < 0 || cnt < 1 || cnt > 64)
      return trb_status_set(st, TRB_EINVAL, "kafka mock: errors API COUNT ERROR...: bad API "
                            "'%s' or count '%s'", a, b);
    rd_kafka_resp_err_t errs[64];
    /* the error names after the count, used in turn */
    const char *p = line;
    for (int skip = 0; skip < 3; skip++) {
      while (*p == ' ' || *p == '\t') p++;
      while (*p && *p != ' ' && *p != '\t') p++;
    }
    int ne = 0;
    char name[96];
    int used;
    while (ne < 64 && sscanf(p, "%95s%n", name, &used) == 1) {
      if (err_code(name, &errs[ne]))
        return trb_status_set(st, TRB_EINVAL, "kafka mock: unknown error %s", name);
      ne++;
      p += used;
    }
    if (!ne) return trb_status_set(st, TRB_EINVAL, "kafka mock: errors needs error names");
    for (int i = ne; i < cnt; i++) errs[i] = errs[i % ne];
    rd_kafka_mock_push_request_errors_array(m->mc, k, (size_t)cnt, errs);
  } else {
    return trb_status_set(st, TRB_EINVAL, "kafka mock: unknown or incomplete command: %s", line);
  }
  if (r) return trb_status_set(st, TRB_EINVAL, "kafka mock: %s: %s", line, rd_kafka_err2str(r));
  return TRB_OK;
}
