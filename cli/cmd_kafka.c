/*
 * cmd_kafka.c -- `tributary kafka-mock`: librdkafka's mock cluster as a
 * process of its own, for development and for tests that kill the server
 * but not its Kafka. Fault injection through commands on standard input
 * (sinks/kafka_mock.h lists them).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sinks/kafka_mock.h"

static const char *mock_help =
    "usage: tributary kafka-mock [--brokers N]\n"
    "\n"
    "Runs librdkafka's mock Kafka cluster (N brokers on loopback, default 3) until\n"
    "standard input ends, `quit`, or SIGTERM. It speaks the real Kafka protocol, so\n"
    "kcat and any client work against it; it keeps nothing once it stops. The first\n"
    "line printed is its bootstrap address:\n"
    "  bootstrap 127.0.0.1:38291,127.0.0.1:41817,127.0.0.1:44203\n"
    "Each command read from standard input answers `ok` or `error: ...`:\n"
    "  down BROKER | up BROKER            a broker (1..N) stops / resumes answering\n"
    "  leader TOPIC PARTITION BROKER      moves a partition's leader\n"
    "  rtt BROKER MS                      delays a broker's answers\n"
    "  errors API COUNT ERROR...          the next COUNT requests of API (produce, fetch,\n"
    "                                     metadata, initproducerid, addpartitionstotxn,\n"
    "                                     endtxn, ...) fail with these errors, e.g.\n"
    "                                     errors produce 3 NOT_LEADER_FOR_PARTITION\n"
    "  topic NAME PARTITIONS              creates a topic\n"
    "  quit\n";

int cmd_kafka_mock(cli *c, int argc, char **argv) {
  (void)c;
  int brokers = 3;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      fputs(mock_help, stdout);
      return CLI_OK;
    } else if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 32) return cli_usage_err("kafka-mock", "--brokers: 1 to 32");
      brokers = (int)v;
    } else {
      return cli_usage_err("kafka-mock", "unknown or incomplete option %s", argv[i]);
    }
  }
  trb_status st;
  trb_status_init(&st);
  trb_kafka_mock *m = NULL;
  if (trb_kafka_mock_start(brokers, &m, &st)) {
    fprintf(stderr, "tributary: %s\n", trb_status_msg(&st));
    return CLI_FAIL;
  }
  signal(SIGPIPE, SIG_IGN);
  printf("bootstrap %s\n", trb_kafka_mock_bootstraps(m));
  fflush(stdout);
  char line[1024];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!strcmp(line, "quit")) break;
    trb_status_init(&st);
    if (trb_kafka_mock_command(m, line, &st)) printf("error: %s\n", trb_status_msg(&st));
    else printf("ok\n");
    fflush(stdout);
  }
  trb_kafka_mock_stop(m);
  return CLI_OK;
}
