/*
 * cmd_item.c -- `tributary put|get|delete|update|query|scan`.
 * Items and keys are DynamoDB JSON; results are printed one item per line.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MAX_CLAUSES 32

static const char *cond_help =
    "Conditions (all must hold, else ConditionalCheckFailedException and nothing is written):\n"
    "  --if-exists ATTR          the item exists and has ATTR\n"
    "  --if-not-exists ATTR      the item has no ATTR (e.g. the partition key: insert only)\n"
    "  --if ATTR=VALUE_JSON      ATTR equals the value, e.g. --if 'n={\"N\":\"1\"}'\n"
    "  --if-not ATTR=VALUE_JSON  ATTR is absent or differs from the value\n";

typedef struct conds {
  trb_cond_clause cl[MAX_CLAUSES];
  trb_av *vals[MAX_CLAUSES];
  size_t n;
  trb_cond cond;
} conds;

static void conds_fini(conds *c) {
  for (size_t i = 0; i < c->n; i++) trb_av_destroy(c->vals[i]);
}

/* Consumes a condition option at argv[*i]; 1 when it was one, 0 when not,
 * -1 on error (printed). */
static int conds_opt(conds *c, const char *cmd, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  trb_cond_op op;
  if (!strcmp(a, "--if-exists")) op = TRB_COND_EXISTS;
  else if (!strcmp(a, "--if-not-exists")) op = TRB_COND_NOT_EXISTS;
  else if (!strcmp(a, "--if")) op = TRB_COND_EQ;
  else if (!strcmp(a, "--if-not")) op = TRB_COND_NE;
  else return 0;
  if (*i + 1 >= argc) {
    cli_usage_err(cmd, "%s needs a value", a);
    return -1;
  }
  if (c->n == MAX_CLAUSES) {
    cli_usage_err(cmd, "at most %d conditions", MAX_CLAUSES);
    return -1;
  }
  char *arg = argv[++*i];
  trb_cond_clause *cl = &c->cl[c->n];
  cl->op = op;
  cl->attr = arg;
  cl->value = NULL;
  c->vals[c->n] = NULL;
  if (op == TRB_COND_EQ || op == TRB_COND_NE) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
      cli_usage_err(cmd, "%s needs ATTR=VALUE_JSON (got '%s')", a, arg);
      return -1;
    }
    *eq = 0;
    trb_av *v = cli_parse_value(eq + 1, a);
    if (!v) return -1;
    c->vals[c->n] = v;
    cl->value = v;
  }
  c->n++;
  return 1;
}

static const trb_cond *conds_get(conds *c) {
  if (!c->n) return NULL;
  c->cond.clauses = c->cl;
  c->cond.n = c->n;
  return &c->cond;
}

