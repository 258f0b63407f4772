/*
 * dynamo_int.h -- internals shared by the api/dynamo_*.c files: one call's
 * context, error helpers, member readers that give DynamoDB's errors.
 */
#ifndef TRB_DYNAMO_INT_H
#define TRB_DYNAMO_INT_H

#include <jansson.h>

#include "api/dynamo.h"
#include "api/idempotency.h"
#include "api/throttle.h"
#include "engine/expr.h"

struct trb_api {
  trb_engine *eng;
  char region[64];
  char account[32];
  trb_sigv4_key *keys;
  size_t nkeys;
  trb_throttle *thr;
  trb_idem *idem;        /* TransactWriteItems' ClientRequestTokens */
  struct trb_streams *streams;          /* borrowed */
  char *(*metrics)(void *ctx);
  void *metrics_ctx;
  uint32_t stream_shards;
  int async_writes;                     /* PutItem/UpdateItem/DeleteItem suspend the connection */
  struct trb_offload *wait;             /* runs the other waiting operations (api/offload.h);
                                           NULL: they run on the HTTP thread */
  char *stream_tables;                  /* streams.tables: "TABLE:VIEW,..." or NULL */
  const struct trb_iter_key *iter_key;  /* borrowed */
  unsigned stream_boost;                /* trb_api_opts.stream_priority_boost */
};



typedef struct api_call {
  trb_api *api;
  const char *op;
  json_t *in;            /* the request object (borrowed) */
  json_t *out;           /* the response object (owned) */
  char *out_raw;         /* or the response body, serialized already (owned, malloc'ed:
                            GetRecords' records as text); out is then ignored */
  size_t out_raw_len;
  int status;            /* HTTP status of an error */
  const char *err_type;  /* NULL = success */
  char err_msg[1024];
  json_t *err_extra;     /* extra members of the error body (owned) */
} api_call;

/* Provisioned throughput of a table for one request: admission and the
 * charge after it. rate 0 = on demand (never throttled). */
typedef struct api_thr {
  uint64_t table_id;
  double rate;
  int write;
} api_thr;
/* Looks the table up; -1 with ProvisionedThroughputExceededException (or
 * ResourceNotFoundException) set when the request may not go ahead. With
 * info, the table's description goes there, caller-owned when 0 is
 * returned (the request's one lookup of the table). */
int api_admit(api_call *c, const char *table, int write, api_thr *t, trb_table_info *info);
/* The same in two steps, for the batches and transactions: 0 may go ahead,
 * 1 throttled (no error set), -1 the table lookup failed (error set; info
 * not filled, else caller-owned); and the error of a throttled table
 * (ThrottlingReasons name its ARN). */
int api_throttled(api_call *c, const char *table, int write, api_thr *t, trb_table_info *info);
int api_fail_throttled(api_call *c, const char *table, int write);
void api_charge(api_call *c, const api_thr *t, double units);
/* As api_admit for a read of the table or of one of its indexes (a GSI has
 * its own provisioned throughput; an LSI shares the table's). */
int api_admit_read(api_call *c, const trb_table_info *info, const trb_indexdef *ix, api_thr *t);

/* Sets the call's error; returns -1. The type decides the namespace and
 * whether the message key is "message" or "Message". */
