/*
 * kafka_mock.h -- a Kafka for development and tests: librdkafka's mock
 * cluster (rdkafka_mock.h), which speaks the real Kafka protocol over TCP on
 * loopback, with its fault injection behind a small text command language.
 * It keeps nothing across restarts.
 *
 * Commands (one per line; trb_kafka_mock_command):
 *   down BROKER                      a broker stops answering
 *   up BROKER                        ... and comes back
 *   leader TOPIC PARTITION BROKER    moves a partition's leader
 *   rtt BROKER MS                    adds round-trip delay
 *   errors API COUNT ERROR...        the next COUNT requests of API (produce,
 *                                    fetch, metadata, initproducerid,
 *                                    addpartitionstotxn, endtxn, ...) fail
 *                                    with the given errors in turn (names as
 *                                    librdkafka prints them without RD_KAFKA_RESP_ERR_,
 *                                    e.g. NOT_LEADER_FOR_PARTITION)
 *   topic NAME PARTITIONS            creates a topic (replication min(3, brokers))
 * Brokers are numbered from 1.
 */
#ifndef TRB_KAFKA_MOCK_H
#define TRB_KAFKA_MOCK_H

#include "util/trb_err.h"

typedef struct trb_kafka_mock trb_kafka_mock;

/* Starts a cluster of n brokers on loopback. *out caller-owned. */
trb_err trb_kafka_mock_start(int brokers, trb_kafka_mock **out, trb_status *st);
void trb_kafka_mock_stop(trb_kafka_mock *m); /* NULL ok */
/* "host:port,host:port,..." (borrowed). */
const char *trb_kafka_mock_bootstraps(const trb_kafka_mock *m);
/* Runs one command. TRB_EINVAL with a message for a bad one. */
trb_err trb_kafka_mock_command(trb_kafka_mock *m, const char *line, trb_status *st);

#endif
