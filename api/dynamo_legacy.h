/*
 * dynamo_legacy.h -- DynamoDB's legacy request parameters (AttributesToGet,
 * Expected, AttributeUpdates, KeyConditions, QueryFilter, ScanFilter,
 * ConditionalOperator), rewritten into the expression parameters.
 */
#ifndef TRB_API_DYNAMO_LEGACY_H
#define TRB_API_DYNAMO_LEGACY_H

#include "api/dynamo_int.h"

/* Which legacy members an operation takes. */
#define API_LG_ATTRIBUTES_TO_GET 0x01u
#define API_LG_EXPECTED 0x02u
#define API_LG_ATTRIBUTE_UPDATES 0x04u
#define API_LG_KEY_CONDITIONS 0x08u
#define API_LG_QUERY_FILTER 0x10u
#define API_LG_SCAN_FILTER 0x20u

/* Rewrites the legacy members of request object obj (borrowed, changed in
 * place) into ProjectionExpression, ConditionExpression, FilterExpression,
 * KeyConditionExpression and UpdateExpression with their own
 * ExpressionAttributeNames/Values, and removes them. 0: done (or nothing
 * to do); -1: refused (a member the operation does not take, legacy and
 * expression members together, a malformed condition), the error set on c
 * in DynamoDB's shape. */
int api_legacy(api_call *c, json_t *obj, unsigned allowed);

#endif