int api_fail(api_call *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps an engine error (code + status) to DynamoDB's error type. */
int api_fail_st(api_call *c, trb_err rc, const trb_status *st);

/* Member readers. Each returns 1 when the member is present and well
 * typed, 0 when absent (an error when required), -1 on error (set). Wrong
 * JSON types are SerializationException with DynamoDB's texts. */
int api_get_str(api_call *c, json_t *obj, const char *name, int required, const char **out);
int api_get_bool(api_call *c, json_t *obj, const char *name, int *out);
int api_get_int(api_call *c, json_t *obj, const char *name, int64_t *out);
int api_get_obj(api_call *c, json_t *obj, const char *name, int required, json_t **out);
int api_get_arr(api_call *c, json_t *obj, const char *name, int required, json_t **out);
/* Checks an enum value; -1 (ValidationException in AWS's format) when not
 * one of the NULL-terminated list. */
int api_check_enum(api_call *c, const char *member, const char *value, const char *const *allowed);

/* TableName (a name or a table ARN): the name, validated. */
int api_table_name(api_call *c, json_t *obj, const char *member, const char **name);
/* An item or key map (DynamoDB JSON). *out caller-owned. */
int api_get_item(api_call *c, json_t *obj, const char *name, int required, trb_av **out);
/* The expression environment of a request object (ExpressionAttributeNames
 * and ExpressionAttributeValues members). *out caller-owned. *vals holds the
 * decoded values (caller destroys after the env). */
int api_expr_env(api_call *c, json_t *obj, trb_expr_env **env, trb_av **vals);
/* Parses an optional expression member. 0 absent, 1 parsed, -1 error. */
int api_expr(api_call *c, json_t *obj, const char *member, trb_expr_kind kind, trb_expr_env *env,
             trb_expr **out);

/* The stream view type streams.tables gives table, into view: 1, or 0. */
int api_config_stream(const trb_api *a, const char *table, char view[32]);

/* ARNs and descriptions. */
void api_table_arn(trb_api *a, const char *name, char *out, size_t n);
json_t *api_table_description(trb_api *a, const trb_table_info *info, const char *status);

/* Capacity: the ConsumedCapacity object for one table, or NULL when the
 * request did not ask (ReturnConsumedCapacity NONE/absent). */
int api_want_capacity(api_call *c, json_t *obj, int *mode); /* 0 none, 1 total, 2 indexes */
/* ReturnItemCollectionMetrics: *size 1 for SIZE, 0 for NONE or absent. */
int api_want_icm(api_call *c, json_t *obj, int *size);
/* The ItemCollectionMetrics of a write to table (of the item or key it
 * names: {ItemCollectionKey, SizeEstimateRangeGB}), or NULL when the table
 * has no local secondary index (DynamoDB gives them only then). New
 * reference. */
json_t *api_icm(api_call *c, const char *table, const trb_av *item_or_key);
/* Adds m (stolen; NULL ignored) to a BatchWriteItem/TransactWriteItems
 * ItemCollectionMetrics map under the table as sent, once per collection. */
void api_icm_add(json_t *map, const char *table_as_sent, json_t *m);
json_t *api_capacity(const char *table, double units, int mode, int read);
double api_rcu(size_t bytes, int consistent);
double api_wcu(size_t bytes);

/* Secondary indexes (dynamo_index.c). */
/* AttributeDefinitions as a JSON object name -> "S"|"N"|"B". *out owned. */
int api_attr_defs(api_call *c, json_t *ads, json_t **out);
/* A KeySchema array into ks (names; types from api_attr_defs later). */
int api_key_schema(api_call *c, json_t *ksj, const char *where, trb_keyschema *ks);
/* LocalSecondaryIndexes and GlobalSecondaryIndexes of a CreateTable: *out
 * NULL when there are none, else caller-owned (trb_indexset_unref). Marks
 * the key attributes used in `used`; GSI throughput goes into ext. */
int api_create_indexes(api_call *c, json_t *in, const trb_keyschema *ks, json_t *adm,
                       json_t *used, int provisioned, json_t *ext, trb_indexset **out);
/* Adds LocalSecondaryIndexes / GlobalSecondaryIndexes to a description. */
void api_index_descriptions(trb_api *a, const trb_table_info *info, json_t *o);
/* Applies GlobalSecondaryIndexUpdates to a copy of the table's index set
 * (*out caller-owned) and to ext (AttributeDefinitions, IndexThroughput). */
int api_gsi_updates(api_call *c, const trb_table_info *cur, json_t *ext, json_t *updates,
                    trb_indexset **out);
/* The index an IndexName names (borrowed from info), or -1 (set). */
int api_index_for_read(api_call *c, const trb_table_info *info, const char *name,
                       const trb_indexdef **out);
/* A GSI's provisioned rate (0 = on demand or an LSI). */
int api_gsi_rate(const trb_table_info *info, const trb_indexdef *d, int write, double *rate);

/* The ConsumedCapacity of one write: the table's units plus what its
 * indexes cost (w->ix_kb), times mult (2 in a transaction). NULL for mode 0. */
json_t *api_write_capacity(const char *table_as_sent, double table_units, const trb_write *w,
                           const trb_indexset *ix, int mode, double mult);
/* Adds b (same table) into a: units and index maps. Takes b. */
void api_capacity_merge(json_t *a, json_t *b);
/* Write admission on the table's GSIs with provisioned write capacity, and
 * their charge after the write. api_gsi_writes_throttled: the position of the
 * first GSI whose write bucket is empty, or -1; api_fail_gsi_throttled: the
 * exception that names it. api_admit_gsi_writes: both. */
int api_admit_gsi_writes(api_call *c, const trb_table_info *info);
int api_gsi_writes_throttled(api_call *c, const trb_table_info *info);
int api_fail_gsi_throttled(api_call *c, const trb_table_info *info, int gsi);
/* Types a key schema's attributes from the definitions adm (name -> type)
 * and marks them in used; -1 (error set, naming the keys and the
 * definitions) when one is not defined. */
int api_type_keys(api_call *c, trb_keyschema *ks, json_t *adm, json_t *used);
/* A ProvisionedThroughput member (where: its path in validation messages):
 * both units present, each 1..API_MAX_CAPACITY_UNITS (above: DynamoDB's
 * LimitExceededException); -1 with the error set. */
#define API_MAX_CAPACITY_UNITS 40000
int api_check_throughput(api_call *c, json_t *pt, const char *where);
void api_charge_gsi_writes(api_call *c, const trb_table_info *info, const trb_write *w,
                           double mult);

/* Operations. Each returns 0 with c->out set, or -1 with the error set. */
int op_create_table(api_call *c);
int op_describe_table(api_call *c);
int op_list_tables(api_call *c);
int op_delete_table(api_call *c);
int op_update_table(api_call *c);
int op_update_ttl(api_call *c);
int op_describe_ttl(api_call *c);
int op_tag_resource(api_call *c);
int op_untag_resource(api_call *c);
int op_list_tags(api_call *c);
int op_describe_endpoints(api_call *c);
int op_describe_limits(api_call *c);
int op_describe_continuous_backups(api_call *c);
int op_put_item(api_call *c);
int op_get_item(api_call *c);
int op_update_item(api_call *c);
int op_delete_item(api_call *c);
int op_query(api_call *c);
int op_scan(api_call *c);
int op_batch_get(api_call *c);
int op_batch_write(api_call *c);
int op_transact_write(api_call *c);
int op_transact_get(api_call *c);
/* The Streams API (dynamo_streams.c). */
int op_list_streams(api_call *c);
int op_describe_stream(api_call *c);
int op_get_shard_iterator(api_call *c);
int op_get_records(api_call *c);

#endif
