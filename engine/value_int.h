/*
 * value_int.h -- internals shared by value.c, item_json.c and item_codec.c.
 * Not part of the API: other modules build values with value.h only.
 */
#ifndef TRB_VALUE_INT_H
#define TRB_VALUE_INT_H

#include "engine/value.h"

/*
 * A new empty container of type t (M, L, SS, NS or BS) whose entry array
 * (n trb_attr for M, n pointers otherwise) lives in the node's own malloc
 * block, cap = n. Fill it by writing u.m.e[i] / u.l.v[i] and bumping n; it
 * grows through trb_av_m_set / trb_av_l_append like any other. NULL on OOM
 * or for another type. Caller-owned.
 */
trb_av *trb__av_alloc_container(trb_type t, size_t n);

/* Checks an attribute name's length (1..TRB_MAX_ATTR_NAME bytes) with
 * DynamoDB's text in st (TRB_EINVAL). */
trb_err trb__av_check_name(size_t len, trb_status *st);

/* The nesting error text (TRB_EINVAL). */
trb_err trb__av_too_deep(trb_status *st);

#endif