static int parse_rv(const char *s, trb_retval *rv) {
  static const struct { const char *n; trb_retval v; } m[] = {
      {"NONE", TRB_RV_NONE},           {"ALL_OLD", TRB_RV_ALL_OLD},
      {"UPDATED_OLD", TRB_RV_UPDATED_OLD}, {"ALL_NEW", TRB_RV_ALL_NEW},
      {"UPDATED_NEW", TRB_RV_UPDATED_NEW}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (!strcasecmp(s, m[i].n)) {
      *rv = m[i].v;
      return 0;
    }
  return -1;
}

static int help_requested(int argc, char **argv, const char *text, const char *extra) {
  for (int i = 1; i < argc; i++)
    if (cli_is_help(argv[i])) {
      fputs(text, stdout);
      if (extra) fputs(extra, stdout);
      return 1;
    }
  return 0;
}

/* ---- put / delete ---- */

static const char *put_help =
    "usage: tributary put TABLE ITEM_JSON [--return ALL_OLD] [conditions]\n"
    "\n"
    "Writes ITEM_JSON (DynamoDB JSON, with the table's key attributes), replacing any\n"
    "item with the same key. With --return ALL_OLD the replaced item is printed.\n"
    "Example:\n"
    "  tributary put orders '{\"customer\":{\"S\":\"ann\"},\"order\":{\"N\":\"1\"},\"total\":{\"N\":\"9.5\"}}'\n"
    "\n";

static const char *delete_help =
    "usage: tributary delete TABLE KEY_JSON [--return ALL_OLD] [conditions]\n"
    "\n"
    "Deletes the item with KEY_JSON (exactly the key attributes). Deleting a missing\n"
    "item is not an error. With --return ALL_OLD the deleted item is printed.\n"
    "\n";

static int put_or_delete(cli *c, int argc, char **argv, int is_put) {
  const char *cmd = is_put ? "put" : "delete";
  if (help_requested(argc, argv, is_put ? put_help : delete_help, cond_help)) return CLI_OK;
  const char *table = NULL, *json = NULL;
  trb_retval rv = TRB_RV_NONE;
  conds cs = {.n = 0};
  int rc = CLI_OK;
  trb_av *v = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    int r = conds_opt(&cs, cmd, argc, argv, &i);
    if (r < 0) {
      rc = CLI_USAGE;
      goto done;
    }
    if (r) continue;
    if (!strcmp(argv[i], "--return") && i + 1 < argc) {
      if (parse_rv(argv[++i], &rv) || (rv != TRB_RV_NONE && rv != TRB_RV_ALL_OLD)) {
        rc = cli_usage_err(cmd, "--return must be NONE or ALL_OLD for %s", cmd);
        goto done;
      }
    } else if (argv[i][0] == '-' && argv[i][1]) {
      rc = cli_usage_err(cmd, "unknown or incomplete option %s", argv[i]);
      goto done;
    } else if (!table) {
      table = argv[i];
    } else if (!json) {
      json = argv[i];
    } else {
      rc = cli_usage_err(cmd, "unexpected argument %s", argv[i]);
      goto done;
    }
  }
  if (!table || !json) {
    rc = cli_usage_err(cmd, "%s needs TABLE and %s", cmd, is_put ? "ITEM_JSON" : "KEY_JSON");
    goto done;
  }
  if (!(v = cli_parse_item(json, is_put ? "item" : "key"))) {
    rc = CLI_FAIL;
    goto done;
  }
  trb_engine *e = cli_engine(c);
  if (!e) {
    rc = CLI_FAIL;
    goto done;
  }
  trb_status st;
  trb_status_init(&st);
  trb_err err = is_put ? trb_put_item(e, table, v, conds_get(&cs), rv, &out, &st)
                       : trb_delete_item(e, table, v, conds_get(&cs), rv, &out, &st);
  if (err) {
    rc = cli_fail(err, &st);
    goto done;
  }
  if (out) cli_print_item(stdout, out);
done:
  trb_av_destroy(v);
  trb_av_destroy(out);
  conds_fini(&cs);
  return rc;
}

int cmd_put(cli *c, int argc, char **argv) { return put_or_delete(c, argc, argv, 1); }
int cmd_delete(cli *c, int argc, char **argv) { return put_or_delete(c, argc, argv, 0); }

/* ---- get ---- */

static const char *get_help =
    "usage: tributary get TABLE KEY_JSON\n"
    "\n"
    "Prints the item with KEY_JSON as one line of DynamoDB JSON, or nothing (exit 0)\n"
    "when there is none. Reads are strongly consistent.\n"
    "Example:\n"
    "  tributary get orders '{\"customer\":{\"S\":\"ann\"},\"order\":{\"N\":\"1\"}}'\n";

int cmd_get(cli *c, int argc, char **argv) {
  if (help_requested(argc, argv, get_help, NULL)) return CLI_OK;
  if (cli_no_options("get", argc, argv, 1)) return CLI_USAGE;
  if (argc != 3) return cli_usage_err("get", "get needs TABLE and KEY_JSON");
  trb_av *key = cli_parse_item(argv[2], "key");
  if (!key) return CLI_FAIL;
  int rc = CLI_OK;
  trb_engine *e = cli_engine(c);
  trb_av *item = NULL;
  if (!e) {
    rc = CLI_FAIL;
  } else {
    trb_status st;
    trb_status_init(&st);
    trb_err err = trb_get_item(e, argv[1], key, &item, &st);
    if (err) rc = cli_fail(err, &st);
    else if (item) cli_print_item(stdout, item);
  }
  trb_av_destroy(item);
  trb_av_destroy(key);
  return rc;
}

