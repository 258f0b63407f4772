"""DynamoDB's legacy request parameters through boto3 against `tributary serve`
on loopback (older SDK code and mappers still send them): AttributesToGet in
GetItem, BatchGetItem, Query and Scan; Expected (both forms) with
ConditionalOperator in PutItem, UpdateItem and DeleteItem; AttributeUpdates
(PUT, ADD to a number, a set and a list, DELETE of an attribute and of set
members); KeyConditions, QueryFilter and ScanFilter with every
ComparisonOperator, each checked against the same request written with
expressions; and the refusals: legacy and expression parameters together,
ConditionalOperator over one condition, a wrong number of values, Exists
true without a Value, a legacy member in a transaction."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402
from trbserver import Harness, Server, raw_call  # noqa: E402

h = Harness("api_legacy")
srv = Server().start()
ddb = boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                   aws_access_key_id="local", aws_secret_access_key="local",
                   config=botocore.config.Config(retries={"max_attempts": 1}))
E = ddb.exceptions


def S(v):
    return {"S": v}


def N(v):
    return {"N": str(v)}


def err(fn, code, what, text=None):
    try:
        fn()
        h.check(False, "%s: no error, want %s" % (what, code))
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        msg = e.response["Error"].get("Message", "")
        h.check(got == code and (text is None or text in msg),
                "%s: got %s %r, want %s%s" % (what, got, msg, code, " with %r" % text if text else ""))


try:
    ddb.create_table(TableName="legacy", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    for i in range(20):
        it = {"pk": S("p%d" % (i % 2)), "sk": N(i), "n": N(i), "s": S("w%02d" % i),
              "tags": {"SS": ["t%d" % (i % 3), "all"]}}
        if i % 4 == 0:
            it["opt"] = S("yes")
        ddb.put_item(TableName="legacy", Item=it)

    # ---- AttributesToGet ----
    r = ddb.get_item(TableName="legacy", Key={"pk": S("p0"), "sk": N(4)}, AttributesToGet=["n", "opt"])
    h.eq(r["Item"], {"n": N(4), "opt": S("yes")}, "GetItem AttributesToGet")
    r = ddb.batch_get_item(RequestItems={"legacy": {"Keys": [{"pk": S("p0"), "sk": N(2)}],
                                                    "AttributesToGet": ["s"]}})
    h.eq(r["Responses"]["legacy"], [{"s": S("w02")}], "BatchGetItem AttributesToGet")
    err(lambda: ddb.get_item(TableName="legacy", Key={"pk": S("p0"), "sk": N(4)}, AttributesToGet=["n"],
                             ProjectionExpression="n"),
        "ValidationException", "AttributesToGet with ProjectionExpression",
        "Can not use both expression and non-expression parameters in the same request")
    err(lambda: ddb.get_item(TableName="legacy", Key={"pk": S("p0"), "sk": N(4)}, AttributesToGet=["n", "n"]),
        "ValidationException", "duplicate AttributesToGet", "Duplicate value")

    # ---- Query: KeyConditions, QueryFilter, AttributesToGet, against expressions ----
    def query_both(legacy, expr, what):
        a = ddb.query(TableName="legacy", **legacy)
        b = ddb.query(TableName="legacy", **expr)
        h.eq((a["Count"], a.get("Items")), (b["Count"], b.get("Items")), what)
        return a

    a = query_both(
        {"KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p0")]},
                           "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [N(4), N(12)]}}},
        {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
         "ExpressionAttributeValues": {":p": S("p0"), ":a": N(4), ":b": N(12)}},
        "KeyConditions EQ + BETWEEN")
    h.eq([int(x["sk"]["N"]) for x in a["Items"]], [4, 6, 8, 10, 12], "KeyConditions BETWEEN items")
    a = query_both(
        {"KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p1")]}},
         "QueryFilter": {"n": {"ComparisonOperator": "GT", "AttributeValueList": [N(10)]},
                         "tags": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [S("t0")]}},
         "ConditionalOperator": "OR", "AttributesToGet": ["sk"], "Select": "SPECIFIC_ATTRIBUTES"},
        {"KeyConditionExpression": "pk = :p", "FilterExpression": "n > :n OR contains(tags, :t)",
         "ProjectionExpression": "sk", "ExpressionAttributeValues": {":p": S("p1"), ":n": N(10), ":t": S("t0")}},
        "QueryFilter with OR and AttributesToGet")
    h.check(a["Count"] > 0 and all(list(x) == ["sk"] for x in a["Items"]), "projected to sk")
    query_both(
        {"KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p0")]},
                           "sk": {"ComparisonOperator": "GE", "AttributeValueList": [N(10)]}},
         "Select": "COUNT"},
        {"KeyConditionExpression": "pk = :p AND sk >= :s", "Select": "COUNT",
         "ExpressionAttributeValues": {":p": S("p0"), ":s": N(10)}},
        "KeyConditions GE with Select COUNT")
    pages = list(ddb.get_paginator("query").paginate(
        TableName="legacy", KeyConditions={"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p0")]}},
        PaginationConfig={"PageSize": 3}))
    h.eq(sum(p["Count"] for p in pages), 10, "a legacy Query pages like any other")

    # ---- Scan: ScanFilter with each operator, against the expression ----
    scan_cases = [
        ("EQ", [N(3)], "n = :v0"), ("NE", [N(3)], "n <> :v0"), ("LE", [N(3)], "n <= :v0"),
        ("LT", [N(3)], "n < :v0"), ("GE", [N(17)], "n >= :v0"), ("GT", [N(17)], "n > :v0"),
        ("IN", [N(1), N(5), N(99)], "n IN (:v0, :v1, :v2)"),
        ("BETWEEN", [N(5), N(8)], "n BETWEEN :v0 AND :v1"),
    ]
    for op, vals, expr in scan_cases:
        a = ddb.scan(TableName="legacy", ScanFilter={"n": {"ComparisonOperator": op, "AttributeValueList": vals}})
        b = ddb.scan(TableName="legacy", FilterExpression=expr,
                     ExpressionAttributeValues={":v%d" % i: v for i, v in enumerate(vals)})
        h.eq((a["Count"], a["ScannedCount"], a["Items"]), (b["Count"], b["ScannedCount"], b["Items"]),
             "ScanFilter %s" % op)
    for op, attr, vals, expr in [("NOT_NULL", "opt", [], "attribute_exists(opt)"),
                                 ("NULL", "opt", [], "attribute_not_exists(opt)"),
                                 ("CONTAINS", "tags", [S("t1")], "contains(tags, :v0)"),
                                 ("NOT_CONTAINS", "tags", [S("t1")], "NOT contains(tags, :v0)"),
                                 ("BEGINS_WITH", "s", [S("w1")], "begins_with(s, :v0)")]:
        cond = {"ComparisonOperator": op}
        if vals:
            cond["AttributeValueList"] = vals
        a = ddb.scan(TableName="legacy", ScanFilter={attr: cond})
        kw = {"ExpressionAttributeValues": {":v%d" % i: v for i, v in enumerate(vals)}} if vals else {}
        b = ddb.scan(TableName="legacy", FilterExpression=expr, **kw)
        h.eq((a["Count"], a["Items"]), (b["Count"], b["Items"]), "ScanFilter %s" % op)
        h.check(0 < a["Count"] < 20, "ScanFilter %s selects some (%d)" % (op, a["Count"]))
    err(lambda: ddb.scan(TableName="legacy", ScanFilter={"n": {"ComparisonOperator": "BETWEEN",
                                                               "AttributeValueList": [N(1)]}}),
        "ValidationException", "BETWEEN with one value", "Invalid number of argument(s) for the BETWEEN")
    err(lambda: ddb.scan(TableName="legacy", ScanFilter={"n": {"ComparisonOperator": "LT",
                                                               "AttributeValueList": [{"SS": ["a"]}]}}),
        "ValidationException", "LT on a set", "ComparisonOperator LT is not valid for SS")
    err(lambda: ddb.scan(TableName="legacy", ConditionalOperator="OR",
                         ScanFilter={"n": {"ComparisonOperator": "NOT_NULL"}}),
        "ValidationException", "ConditionalOperator over one condition", "two or more elements")
    err(lambda: ddb.scan(TableName="legacy", ScanFilter={"n": {"ComparisonOperator": "NOT_NULL"}},
                         FilterExpression="attribute_exists(n)"),
        "ValidationException", "ScanFilter with FilterExpression", "Non-expression parameters: {ScanFilter}")

    # ---- Expected in PutItem / DeleteItem ----
    k = {"pk": S("x"), "sk": N(1)}
    ddb.put_item(TableName="legacy", Item=dict(k, v=N(1)), Expected={"pk": {"Exists": False}})
    err(lambda: ddb.put_item(TableName="legacy", Item=dict(k, v=N(2)), Expected={"pk": {"Exists": False}}),
        "ConditionalCheckFailedException", "Expected Exists false on an existing item")
    ddb.put_item(TableName="legacy", Item=dict(k, v=N(2)), Expected={"v": {"Value": N(1)}})
    ddb.put_item(TableName="legacy", Item=dict(k, v=N(3)), Expected={"v": {"Exists": True, "Value": N(2)}})
    err(lambda: ddb.put_item(TableName="legacy", Item=dict(k, v=N(4)), Expected={"v": {"Exists": True}}),
        "ValidationException", "Exists true without a Value", "Value must be provided")
    err(lambda: ddb.put_item(TableName="legacy", Item=dict(k, v=N(4)),
                             Expected={"v": {"Exists": False, "Value": N(3)}}),
        "ValidationException", "Exists false with a Value", "Value cannot be used")
    # OR: the first fails, the second holds
    ddb.put_item(TableName="legacy", Item=dict(k, v=N(4)), ConditionalOperator="OR",
                 Expected={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [N(99)]},
                           "pk": {"ComparisonOperator": "NOT_NULL"}})
    err(lambda: ddb.put_item(TableName="legacy", Item=dict(k, v=N(5)),
                             Expected={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [N(99)]},
                                       "pk": {"ComparisonOperator": "NOT_NULL"}}),
        "ConditionalCheckFailedException", "Expected with AND (the default)")
    h.eq(ddb.get_item(TableName="legacy", Key=k)["Item"]["v"], N(4), "only the passing puts applied")
    err(lambda: ddb.delete_item(TableName="legacy", Key=k,
                                Expected={"v": {"ComparisonOperator": "LT", "AttributeValueList": [N(4)]}}),
        "ConditionalCheckFailedException", "DeleteItem Expected LT")
    r = ddb.delete_item(TableName="legacy", Key=k, ReturnValues="ALL_OLD",
                        Expected={"v": {"ComparisonOperator": "LE", "AttributeValueList": [N(4)]}})
    h.eq(r["Attributes"]["v"], N(4), "DeleteItem Expected LE deletes")

    # ---- AttributeUpdates ----
    k = {"pk": S("u"), "sk": N(1)}
    ddb.put_item(TableName="legacy", Item=dict(k, n=N(1), ss={"SS": ["a", "b", "c"]}, gone=S("x"),
                                               l={"L": [N(1)]}))
    r = ddb.update_item(TableName="legacy", Key=k, ReturnValues="ALL_NEW",
                        Expected={"n": {"ComparisonOperator": "EQ", "AttributeValueList": [N(1)]}},
                        AttributeUpdates={"n": {"Action": "ADD", "Value": N(5)},
                                          "ss": {"Action": "DELETE", "Value": {"SS": ["a", "z"]}},
                                          "gone": {"Action": "DELETE"},
                                          "new": {"Value": S("put by default")},
                                          "l": {"Action": "ADD", "Value": {"L": [N(2)]}},
                                          "nl": {"Action": "ADD", "Value": {"L": [S("first")]}},
                                          "ns": {"Action": "ADD", "Value": {"NS": ["7"]}}})
    want = dict(k, n=N(6), ss={"SS": ["b", "c"]}, new=S("put by default"), l={"L": [N(1), N(2)]},
                nl={"L": [S("first")]}, ns={"NS": ["7"]})
    h.eq(r["Attributes"], want, "AttributeUpdates PUT, ADD (number, list, new list, set), DELETE")
    err(lambda: ddb.update_item(TableName="legacy", Key=k, AttributeUpdates={"n": {"Action": "PUT"}}),
        "ValidationException", "PUT without a Value", "Only DELETE action is allowed")
    err(lambda: ddb.update_item(TableName="legacy", Key=k, AttributeUpdates={"n": {"Value": N(1)}},
                                UpdateExpression="SET n = :v", ExpressionAttributeValues={":v": N(1)}),
        "ValidationException", "AttributeUpdates with UpdateExpression", "Can not use both")
    err(lambda: ddb.update_item(TableName="legacy", Key=k, AttributeUpdates={"pk": {"Value": S("no")}}),
        "ValidationException", "AttributeUpdates on a key attribute")
    err(lambda: ddb.update_item(TableName="legacy", Key=k, AttributeUpdates={"n": {"Value": N(1)}},
                                Expected={"n": {"Value": N(99)}}),
        "ConditionalCheckFailedException", "UpdateItem Expected fails")
    r = ddb.update_item(TableName="legacy", Key={"pk": S("u"), "sk": N(2)}, ReturnValues="ALL_NEW",
                        AttributeUpdates={})
    h.eq(r["Attributes"], {"pk": S("u"), "sk": N(2)}, "empty AttributeUpdates creates the item")

    # ---- not in a transaction ----
    # (boto3 itself refuses the member here, so the request goes raw)
    st, body = raw_call(srv.port, "DynamoDB_20120810.TransactWriteItems", {"TransactItems": [{"Put": {
        "TableName": "legacy", "Item": {"pk": S("t"), "sk": N(1)}, "Expected": {"pk": {"Exists": False}}}}]})
    h.eq((st, body.get("__type", "").split("#")[-1]), (400, "ValidationException"), "Expected in a transaction")
    h.check("Item" not in ddb.get_item(TableName="legacy", Key={"pk": S("t"), "sk": N(1)}),
            "the refused transaction wrote nothing")
finally:
    srv.stop()
h.done()
