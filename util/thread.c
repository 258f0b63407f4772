/* thread.c -- per-thread scheduling priority (see thread.h). */
#include "util/thread.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/log.h"

static atomic_int g_refused_logged;

int trb_thread_nice(void) {
  errno = 0;
  int n = getpriority(PRIO_PROCESS, (id_t)gettid());
  return n == -1 && errno ? 0 : n;
}

int trb_thread_set_nice(int nice, const char *what) {
  if (nice < -20) nice = -20;
  if (nice > 19) nice = 19;
  if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice) == 0) return 0;
  int e = errno;
  if (!atomic_exchange(&g_refused_logged, 1))
    trb_log_info("sched", "%s run at normal priority: raising it was refused (%s; it needs "
                 "CAP_SYS_NICE, e.g. AmbientCapabilities=CAP_SYS_NICE under systemd). Under "
                 "full CPU load changes then reach consumers later; streams.priority_boost: 0 "
                 "silences this line", what, strerror(e));
  return -1;
}

int trb_thread_favour(unsigned by, const char *what) {
  if (!by) return 0;
  return trb_thread_set_nice(trb_thread_nice() - (int)(by > 39 ? 39 : by), what);
}
