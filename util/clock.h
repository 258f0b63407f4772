/* clock.h -- wall-clock and monotonic time helpers. */
#ifndef TRB_CLOCK_H
#define TRB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
static inline int64_t trb_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Nanoseconds from an arbitrary origin (CLOCK_MONOTONIC), for durations. */
static inline int64_t trb_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Absolute CLOCK_MONOTONIC deadline `ms` from now, for pthread_cond_timedwait
 * on a condvar created with pthread_condattr_setclock(CLOCK_MONOTONIC). */
static inline struct timespec trb_deadline_ms(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

#endif
