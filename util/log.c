/* log.c -- see log.h. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int level = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void trb_log_set_level(trb_log_level lvl) { level = (int)lvl; }

static int cur_level(void) {
  if (level < 0) {
    const char *e = getenv("TRB_LOG");
    level = TRB_LOG_INFO;
    if (e) {
      if (!strcmp(e, "debug")) level = TRB_LOG_DEBUG;
      else if (!strcmp(e, "warn")) level = TRB_LOG_WARN;
      else if (!strcmp(e, "error")) level = TRB_LOG_ERROR;
    }
  }
  return level;
}

void trb_log(trb_log_level lvl, const char *module, const char *fmt, ...) {
  static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if ((int)lvl < cur_level()) return;
  char ts[32];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  char line[2048];
  int n = snprintf(line, sizeof line, "%s.%03ldZ %-5s %s: ", ts,
                   now.tv_nsec / 1000000, names[lvl], module);
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&mu);
  fprintf(stderr, "%s\n", line);
  pthread_mutex_unlock(&mu);
}
