"""The DynamoDB API driven by boto3 (the real AWS SDK for Python) against
`tributary serve` on loopback: tables, items with every ReturnValues,
conditions, Query/Scan paging through boto3's paginators, parallel scan,
batches, transactions, errors as boto3 raises them, and data surviving a
restart."""
import decimal
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server, raw_call  # noqa: E402

h = Harness("api_boto3")
srv = Server().start()


def client():
    return boto3.client(
        "dynamodb", endpoint_url=srv.url, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
        config=botocore.config.Config(retries={"max_attempts": 1}))


ddb = client()
E = ddb.exceptions

try:
    # ---- tables ----
    r = ddb.create_table(
        TableName="orders",
        AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                              {"AttributeName": "order", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
                   {"AttributeName": "order", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST")
    d = r["TableDescription"]
    h.eq(d["TableStatus"], "ACTIVE", "create status")
    h.eq(d["TableArn"], "arn:aws:dynamodb:us-east-1:000000000000:table/orders", "arn")
    h.check(len(d["TableId"]) == 36, "TableId is a UUID")
    ddb.get_waiter("table_exists").wait(TableName="orders")
    h.raises(lambda: ddb.create_table(
        TableName="orders",
        AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST"), "ResourceInUseException", "create twice")
    h.raises(lambda: ddb.describe_table(TableName="nosuch"), "ResourceNotFoundException",
             "describe missing")
    h.raises(lambda: ddb.create_table(
        TableName="bad", AttributeDefinitions=[{"AttributeName": "a", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "a", "KeyType": "HASH"}]), "ValidationException",
        "provisioned without throughput")
    ddb.create_table(
        TableName="prov", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    d = ddb.describe_table(TableName="prov")["Table"]
    h.eq(d["ProvisionedThroughput"]["WriteCapacityUnits"], 7, "throughput stored")
    h.eq(d["BillingModeSummary"]["BillingMode"], "PROVISIONED", "billing mode")
    d = ddb.update_table(TableName="prov", BillingMode="PAY_PER_REQUEST")["TableDescription"]
    h.eq(d["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST", "update billing")
    d = ddb.update_table(TableName="prov", StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})["TableDescription"]
    h.check("LatestStreamArn" in d and d["LatestStreamArn"].startswith(
        "arn:aws:dynamodb:us-east-1:000000000000:table/prov/stream/"), "stream arn")
    h.raises(lambda: ddb.update_table(TableName="prov", StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}), "ValidationException",
        "stream enabled twice")
    ddb.update_time_to_live(TableName="prov", TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})
    t = ddb.describe_time_to_live(TableName="prov")["TimeToLiveDescription"]
    h.eq(t, {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}, "ttl")
    names = []
    for page in ddb.get_paginator("list_tables").paginate(PaginationConfig={"PageSize": 1}):
        names += page["TableNames"]
    h.eq(names, ["orders", "prov"], "list tables paged")
    arn = ddb.describe_table(TableName="prov")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "data"}])
    h.eq(ddb.list_tags_of_resource(ResourceArn=arn)["Tags"], [{"Key": "team", "Value": "data"}],
         "tags")
    ddb.delete_table(TableName="prov")
    h.raises(lambda: ddb.describe_table(TableName="prov"), "ResourceNotFoundException",
             "deleted")

    # ---- items ----
    item = {"customer": {"S": "ann"}, "order": {"N": "1"}, "total": {"N": "19.90"},
            "tags": {"SS": ["gift", "express"]}, "doc": {"M": {"a": {"L": [{"N": "1"}, {"BOOL": True}]}}},
            "blob": {"B": b"\x00\x01\x02"}, "nothing": {"NULL": True}}
    r = ddb.put_item(TableName="orders", Item=item, ReturnConsumedCapacity="TOTAL")
    h.eq(r["ConsumedCapacity"]["CapacityUnits"], 1.0, "put capacity")
    got = ddb.get_item(TableName="orders", Key={"customer": {"S": "ann"}, "order": {"N": "1"}},
                       ConsistentRead=True)["Item"]
    h.eq(got["total"], {"N": "19.9"}, "number normalised")
    h.eq(sorted(got["tags"]["SS"]), ["express", "gift"], "string set")
    h.eq(got["blob"], {"B": b"\x00\x01\x02"}, "binary")
    h.eq(got["doc"], item["doc"], "nested document")
    h.eq(ddb.get_item(TableName="orders", Key={"customer": {"S": "nobody"}, "order": {"N": "1"}}).get("Item"),
         None, "missing item: no Item member")
    r = ddb.get_item(TableName="orders", Key={"customer": {"S": "ann"}, "order": {"N": "1"}},
                     ProjectionExpression="#t, doc.a[1]", ExpressionAttributeNames={"#t": "total"})
    h.eq(r["Item"], {"total": {"N": "19.9"}, "doc": {"M": {"a": {"L": [{"BOOL": True}]}}}},
         "projection")
    # Repeated reads come from the item cache, and a write replaces what it holds.
    ann = {"customer": {"S": "ann"}, "order": {"N": "1"}}
    m0 = srv.metrics()
    for _ in range(5):
        ddb.get_item(TableName="orders", Key=ann)
    m1 = srv.metrics()
    h.check(m1["tributary_item_cache_hits_total"] >= m0["tributary_item_cache_hits_total"] + 4,
            "repeated GetItems are answered by the item cache (/metrics)")
    h.check(m1["tributary_item_cache_bytes"] > 0, "the item cache holds bytes (/metrics)")
    ddb.put_item(TableName="orders", Item=dict(item, total={"N": "21"}))
    h.eq(ddb.get_item(TableName="orders", Key=ann, ConsistentRead=True)["Item"]["total"],
         {"N": "21"}, "a write replaces the cached item")
    ddb.put_item(TableName="orders", Item=item)
    h.eq(ddb.get_item(TableName="orders", Key=ann)["Item"]["total"], {"N": "19.9"},
         "and the next write replaces it again")
    big = {"customer": {"S": "big"}, "order": {"N": "1"}, "n": {"N": "1" + "0" * 100}}
    ddb.put_item(TableName="orders", Item={"customer": {"S": "big"}, "order": {"N": "1"},
                                           "n": {"N": "1e100"}})
    h.eq(ddb.get_item(TableName="orders", Key={"customer": {"S": "big"}, "order": {"N": "1"}})["Item"],
         big, "1e100 comes back without exponent")

    # ReturnValues
    r = ddb.put_item(TableName="orders", Item={"customer": {"S": "ann"}, "order": {"N": "1"},
                                                "total": {"N": "5"}}, ReturnValues="ALL_OLD")
    h.eq(r["Attributes"]["total"], {"N": "19.9"}, "put ALL_OLD")
    h.raises(lambda: ddb.put_item(TableName="orders", Item=item, ReturnValues="ALL_NEW"),
             "ValidationException", "put ALL_NEW invalid")
    key = {"customer": {"S": "ann"}, "order": {"N": "1"}}
    r = ddb.update_item(TableName="orders", Key=key, UpdateExpression="SET #t = #t + :d, st = :s",
                        ExpressionAttributeNames={"#t": "total"},
                        ExpressionAttributeValues={":d": {"N": "2.5"}, ":s": {"S": "paid"}},
                        ReturnValues="UPDATED_NEW")
    h.eq(r["Attributes"], {"total": {"N": "7.5"}, "st": {"S": "paid"}}, "update UPDATED_NEW")
    r = ddb.update_item(TableName="orders", Key=key, UpdateExpression="REMOVE st ADD cnt :one",
                        ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_OLD")
    h.eq(r["Attributes"], {"st": {"S": "paid"}}, "update UPDATED_OLD")
    r = ddb.update_item(TableName="orders", Key=key, UpdateExpression="ADD cnt :one",
                        ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
    h.eq(r["Attributes"]["cnt"], {"N": "2"}, "update ALL_NEW")
    r = ddb.update_item(TableName="orders", Key=key, UpdateExpression="SET cnt = :z",
                        ExpressionAttributeValues={":z": {"N": "0"}}, ReturnValues="ALL_OLD")
    h.eq(r["Attributes"]["cnt"], {"N": "2"}, "update ALL_OLD")
    h.raises(lambda: ddb.update_item(TableName="orders", Key=key, UpdateExpression="SET customer = :z",
                                     ExpressionAttributeValues={":z": {"S": "x"}}),
             "ValidationException", "update of a key attribute")
    r = ddb.delete_item(TableName="orders", Key=key, ReturnValues="ALL_OLD")
    h.eq(r["Attributes"]["cnt"], {"N": "0"}, "delete ALL_OLD")
    h.eq(ddb.delete_item(TableName="orders", Key=key, ReturnValues="ALL_OLD").get("Attributes"),
         None, "delete of a missing item")

    # conditions
    ddb.put_item(TableName="orders", Item={"customer": {"S": "c"}, "order": {"N": "1"}, "v": {"N": "1"}},
                 ConditionExpression="attribute_not_exists(customer)")
    try:
        ddb.put_item(TableName="orders", Item={"customer": {"S": "c"}, "order": {"N": "1"}},
                     ConditionExpression="attribute_not_exists(customer)")
        h.check(False, "conditional put should fail")
    except E.ConditionalCheckFailedException as e:
        h.eq(e.response["Error"]["Message"], "The conditional request failed", "ccf message")
    # ReturnValuesOnConditionCheckFailure on PutItem is newer than Debian's botocore: raw.
    st_, body = raw_call(srv.port, "DynamoDB_20120810.PutItem", {
        "TableName": "orders", "Item": {"customer": {"S": "c"}, "order": {"N": "1"}},
        "ConditionExpression": "attribute_not_exists(customer)", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"})
    h.eq((st_, body.get("__type", "").split("#")[-1]), (400, "ConditionalCheckFailedException"), "ccf raw")
    h.eq(body.get("Item", {}).get("v"), {"N": "1"}, "ccf returns the item")
    h.raises(lambda: ddb.delete_item(TableName="orders", Key={"customer": {"S": "c"}, "order": {"N": "1"}},
                                     ConditionExpression="v > :x", ExpressionAttributeValues={":x": {"N": "5"}}),
             "ConditionalCheckFailedException", "conditional delete")
    ddb.delete_item(TableName="orders", Key={"customer": {"S": "c"}, "order": {"N": "1"}},
                    ConditionExpression="v BETWEEN :a AND :b",
                    ExpressionAttributeValues={":a": {"N": "0"}, ":b": {"N": "1"}})
    h.raises(lambda: ddb.put_item(TableName="orders", Item={"customer": {"S": "c"}, "order": {"N": "1"}},
                                  ConditionExpression="name = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
             "ValidationException", "reserved word")
    h.raises(lambda: ddb.put_item(TableName="orders", Item={"customer": {"S": "c"}, "order": {"N": "1"}},
                                  ExpressionAttributeValues={":v": {"S": "x"}}),
             "ValidationException", "unused value")

    # ---- Query and Scan paging ----
    with_items = []
    for i in range(120):
        with_items.append({"PutRequest": {"Item": {"customer": {"S": "q"}, "order": {"N": str(i)},
                                                   "pad": {"S": "x" * 100}, "odd": {"BOOL": i % 2 == 1}}}})
    for i in range(0, 120, 25):
        r = ddb.batch_write_item(RequestItems={"orders": with_items[i:i + 25]})
        h.eq(r["UnprocessedItems"], {}, "batch write unprocessed is {}")
    seen = []
    for page in ddb.get_paginator("query").paginate(
            TableName="orders", KeyConditionExpression="customer = :c",
            ExpressionAttributeValues={":c": {"S": "q"}}, PaginationConfig={"PageSize": 7}):
        seen += [int(it["order"]["N"]) for it in page["Items"]]
    h.eq(seen, list(range(120)), "query paginator returns every item once in order")
    seen = []
    for page in ddb.get_paginator("query").paginate(
            TableName="orders", KeyConditionExpression="customer = :c AND #o BETWEEN :a AND :b",
            FilterExpression="odd = :t", ExpressionAttributeNames={"#o": "order"},
            ExpressionAttributeValues={":c": {"S": "q"}, ":a": {"N": "10"}, ":b": {"N": "30"},
                                       ":t": {"BOOL": True}},
            ScanIndexForward=False, PaginationConfig={"PageSize": 4}):
        seen += [int(it["order"]["N"]) for it in page["Items"]]
    h.eq(seen, list(range(29, 9, -2)), "query backward with filter")
    r = ddb.query(TableName="orders", KeyConditionExpression="customer = :c",
                  ExpressionAttributeValues={":c": {"S": "q"}}, Select="COUNT")
    h.eq((r["Count"], "Items" in r), (120, False), "query COUNT")
    h.raises(lambda: ddb.query(TableName="orders", KeyConditionExpression="customer = :c",
                               FilterExpression="customer = :c",
                               ExpressionAttributeValues={":c": {"S": "q"}}),
             "ValidationException", "filter on a key attribute")
    total = 0
    for seg in range(4):
        for page in ddb.get_paginator("scan").paginate(TableName="orders", Segment=seg, TotalSegments=4,
                                                       PaginationConfig={"PageSize": 9}):
            total += len(page["Items"])
    count_all = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName="orders"))
    h.eq(total, count_all, "parallel scan covers every item once")
    h.check(count_all >= 121, "scan sees the items")

    # ---- batches ----
    keys = [{"customer": {"S": "q"}, "order": {"N": str(i)}} for i in range(0, 100)]
    r = ddb.batch_get_item(RequestItems={"orders": {"Keys": keys, "ProjectionExpression": "#o",
                                                    "ExpressionAttributeNames": {"#o": "order"}}})
    h.eq(len(r["Responses"]["orders"]), 100, "batch get 100")
    h.eq(r["UnprocessedKeys"], {}, "batch get unprocessed is {}")
    h.raises(lambda: ddb.batch_get_item(RequestItems={"orders": {"Keys": keys[:2] + keys[:1]}}),
             "ValidationException", "batch get duplicates")
    # the 16 MB response cap: 50 items of ~390 KB (19.5 MB) -> the first 41 (16,000,000 bytes of
    # item size) in Responses, the other keys in UnprocessedKeys with the request's other members
    big = "b" * 390000
    for i in range(50):
        ddb.put_item(TableName="orders", Item={"customer": {"S": "cap16"}, "order": {"N": str(i)},
                                              "pad": {"S": big}})
    bkeys = [{"customer": {"S": "cap16"}, "order": {"N": str(i)}} for i in range(50)]
    got, rounds, req = [], 0, {"orders": {"Keys": bkeys, "ConsistentRead": True}}
    while req and rounds < 5:
        r = ddb.batch_get_item(RequestItems=req)
        got += [int(it["order"]["N"]) for it in r["Responses"].get("orders", [])]
        if rounds == 0:
            h.eq(len(r["Responses"]["orders"]), 41, "batch get stops at 16 MB")
            h.eq(r["UnprocessedKeys"].get("orders", {}).get("ConsistentRead"), True,
                 "unprocessed keys keep the request's members")
            h.eq(len(r["UnprocessedKeys"].get("orders", {}).get("Keys", [])), 9, "the rest unprocessed")
        req = r["UnprocessedKeys"]
        rounds += 1
    h.eq(sorted(got), list(range(50)), "asking again for the unprocessed keys gets every item once")
    for k in bkeys:
        ddb.delete_item(TableName="orders", Key=k)
    h.raises(lambda: ddb.batch_write_item(RequestItems={"orders": [
        {"PutRequest": {"Item": {"customer": {"S": "z"}, "order": {"N": "1"}}}},
        {"DeleteRequest": {"Key": {"customer": {"S": "z"}, "order": {"N": "1"}}}}]}),
        "ValidationException", "batch write duplicates")
    h.raises(lambda: ddb.batch_write_item(RequestItems={"orders": [
        {"PutRequest": {"Item": {"customer": {"S": "z"}, "order": {"N": "1"}}}},
        {"PutRequest": {"Item": {"customer": {"N": "1"}, "order": {"N": "2"}}}}]}),
        "ValidationException", "batch write with one bad key")
    h.eq(ddb.get_item(TableName="orders", Key={"customer": {"S": "z"}, "order": {"N": "1"}}).get("Item"),
         None, "rejected batch wrote nothing")

    # ---- transactions ----
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "orders", "Item": {"customer": {"S": "t"}, "order": {"N": "1"}, "v": {"N": "1"}}}},
        {"Put": {"TableName": "orders", "Item": {"customer": {"S": "t"}, "order": {"N": "2"}, "v": {"N": "2"}}}},
    ])
    try:
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "orders", "Key": {"customer": {"S": "t"}, "order": {"N": "1"}},
                        "UpdateExpression": "SET v = :n", "ExpressionAttributeValues": {":n": {"N": "10"}}}},
            {"ConditionCheck": {"TableName": "orders", "Key": {"customer": {"S": "t"}, "order": {"N": "2"}},
                                "ConditionExpression": "v = :x", "ExpressionAttributeValues": {":x": {"N": "99"}},
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        ])
        h.check(False, "cancelled transaction should fail")
    except E.TransactionCanceledException as e:
        reasons = e.response["CancellationReasons"]
        h.eq([x["Code"] for x in reasons], ["None", "ConditionalCheckFailed"], "cancellation reasons")
        h.eq(reasons[1].get("Item", {}).get("v"), {"N": "2"}, "reason carries the item")
        h.check("[None, ConditionalCheckFailed]" in e.response["Error"]["Message"], "cancel message")
    r = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": "orders", "Key": {"customer": {"S": "t"}, "order": {"N": "1"}}}},
        {"Get": {"TableName": "orders", "Key": {"customer": {"S": "t"}, "order": {"N": "3"}}}},
    ])
    h.eq(r["Responses"][0]["Item"]["v"], {"N": "1"}, "transaction was not applied")
    h.eq(r["Responses"][1], {}, "missing item in TransactGetItems")

    # a transaction's data is capped at 4 MB: eleven 390 KB puts are refused whole
    big = "x" * 390000
    h.raises(lambda: ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx4mb"}, "order": {"N": str(i)},
                                                 "pad": {"S": big}}}} for i in range(11)]),
        "ValidationException", "transaction over 4 MB")
    h.eq(ddb.get_item(TableName="orders", Key={"customer": {"S": "tx4mb"}, "order": {"N": "0"}}).get("Item"),
         None, "the refused transaction wrote nothing")

    # ---- throttling in provisioned mode: 1 WCU with 300 s of burst ----
    ddb.create_table(
        TableName="slow", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    throttled_at = None
    for i in range(400):
        try:
            ddb.put_item(TableName="slow", Item={"id": {"S": str(i)}})
        except E.ProvisionedThroughputExceededException:
            throttled_at = i
            break
    h.check(throttled_at is not None and 290 <= throttled_at <= 310,
            "1 WCU throttles after the ~300 s burst allowance (at %r)" % throttled_at)
    h.eq(raw_call(srv.port, "DynamoDB_20120810.PutItem", {"TableName": "slow", "Item": {"id": {"S": "x"}}})[1].get("ThrottlingReasons"),
         [{"reason": "TableWriteProvisionedThroughputExceeded",
           "resource": ddb.describe_table(TableName="slow")["Table"]["TableArn"]}],
         "ThrottlingReasons name the table's ARN")
    # batches and transactions use and respect the same buckets: with "slow"
    # throttled, BatchWriteItem leaves its requests unprocessed (on-demand
    # "fast" beside it goes ahead), and throws when every table is throttled
    ddb.create_table(TableName="fast", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    r = ddb.batch_write_item(RequestItems={
        "slow": [{"PutRequest": {"Item": {"id": {"S": "b%d" % i}}}} for i in range(3)],
        "fast": [{"PutRequest": {"Item": {"id": {"S": "b%d" % i}}}} for i in range(2)]})
    h.eq(sorted(x["PutRequest"]["Item"]["id"]["S"] for x in r["UnprocessedItems"].get("slow", [])),
         ["b0", "b1", "b2"], "the throttled table's puts are unprocessed")
    h.check("fast" not in r["UnprocessedItems"], "the other table's puts went ahead")
    h.eq(len(ddb.scan(TableName="fast")["Items"]), 2, "... and are there")
    h.check("Item" not in ddb.get_item(TableName="slow", Key={"id": {"S": "b0"}}), "the unprocessed put was not written")
    h.raises(lambda: ddb.batch_write_item(RequestItems={"slow": [{"PutRequest": {"Item": {"id": {"S": "b9"}}}}]}),
             "ProvisionedThroughputExceededException", "BatchWriteItem on throttled tables only")
    h.raises(lambda: ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "fast", "Item": {"id": {"S": "t1"}}}},
        {"Put": {"TableName": "slow", "Item": {"id": {"S": "t1"}}}}]),
        "ProvisionedThroughputExceededException", "TransactWriteItems with a throttled table")
    h.check("Item" not in ddb.get_item(TableName="fast", Key={"id": {"S": "t1"}}),
            "the throttled transaction wrote nothing, not even on the other table")
    # reads: 1 RCU; BatchGetItem of 100 x 4 KB items, consistent (1 RCU
    # each), three times, uses the 300 s burst, then keys come back unread
    ddb.create_table(
        TableName="slowread", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000})
    for k in range(4):
        ddb.batch_write_item(RequestItems={"slowread": [
            {"PutRequest": {"Item": {"id": {"S": "r%d" % (25 * k + i)}, "pad": {"S": "p" * 4000}}}} for i in range(25)]})
    keys = [{"id": {"S": "r%d" % i}} for i in range(100)]
    got, batches = 0, 0
    for _ in range(8):
        try:
            r = ddb.batch_get_item(RequestItems={"slowread": {"Keys": keys, "ConsistentRead": True}})
        except E.ProvisionedThroughputExceededException:
            break
        batches += 1
        got += len(r["Responses"].get("slowread", []))
    # the bucket holds 300 s of 1 RCU: three batches of 100 RCU, a fourth
    # while a second or two of refill keeps it positive, then the exception
    h.check(batches in (3, 4) and got == 100 * batches,
            "BatchGetItem is throttled once the burst is used (%d batches, %d items)" % (batches, got))
    r = ddb.batch_get_item(RequestItems={"slowread": {"Keys": keys[:2]}, "fast": {"Keys": [{"id": {"S": "b0"}}]}})
    h.eq((len(r["UnprocessedKeys"].get("slowread", {}).get("Keys", [])), len(r["Responses"].get("fast", []))),
         (2, 1), "BatchGetItem: the throttled table's keys unprocessed, the other table's read")
    h.raises(lambda: ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "slowread", "Key": keys[0]}}]),
             "ProvisionedThroughputExceededException", "TransactGetItems on a throttled table")
    ddb.delete_table(TableName="fast")
    ddb.delete_table(TableName="slowread")
    ddb.update_table(TableName="slow", BillingMode="PAY_PER_REQUEST")
    # a throughput change is dated, a decrease counted; the same values again are refused
    ddb.create_table(
        TableName="prov", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 2, "WriteCapacityUnits": 2})
    h.raises(lambda: ddb.update_table(TableName="prov", ProvisionedThroughput={
        "ReadCapacityUnits": 2, "WriteCapacityUnits": 2}), "ValidationException",
        "the same throughput again")
    pt = ddb.update_table(TableName="prov", ProvisionedThroughput={
        "ReadCapacityUnits": 3, "WriteCapacityUnits": 2})["TableDescription"]["ProvisionedThroughput"]
    h.check("LastIncreaseDateTime" in pt and "LastDecreaseDateTime" not in pt, "increase dated: %r" % pt)
    ddb.update_table(TableName="prov", ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 1})
    pt = ddb.describe_table(TableName="prov")["Table"]["ProvisionedThroughput"]
    h.eq((pt["ReadCapacityUnits"], pt["WriteCapacityUnits"], pt["NumberOfDecreasesToday"],
          "LastDecreaseDateTime" in pt), (3, 1, 1, True), "decrease dated and counted")
    # DescribeLimits' table maximum: 40000 units; above it LimitExceededException
    mk = dict(AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    h.raises(lambda: ddb.create_table(TableName="huge", ProvisionedThroughput={
        "ReadCapacityUnits": 40001, "WriteCapacityUnits": 1}, **mk), "LimitExceededException", "CreateTable with 40001 RCU")
    h.raises(lambda: ddb.create_table(TableName="huge", ProvisionedThroughput={
        "ReadCapacityUnits": 1, "WriteCapacityUnits": 2 ** 63 - 1}, **mk), "LimitExceededException", "CreateTable with 2^63-1 WCU")
    h.check("huge" not in ddb.list_tables()["TableNames"], "the refused table was not made")
    h.raises(lambda: ddb.update_table(TableName="prov", ProvisionedThroughput={
        "ReadCapacityUnits": 40001, "WriteCapacityUnits": 1}), "LimitExceededException", "UpdateTable to 40001 RCU")
    h.eq(ddb.describe_table(TableName="prov")["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"], 3,
         "the refused update changed nothing")
    ddb.update_table(TableName="prov", ProvisionedThroughput={"ReadCapacityUnits": 40000, "WriteCapacityUnits": 1})
    h.eq(ddb.describe_limits()["TableMaxReadCapacityUnits"], 40000, "DescribeLimits says the same maximum")
    ddb.delete_table(TableName="prov")
    ddb.put_item(TableName="slow", Item={"id": {"S": "after"}})
    h.check(True, "on-demand after the switch is not throttled")

    # ---- the resource layer and Decimal numbers ----
    res = boto3.resource("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                         aws_access_key_id="local", aws_secret_access_key="local")
    tbl = res.Table("orders")
    tbl.put_item(Item={"customer": "res", "order": 1, "price": decimal.Decimal("12345678901234567890.123456789")})
    got = tbl.get_item(Key={"customer": "res", "order": 1})["Item"]
    h.eq(got["price"], decimal.Decimal("12345678901234567890.123456789"), "exact decimal through boto3")

    # ---- restart: everything acknowledged is still there ----
    count_before = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName="orders"))
    h.eq(count_before, count_all + 3, "two transaction puts and one resource put added")
    h.eq(srv.stop(), 0, "clean stop on SIGTERM")
    srv.start()
    ddb = client()
    got = ddb.get_item(TableName="orders", Key={"customer": {"S": "t"}, "order": {"N": "2"}}).get("Item")
    h.eq(got and got["v"], {"N": "2"}, "item after restart")
    h.eq(ddb.describe_table(TableName="orders")["Table"]["ItemCount"], count_before,
         "item count after restart")
    h.eq(ddb.list_tables()["TableNames"], ["orders", "slow"], "tables after restart")
except Exception as ex:  # a crash of the test itself is a failure, with its trace
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
sys.exit(h.done())
