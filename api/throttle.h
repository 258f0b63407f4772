/*
 * throttle.h -- provisioned-throughput enforcement: a token bucket per table
 * for reads and one for writes, refilled at the provisioned RCU/WCU per
 * second and holding up to 300 seconds of unused capacity (DynamoDB's burst
 * allowance). On-demand tables are never throttled.
 *
 * A request may proceed while its bucket is positive; it then pays what it
 * actually consumed (which may take the bucket below zero, as DynamoDB's
 * after-the-fact accounting does); a request finding the bucket empty gets
 * ProvisionedThroughputExceededException.
 */
#ifndef TRB_THROTTLE_H
#define TRB_THROTTLE_H

#include <stdint.h>

typedef struct trb_throttle trb_throttle;

trb_throttle *trb_throttle_create(void);
void trb_throttle_destroy(trb_throttle *t);

/*
 * May a request on table (identified by table_id, with the given provisioned
 * rate; rate 0 = on demand) go ahead? 1 yes, 0 throttled. `write` picks the
 * bucket. Thread-safe.
 */
int trb_throttle_admit(trb_throttle *t, uint64_t table_id, double rate, int write, int64_t now_us);
/* Charges units consumed by an admitted request. */
void trb_throttle_charge(trb_throttle *t, uint64_t table_id, double rate, int write, double units,
                         int64_t now_us);

#endif
