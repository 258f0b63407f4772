/*
 * log.h -- one-line log messages to stderr: time, level, module, text.
 * Messages say what happened and, for warnings and errors, what to do.
 */
#ifndef TRB_LOG_H
#define TRB_LOG_H

typedef enum { TRB_LOG_DEBUG, TRB_LOG_INFO, TRB_LOG_WARN, TRB_LOG_ERROR } trb_log_level;

/* Messages below `lvl` are dropped. Default INFO; env TRB_LOG=debug|info|warn|error. */
void trb_log_set_level(trb_log_level lvl);
void trb_log(trb_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define trb_log_debug(mod, ...) trb_log(TRB_LOG_DEBUG, mod, __VA_ARGS__)
#define trb_log_info(mod, ...) trb_log(TRB_LOG_INFO, mod, __VA_ARGS__)
#define trb_log_warn(mod, ...) trb_log(TRB_LOG_WARN, mod, __VA_ARGS__)
#define trb_log_error(mod, ...) trb_log(TRB_LOG_ERROR, mod, __VA_ARGS__)

#endif
