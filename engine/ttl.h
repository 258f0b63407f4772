/*
 * ttl.h -- Time to Live: deletes the items whose TTL attribute has passed.
 *
 * A table has TTL on when UpdateTimeToLive enabled it (the definition's
 * ext "TimeToLive": {"AttributeName": A, "Enabled": true}). An item of such
 * a table has expired when its attribute A is a Number (epoch seconds,
 * fractions allowed) at or before now and not more than five years before
 * now (DynamoDB's rules, spec 8.3): any other type, a missing attribute, a
 * future time or an older one never expires. Expired items are still read,
 * queried and updatable until the sweeper deletes them; an update that
 * moves or removes the attribute first rescues the item.
 *
 * The sweeper is one thread that, every interval_ms, reads each TTL table
 * in pages of TRB_TTL_PAGE items (a store snapshot per page, so a long
 * sweep pins nothing), at most scan_rate items a second, and deletes the
 * expired ones through the commit thread like DeleteItem does, with a
 * condition that the item has still expired at that point of the commit
 * order (a write that rescued it in the meantime wins) and write.ttl set:
 * the REMOVE records carry TRB_WAL_F_TTL, so stream records say who
 * deleted them (userIdentity Service / dynamodb.amazonaws.com), indexes
 * lose the entries as for any delete, and no write capacity is consumed.
 */
#ifndef TRB_TTL_H
#define TRB_TTL_H

#include <stdint.h>

#include "engine/engine.h"
#include "engine/value.h"

#define TRB_TTL_PAGE 500
#define TRB_TTL_MAX_AGE_S (5LL * 365 * 86400) /* older expiry times never expire */

/* 1 when item (may be NULL: 0) has expired at now_s by attribute attr. */
int trb_ttl_expired(const trb_av *item, const char *attr, int64_t now_s);

typedef struct trb_ttl_stats {
  uint64_t sweeps;   /* passes over every TTL table completed */
  uint64_t scanned;  /* items examined */
  uint64_t deleted;  /* items deleted by TTL */
  int64_t last_sweep_us; /* when the last pass ended, 0 = none yet */
} trb_ttl_stats;

/*
 * One pass over every table with TTL on, as of now_s (checked again per
 * item by the delete's condition): the thread's work, also called by
 * tests. scan_rate (items/s, 0 = no pause) paces it; *stop (may be NULL)
 * ends it early when it becomes nonzero. Adds to *acc. A table deleted
 * during its pass is skipped; other failures (the engine failed) are
 * returned with st.
 */
trb_err trb_ttl_sweep(trb_engine *e, int64_t now_s, uint32_t scan_rate, const int *stop,
                      trb_ttl_stats *acc, trb_status *st);

typedef struct trb_ttl trb_ttl;

typedef struct trb_ttl_opts {
  trb_engine *engine;    /* borrowed; must outlive the sweeper */
  uint32_t interval_ms;  /* between the starts of two passes; default 60000 */
  uint32_t scan_rate;    /* items examined per second; 0 = no limit */
} trb_ttl_opts;

/* Starts the sweeper thread (its first pass after interval_ms). *out
 * caller-owned (trb_ttl_stop). */
trb_err trb_ttl_start(const trb_ttl_opts *o, trb_ttl **out, trb_status *st);
/* Stops the thread (a pass in progress ends at its next page) and frees
 * t. NULL ok. */
void trb_ttl_stop(trb_ttl *t);
/* Totals since start; any thread. */
void trb_ttl_get_stats(trb_ttl *t, trb_ttl_stats *out);

#endif
