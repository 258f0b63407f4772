/*
 * thread.h -- per-thread scheduling priority.
 *
 * On Linux a thread has its own nice value. The stream threads (the stream
 * index, each sink's delivery thread, and a thread while it serves
 * GetRecords) do little work per change but sit on the path from an
 * acknowledged write to every consumer; when request threads keep all CPUs
 * busy, a runnable stream thread otherwise waits its turn behind them for
 * tens of milliseconds. Running them a few nice levels above the rest makes
 * the writes wait a little instead.
 */
#ifndef TRB_THREAD_H
#define TRB_THREAD_H

/* The calling thread's nice value (-20..19). */
int trb_thread_nice(void);
/* Sets the calling thread's nice value (clamped to -20..19). 0 when done;
 * -1 when the system refuses (a lower value than before needs
 * CAP_SYS_NICE, which root has): then the thread keeps its priority and
 * one INFO line per process, naming `what` (borrowed), says so. A higher
 * value than before is never refused. */
int trb_thread_set_nice(int nice, const char *what);
/* trb_thread_set_nice(trb_thread_nice() - by, what); nothing when by is 0. */
int trb_thread_favour(unsigned by, const char *what);

#endif
