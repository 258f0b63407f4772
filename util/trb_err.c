/* trb_err.c -- names and messages for the error enum (see trb_err.h). */
#include "util/trb_err.h"
#include "util/utf8.h"

#include <stdio.h>
#include <string.h>

const char *trb_err_name(trb_err e) {
  switch (e) {
#define TRB__ERR_NAME(name, code, retr, msg) case name: return #name;
    TRB_ERR_LIST(TRB__ERR_NAME)
#undef TRB__ERR_NAME
  }
  return "TRB_E?";
}

const char *trb_err_str(trb_err e) {
  switch (e) {
#define TRB__ERR_STR(name, code, retr, msg) case name: return msg;
    TRB_ERR_LIST(TRB__ERR_STR)
#undef TRB__ERR_STR
  }
  return "unknown error";
}

int trb_err_retriable(trb_err e) {
  switch (e) {
#define TRB__ERR_RETR(name, code, retr, msg) case name: return retr;
    TRB_ERR_LIST(TRB__ERR_RETR)
#undef TRB__ERR_RETR
  }
  return 0;
}

void trb_status_init(trb_status *st) {
  if (!st) return;
  st->code = TRB_OK;
  st->msg[0] = '\0';
}

trb_err trb_status_vset(trb_status *st, trb_err code, const char *fmt,
                        va_list ap) {
  if (!st) return code;
  st->code = code;
  if (fmt) {
    int n = vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    if (n >= (int)sizeof st->msg) {
      /* Cut: not inside a UTF-8 sequence (a message echoes the request's
       * strings, and JSON must not get half a character). */
      size_t end = sizeof st->msg - 1, i = end;
      while (i > 0 && end - i < 3 && ((unsigned char)st->msg[i - 1] & 0xC0) == 0x80) i--;
      if (i > 0 && !trb_utf8_valid(st->msg + i - 1, end - (i - 1))) st->msg[i - 1] = '\0';
    }
  } else {
    st->msg[0] = '\0';
  }
  return code;
}

trb_err trb_status_set(trb_status *st, trb_err code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  trb_status_vset(st, code, fmt, ap);
  va_end(ap);
  return code;
}

const char *trb_status_msg(const trb_status *st) {
  if (!st) return "";
  if (st->msg[0]) return st->msg;
  return trb_err_str(st->code);
}
