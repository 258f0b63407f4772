/*
 * trb_err.h -- the project's one error enum, and a small status object that
 * carries a code plus a human message.
 *
 * Every fallible function in tributary returns a trb_err (0 = success).
 * Where a code alone is not enough for the user (validation errors name the
 * attribute, corruption names the segment and offset), the function also
 * takes a `trb_status *` that it fills; the pointer may be NULL.
 *
 * The list below is an X-macro: the order is stable (codes are never
 * renumbered, new ones go at the end) and the enum, the names and the default
 * messages all come from it, as librdkafka's err2name/err2str do.
 */
#ifndef TRB_ERR_H
#define TRB_ERR_H

#include <stdarg.h>
#include <stddef.h>

/*     name                code  retriable  default message */
#define TRB_ERR_LIST(X)                                                        \
  X(TRB_OK,                0,    0, "success")                                \
  X(TRB_EINVAL,            1,    0, "invalid argument")                       \
  X(TRB_ENOMEM,            2,    1, "out of memory")                          \
  X(TRB_EIO,               3,    0, "I/O error")                              \
  X(TRB_ECORRUPT,          4,    0, "data corruption detected")               \
  X(TRB_EVERSION,          5,    0, "unknown format version")                 \
  X(TRB_ENOTFOUND,         6,    0, "requested resource not found")           \
  X(TRB_EEXISTS,           7,    0, "resource already exists")                \
  X(TRB_ECONDFAIL,         8,    0, "the conditional request failed")         \
  X(TRB_ECLOSED,           9,    0, "handle is closed")                       \
  X(TRB_EFAILED,           10,   0, "WAL failed earlier; reopen required")    \
  X(TRB_ETIMEDOUT,         11,   1, "timed out")                              \
  X(TRB_ECONFIG,           12,   0, "configuration error")                    \
  X(TRB_EINUSE,            13,   1, "resource in use")                        \
  X(TRB_ELIMIT,            14,   0, "limit exceeded")                         \
  X(TRB_EINTERNAL,         15,   0, "internal error")                         \
  X(TRB_ESERIAL,           16,   0, "request could not be deserialized")             \
  X(TRB_ETRIMMED,          17,   0, "data removed by retention")

typedef enum trb_err {
#define TRB__ERR_ENUM(name, code, retr, msg) name = code,
  TRB_ERR_LIST(TRB__ERR_ENUM)
#undef TRB__ERR_ENUM
} trb_err;

/* Static strings, never NULL ("TRB_E?" for unknown codes). */
const char *trb_err_name(trb_err e);
const char *trb_err_str(trb_err e);
/* 1 when a caller may retry the same call later and expect success. */
int trb_err_retriable(trb_err e);

/*
 * A status: the code and a message for people. Caller-owned storage
 * (usually on the stack); trb_status_init() before first use.
 */
#define TRB_STATUS_MSG_MAX 512
typedef struct trb_status {
  trb_err code;
  char msg[TRB_STATUS_MSG_MAX];
} trb_status;

void trb_status_init(trb_status *st);
/* Sets code and a printf-style message; returns `code` so callers can write
 * `return trb_status_set(st, TRB_EINVAL, "...")`. st may be NULL. */
trb_err trb_status_set(trb_status *st, trb_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
trb_err trb_status_vset(trb_status *st, trb_err code, const char *fmt,
                        va_list ap);
/* The message, or the code's default message when none was set. */
const char *trb_status_msg(const trb_status *st);

#endif
