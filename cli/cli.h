/*
 * cli.h -- shared pieces of the `tributary` command: global options, the
 * engine it opens, error printing, DynamoDB JSON helpers.
 *
 * Exit codes: 0 success, 1 the operation failed (the message says why, with
 * DynamoDB's exception name), 2 the command line was wrong.
 */
#ifndef TRB_CLI_H
#define TRB_CLI_H

#include <stdio.h>

#include "config/config.h"
#include "engine/engine.h"

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

typedef struct cli {
  trb_config cfg;
  const char *prog;
  trb_engine *eng;           /* opened on demand by cli_engine() */
} cli;

/* Opens the engine with the configured data directory (once). NULL after
 * printing an error. */
trb_engine *cli_engine(cli *c);
void cli_close(cli *c);

/* "tributary: <ExceptionName>: <message>" on stderr; returns CLI_FAIL. */
int cli_fail(trb_err rc, const trb_status *st);
/* "tributary: <message>" plus a hint to use --help; returns CLI_USAGE. */
int cli_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For a command that takes no options from argv[from] on: the first
 * argument that looks like one ("-x", "--x"; "-" alone is standard input)
 * is reported as unknown (cli_usage_err, CLI_USAGE returned); 0 when there
 * is none. */
int cli_no_options(const char *cmd, int argc, char **argv, int from);
/* DynamoDB's exception name for an error code. */
const char *cli_exception_name(trb_err rc);

/* Parses DynamoDB JSON text: an item/key (object of AttributeValues) or one
 * AttributeValue. Prints the error and returns NULL on failure. */
trb_av *cli_parse_item(const char *text, const char *what);
trb_av *cli_parse_value(const char *text, const char *what);
/* Prints an item as one line of DynamoDB JSON. */
void cli_print_item(FILE *f, const trb_av *item);

/* 1 when argv[i] is -h or --help. */
int cli_is_help(const char *arg);

int cmd_table(cli *c, int argc, char **argv);
int cmd_put(cli *c, int argc, char **argv);
int cmd_get(cli *c, int argc, char **argv);
int cmd_delete(cli *c, int argc, char **argv);
int cmd_update(cli *c, int argc, char **argv);
int cmd_query(cli *c, int argc, char **argv);
int cmd_scan(cli *c, int argc, char **argv);
int cmd_wal(cli *c, int argc, char **argv);
int cmd_config(cli *c, int argc, char **argv);
int cmd_serve(cli *c, int argc, char **argv);
int cmd_kafka_mock(cli *c, int argc, char **argv);
int cmd_history(cli *c, int argc, char **argv);
int cmd_stream(cli *c, int argc, char **argv);

#endif
