/*
 * names.c -- attribute paths, column names, SQL type names (names.h).
 */
#include "util/names.h"

#include <stdlib.h>
#include <string.h>

int trb_path_parse(const char *path, trb_path_step *steps, size_t cap, size_t *n) {
  size_t k = 0;
  const char *p = path;
  int want_name = 1;
  while (*p) {
    if (k == cap) return 0;
    if (want_name) {
      size_t l = strcspn(p, ".[]");
      if (!l) return 0;
      steps[k++] = (trb_path_step){.text = p, .len = l};
      p += l;
      want_name = 0;
    } else if (*p == '.') {
      p++;
      want_name = 1;
    } else if (*p == '[') {
      size_t d = strspn(p + 1, "0123456789");
      if (!d || p[1 + d] != ']') return 0;
      steps[k++] = (trb_path_step){.text = p + 1, .len = d, .is_index = 1,
                                   .index = strtoul(p + 1, NULL, 10)};
      p += d + 2;
    } else {
      return 0;
    }
  }
  if (want_name) return 0;
  *n = k;
  return 1;
}

int trb_path_column(const char *path, char *col, size_t cap) {
  trb_path_step st[TRB_PATH_MAX_STEPS];
  size_t n, o = 0;
  if (cap < 64 || !trb_path_parse(path, st, TRB_PATH_MAX_STEPS, &n)) return 0;
  for (size_t i = 0; i < n; i++) {
    if (o + (i ? 1 : 0) + st[i].len > 63) return 0;
    if (i) col[o++] = '_';
    memcpy(col + o, st[i].text, st[i].len);
    o += st[i].len;
  }
  col[o] = '\0';
  return 1;
}

int trb_sql_type_ok(const char *t) {
  size_t n = strlen(t), i = 0;
  if (n == 0 || n > 63 || !(t[0] >= 'a' && t[0] <= 'z')) return 0;
  while (i < n && (strchr("abcdefghijklmnopqrstuvwxyz0123456789_", t[i]) ||
                   (t[i] == ' ' && i + 1 < n && t[i + 1] != ' ' && t[i + 1] != '(' &&
                    t[i + 1] != '[')))
    i++;
  if (i < n && t[i] == '(') {
    size_t d = strspn(t + i + 1, "0123456789");
    if (!d) return 0;
    i += 1 + d;
    if (t[i] == ',') {
      if (t[i + 1] == ' ') i++;
      d = strspn(t + i + 1, "0123456789");
      if (!d) return 0;
      i += 1 + d;
    }
    if (t[i] != ')') return 0;
    i++;
  }
  if (i < n && !strcmp(t + i, "[]")) i += 2;
  return i == n;
}