/* ---- update ---- */

static const char *update_help =
    "usage: tributary update TABLE KEY_JSON [--set NAME=VALUE_JSON]... [--remove NAME]...\n"
    "                        [--return NONE|ALL_OLD|UPDATED_OLD|ALL_NEW|UPDATED_NEW] [conditions]\n"
    "\n"
    "Sets or removes top-level attributes of the item with KEY_JSON, creating the item\n"
    "if it does not exist (as DynamoDB's UpdateItem does).\n"
    "Example:\n"
    "  tributary update orders '{\"customer\":{\"S\":\"ann\"},\"order\":{\"N\":\"1\"}}' \\\n"
    "      --set 'status={\"S\":\"shipped\"}' --remove note --return ALL_NEW\n"
    "\n";

int cmd_update(cli *c, int argc, char **argv) {
  if (help_requested(argc, argv, update_help, cond_help)) return CLI_OK;
  const char *table = NULL, *json = NULL;
  trb_retval rv = TRB_RV_NONE;
  conds cs = {.n = 0};
  int rc = CLI_OK;
  trb_update_action *acts = calloc((size_t)argc, sizeof *acts);
  trb_av **vals = calloc((size_t)argc, sizeof *vals);
  size_t nact = 0;
  trb_av *key = NULL, *out = NULL;
  if (!acts || !vals) {
    rc = CLI_FAIL;
    goto done;
  }
  for (int i = 1; i < argc; i++) {
    int r = conds_opt(&cs, "update", argc, argv, &i);
    if (r < 0) {
      rc = CLI_USAGE;
      goto done;
    }
    if (r) continue;
    if (!strcmp(argv[i], "--set") && i + 1 < argc) {
      char *a = argv[++i], *eq = strchr(a, '=');
      if (!eq || eq == a) {
        rc = cli_usage_err("update", "--set needs NAME=VALUE_JSON (got '%s')", a);
        goto done;
      }
      *eq = 0;
      if (!(vals[nact] = cli_parse_value(eq + 1, "--set"))) {
        rc = CLI_FAIL;
        goto done;
      }
      acts[nact].attr = a;
      acts[nact].value = vals[nact];
      nact++;
    } else if (!strcmp(argv[i], "--remove") && i + 1 < argc) {
      acts[nact].attr = argv[++i];
      acts[nact].remove = 1;
      nact++;
    } else if (!strcmp(argv[i], "--return") && i + 1 < argc) {
      if (parse_rv(argv[++i], &rv)) {
        rc = cli_usage_err("update", "unknown --return value '%s'", argv[i]);
        goto done;
      }
    } else if (argv[i][0] == '-' && argv[i][1]) {
      rc = cli_usage_err("update", "unknown or incomplete option %s", argv[i]);
      goto done;
    } else if (!table) {
      table = argv[i];
    } else if (!json) {
      json = argv[i];
    } else {
      rc = cli_usage_err("update", "unexpected argument %s", argv[i]);
      goto done;
    }
  }
  if (!table || !json) {
    rc = cli_usage_err("update", "update needs TABLE and KEY_JSON");
    goto done;
  }
  if (!(key = cli_parse_item(json, "key"))) {
    rc = CLI_FAIL;
    goto done;
  }
  trb_engine *e = cli_engine(c);
  if (!e) {
    rc = CLI_FAIL;
    goto done;
  }
  trb_update upd = {acts, nact};
  trb_status st;
  trb_status_init(&st);
  trb_err err = trb_update_item(e, table, key, &upd, conds_get(&cs), rv, &out, &st);
  if (err) rc = cli_fail(err, &st);
  else if (out) cli_print_item(stdout, out);
done:
  for (size_t i = 0; vals && i < nact; i++) trb_av_destroy(vals[i]);
  free(vals);
  free(acts);
  trb_av_destroy(key);
  trb_av_destroy(out);
  conds_fini(&cs);
  return rc;
}

/* ---- query / scan ---- */

