/* clock.h -- wall-clock and monotonic time helpers. */
#ifndef TRB_CLOCK_H
#define TRB_CLOCK_H

#include <pthread.h>
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

/* Absolute CLOCK_MONOTONIC deadline `us` from now, for pthread_cond_timedwait
 * on a condvar made by trb_cond_init_mono. */
static inline struct timespec trb_deadline_us(int64_t us) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += us / 1000000;
  ts.tv_nsec += (us % 1000000) * 1000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

/* The same, `ms` from now. */
static inline struct timespec trb_deadline_ms(int64_t ms) { return trb_deadline_us(ms * 1000); }

/* Initializes *cv with CLOCK_MONOTONIC for its timed waits (the deadlines
 * above). 0, or pthread_cond_init's error. */
static inline int trb_cond_init_mono(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
  return rc;
}

#endif
