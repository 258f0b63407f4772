/* cmd_table.c -- `tributary table create|list|describe|delete`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

static const char *table_help =
    "usage: tributary table create NAME --partition-key NAME:TYPE [--sort-key NAME:TYPE]\n"
    "       tributary table list\n"
    "       tributary table describe NAME\n"
    "       tributary table delete NAME\n"
    "\n"
    "TYPE is S (string), N (number) or B (binary). Table names are 3 to 255\n"
    "characters of [a-zA-Z0-9_.-]. describe prints the table as JSON.\n"
    "\n"
    "Example:\n"
    "  tributary table create orders --partition-key customer:S --sort-key order:N\n";

static int parse_keydef(const char *arg, char *name, size_t cap, trb_type *t) {
  const char *colon = strrchr(arg, ':');
  if (!colon || colon == arg || (size_t)(colon - arg) >= cap) return -1;
  memcpy(name, arg, (size_t)(colon - arg));
  name[colon - arg] = 0;
  const char *ty = colon + 1;
  if (!strcmp(ty, "S")) *t = TRB_T_S;
  else if (!strcmp(ty, "N")) *t = TRB_T_N;
  else if (!strcmp(ty, "B")) *t = TRB_T_B;
  else return -1;
  return 0;
}

static void print_info(const trb_table_info *in) {
  char created[64];
  time_t secs = (time_t)(in->def.created_us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_t *ks = json_array(), *ad = json_array();
  json_array_append_new(ks, json_pack("{s:s,s:s}", "AttributeName", in->def.ks.pk_name,
                                      "KeyType", "HASH"));
  json_array_append_new(ad, json_pack("{s:s,s:s}", "AttributeName", in->def.ks.pk_name,
                                      "AttributeType", trb_type_name(in->def.ks.pk_type)));
  if (in->def.ks.has_sk) {
    json_array_append_new(ks, json_pack("{s:s,s:s}", "AttributeName", in->def.ks.sk_name,
                                        "KeyType", "RANGE"));
    json_array_append_new(ad, json_pack("{s:s,s:s}", "AttributeName", in->def.ks.sk_name,
                                        "AttributeType", trb_type_name(in->def.ks.sk_type)));
  }
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, in->def.table_id);
  json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:I,s:I,s:s,s:s}", "TableName", in->def.name,
                        "TableStatus", "ACTIVE", "KeySchema", ks, "AttributeDefinitions", ad,
                        "ItemCount", (json_int_t)in->item_count, "TableSizeBytes",
                        (json_int_t)in->size_bytes, "CreationDateTime", created, "TableId",
                        id);
  char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (s) printf("%s\n", s);
  free(s);
  json_decref(o);
}

int cmd_table(cli *c, int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    fputs(table_help, argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_USAGE : CLI_OK;
  }
  const char *sub = argv[1];
  for (int i = 2; i < argc; i++)
    if (cli_is_help(argv[i])) {
      fputs(table_help, stdout);
      return CLI_OK;
    }
  trb_status st;
  trb_status_init(&st);
  trb_err rc;
  if (!strcmp(sub, "create")) {
    const char *name = NULL, *pk = NULL, *sk = NULL;
    for (int i = 2; i < argc; i++) {
      if (!strcmp(argv[i], "--partition-key") && i + 1 < argc) pk = argv[++i];
      else if (!strcmp(argv[i], "--sort-key") && i + 1 < argc) sk = argv[++i];
      else if (argv[i][0] == '-') return cli_usage_err("table", "unknown or incomplete option %s", argv[i]);
      else if (!name) name = argv[i];
      else return cli_usage_err("table", "unexpected argument %s", argv[i]);
    }
    if (!name) return cli_usage_err("table", "table create needs a NAME");
    if (!pk) return cli_usage_err("table", "table create needs --partition-key NAME:TYPE");
    trb_keyschema ks;
    memset(&ks, 0, sizeof ks);
    if (parse_keydef(pk, ks.pk_name, sizeof ks.pk_name, &ks.pk_type))
      return cli_usage_err("table", "--partition-key must be NAME:TYPE with TYPE S, N or B (got '%s')", pk);
    if (sk) {
      if (parse_keydef(sk, ks.sk_name, sizeof ks.sk_name, &ks.sk_type))
        return cli_usage_err("table", "--sort-key must be NAME:TYPE with TYPE S, N or B (got '%s')", sk);
      ks.has_sk = 1;
    }
    trb_engine *e = cli_engine(c);
    if (!e) return CLI_FAIL;
    trb_table_info info;
    if ((rc = trb_table_create(e, name, &ks, NULL, &info, &st))) return cli_fail(rc, &st);
    print_info(&info);
    trb_table_info_fini(&info);
    return CLI_OK;
  }
  if (!strcmp(sub, "list")) {
    if (cli_no_options("table", argc, argv, 2)) return CLI_USAGE;
    if (argc > 2) return cli_usage_err("table", "table list takes no arguments");
    trb_engine *e = cli_engine(c);
    if (!e) return CLI_FAIL;
    char **names;
    size_t n;
    if ((rc = trb_table_list(e, NULL, 0, &names, &n, NULL, &st))) return cli_fail(rc, &st);
    for (size_t i = 0; i < n; i++) printf("%s\n", names[i]);
    trb_table_list_free(names, n);
    return CLI_OK;
  }
  if (!strcmp(sub, "describe") || !strcmp(sub, "delete")) {
    if (cli_no_options("table", argc, argv, 2)) return CLI_USAGE;
    if (argc != 3) return cli_usage_err("table", "table %s needs exactly one NAME", sub);
    trb_engine *e = cli_engine(c);
    if (!e) return CLI_FAIL;
    trb_table_info info;
    if (!strcmp(sub, "describe")) rc = trb_table_describe(e, argv[2], &info, &st);
    else rc = trb_table_delete(e, argv[2], &info, &st);
    if (rc) return cli_fail(rc, &st);
    print_info(&info);
    trb_table_info_fini(&info);
    return CLI_OK;
  }
  return cli_usage_err("table", "unknown table command '%s'", sub);
}