static const char *query_help =
    "usage: tributary query TABLE --partition VALUE_JSON [--sort OP VALUE_JSON [VALUE_JSON]]\n"
    "                       [--desc] [--limit N] [--start-key KEY_JSON]\n"
    "\n"
    "Prints the items of one partition in sort-key order (numbers numerically, strings\n"
    "and binaries bytewise), one per line. OP is one of = < <= > >= between begins_with\n"
    "(between takes two values). Without --limit every page is read; with --limit N one\n"
    "page of at most N items is printed and, when more may remain, the key to continue\n"
    "from is printed on stderr as `LastEvaluatedKey: KEY_JSON` (pass it to --start-key).\n"
    "Example:\n"
    "  tributary query orders --partition '{\"S\":\"ann\"}' --sort '>=' '{\"N\":\"2\"}' --desc\n";

static const char *scan_help =
    "usage: tributary scan TABLE [--limit N] [--start-key KEY_JSON]\n"
    "                      [--segment I --total-segments N]\n"
    "\n"
    "Prints every item of the table, one per line, in hash order. --segment and\n"
    "--total-segments read one of N disjoint parts (a parallel scan): the parts\n"
    "together hold every item exactly once. --limit and --start-key page as for query.\n";

static int parse_size(const char *s, size_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || s[0] == '-') return -1;
  *out = (size_t)v;
  return 0;
}

static int parse_sk_op(const char *s, trb_sk_op *op) {
  if (!strcmp(s, "=")) *op = TRB_SK_EQ;
  else if (!strcmp(s, "<")) *op = TRB_SK_LT;
  else if (!strcmp(s, "<=")) *op = TRB_SK_LE;
  else if (!strcmp(s, ">")) *op = TRB_SK_GT;
  else if (!strcmp(s, ">=")) *op = TRB_SK_GE;
  else if (!strcasecmp(s, "between")) *op = TRB_SK_BETWEEN;
  else if (!strcasecmp(s, "begins_with")) *op = TRB_SK_BEGINS_WITH;
  else return -1;
  return 0;
}

/* Prints a page; returns the key to continue from (taken from the page). */
static trb_av *print_page(trb_page *p) {
  for (size_t i = 0; i < p->n; i++) cli_print_item(stdout, p->items[i]);
  trb_av *k = p->last_key;
  p->last_key = NULL;
  return k;
}

static void print_lek(const trb_av *k) {
  char *s = trb_item_to_json_text(k);
  if (s) fprintf(stderr, "LastEvaluatedKey: %s\n", s);
  free(s);
}

int cmd_query(cli *c, int argc, char **argv) {
  if (help_requested(argc, argv, query_help, NULL)) return CLI_OK;
  trb_query_req q;
  memset(&q, 0, sizeof q);
  trb_av *pk = NULL, *s1 = NULL, *s2 = NULL, *start = NULL;
  int rc = CLI_OK, paged = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--partition") && i + 1 < argc) {
      trb_av_destroy(pk);
      if (!(pk = cli_parse_value(argv[++i], "--partition"))) { rc = CLI_FAIL; goto done; }
    } else if (!strcmp(a, "--sort") && i + 2 < argc) {
      if (parse_sk_op(argv[++i], &q.sk_op)) {
        rc = cli_usage_err("query", "unknown --sort operator '%s'", argv[i]);
        goto done;
      }
      trb_av_destroy(s1);
      if (!(s1 = cli_parse_value(argv[++i], "--sort"))) { rc = CLI_FAIL; goto done; }
      if (q.sk_op == TRB_SK_BETWEEN) {
        if (i + 1 >= argc) {
          rc = cli_usage_err("query", "--sort between needs two values");
          goto done;
        }
        trb_av_destroy(s2);
        if (!(s2 = cli_parse_value(argv[++i], "--sort"))) { rc = CLI_FAIL; goto done; }
      }
    } else if (!strcmp(a, "--desc")) {
      q.backward = 1;
    } else if (!strcmp(a, "--limit") && i + 1 < argc) {
      if (parse_size(argv[++i], &q.limit) || !q.limit) {
        rc = cli_usage_err("query", "--limit must be a positive integer");
        goto done;
      }
      paged = 1;
    } else if (!strcmp(a, "--start-key") && i + 1 < argc) {
      trb_av_destroy(start);
      if (!(start = cli_parse_item(argv[++i], "--start-key"))) { rc = CLI_FAIL; goto done; }
    } else if (a[0] == '-' && a[1]) {
      rc = cli_usage_err("query", "unknown or incomplete option %s", a);
      goto done;
    } else if (!q.table) {
      q.table = a;
    } else {
      rc = cli_usage_err("query", "unexpected argument %s", a);
      goto done;
    }
  }
  if (!q.table || !pk) {
    rc = cli_usage_err("query", "query needs TABLE and --partition VALUE_JSON");
    goto done;
  }
  q.pk = pk;
  q.sk1 = s1;
  q.sk2 = s2;
  q.exclusive_start_key = start;
  trb_engine *e = cli_engine(c);
  if (!e) { rc = CLI_FAIL; goto done; }
  for (;;) {
    trb_page p;
    trb_status st;
    trb_status_init(&st);
    trb_err err = trb_query(e, &q, &p, &st);
    if (err) { rc = cli_fail(err, &st); goto done; }
    trb_av *next = print_page(&p);
    trb_page_fini(&p);
    trb_av_destroy(start);
    start = next;
    q.exclusive_start_key = start;
    if (!start) break;
    if (paged) { print_lek(start); break; }
  }
done:
  trb_av_destroy(pk);
  trb_av_destroy(s1);
  trb_av_destroy(s2);
  trb_av_destroy(start);
  return rc;
}

int cmd_scan(cli *c, int argc, char **argv) {
  if (help_requested(argc, argv, scan_help, NULL)) return CLI_OK;
  trb_scan_req s;
  memset(&s, 0, sizeof s);
  trb_av *start = NULL;
  int rc = CLI_OK, paged = 0, have_seg = 0, have_total = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    size_t v;
    if (!strcmp(a, "--limit") && i + 1 < argc) {
      if (parse_size(argv[++i], &s.limit) || !s.limit) {
        rc = cli_usage_err("scan", "--limit must be a positive integer");
        goto done;
      }
      paged = 1;
    } else if (!strcmp(a, "--segment") && i + 1 < argc) {
      if (parse_size(argv[++i], &v) || v >= 1000000) {
        rc = cli_usage_err("scan", "--segment must be an integer from 0 to 999999");
        goto done;
      }
      s.segment = (uint32_t)v;
      have_seg = 1;
    } else if (!strcmp(a, "--total-segments") && i + 1 < argc) {
      if (parse_size(argv[++i], &v) || v < 1 || v > 1000000) {
        rc = cli_usage_err("scan", "--total-segments must be an integer from 1 to 1000000");
        goto done;
      }
      s.total_segments = (uint32_t)v;
      have_total = 1;
    } else if (!strcmp(a, "--start-key") && i + 1 < argc) {
      trb_av_destroy(start);
      if (!(start = cli_parse_item(argv[++i], "--start-key"))) { rc = CLI_FAIL; goto done; }
    } else if (a[0] == '-' && a[1]) {
      rc = cli_usage_err("scan", "unknown or incomplete option %s", a);
      goto done;
    } else if (!s.table) {
      s.table = a;
    } else {
      rc = cli_usage_err("scan", "unexpected argument %s", a);
      goto done;
    }
  }
  if (!s.table) {
    rc = cli_usage_err("scan", "scan needs TABLE");
    goto done;
  }
  if (have_seg != have_total) {
    rc = cli_usage_err("scan", "--segment and --total-segments go together");
    goto done;
  }
  s.exclusive_start_key = start;
  trb_engine *e = cli_engine(c);
  if (!e) { rc = CLI_FAIL; goto done; }
  for (;;) {
    trb_page p;
    trb_status st;
    trb_status_init(&st);
    trb_err err = trb_scan(e, &s, &p, &st);
    if (err) { rc = cli_fail(err, &st); goto done; }
    trb_av *next = print_page(&p);
    trb_page_fini(&p);
    trb_av_destroy(start);
    start = next;
    s.exclusive_start_key = start;
    if (!start) break;
    if (paged) { print_lek(start); break; }
  }
done:
  trb_av_destroy(start);
  return rc;
}
