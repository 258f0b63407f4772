"""What black-box conformance probes found differing from DynamoDB, checked
with boto3 against `tributary serve`:
- ReturnItemCollectionMetrics SIZE on a table with a local secondary index:
  ItemCollectionMetrics {ItemCollectionKey, SizeEstimateRangeGB [0.0, 1.0]}
  from PutItem, UpdateItem, DeleteItem, and per table (once per collection)
  from BatchWriteItem and TransactWriteItems; nothing for a table without an
  LSI; a value other than SIZE / NONE is a ValidationException;
- a Query's ExclusiveStartKey outside the sort-key condition: "The provided
  starting key does not match the range key predicate"; a malformed one on
  the table: "The provided starting key is invalid: ...";
- ExpressionAttributeNames with an empty name, names or values without any
  expression, and more than 2 MB of values: ValidationException with
  DynamoDB's messages, nothing written;
- tags: keys of 1..128 characters, values up to 256, no aws: prefix, at
  most 50 (CreateTable's Tags too), no empty lists; ListTables'
  ExclusiveStartTableName of 3..255; DescribeContinuousBackups answers
  (PITR DISABLED) and names a missing table TableNotFoundException;
- an update of an absent item that only takes away (REMOVE, DELETE from a
  set; UpdateExpression, AttributeUpdates or a transaction's Update) makes
  no item and returns no Attributes; a SET or ADD makes it;
- size() of an N, BOOL or NULL attribute fails the condition
  (ConditionalCheckFailedException) or filters the item out, it is not a
  ValidationException;
- ExpressionAttributeValues that cannot be parsed: "ExpressionAttributeValues
  contains invalid value: <why> for key :v"; an update past 400 KB: "Item
  size to update has exceeded the maximum allowed size"; size() in an
  update and if_not_exists() in a condition: "The function is not allowed
  in an update / a condition expression; function: ..."; an item operation
  on a missing table: "Requested resource not found" (DescribeTable's
  answer names the table)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server, raw_call  # noqa: E402

h = Harness("api_conformance")
srv = Server().start()
ddb = boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                   aws_access_key_id="local", aws_secret_access_key="local",
                   config=botocore.config.Config(retries={"max_attempts": 1}))
# the same without botocore's own checks, so the server's are what answers
raw = boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                   aws_access_key_id="local", aws_secret_access_key="local",
                   config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))


def err(fn):
    """(code, message) of the ClientError fn raises, or (None, None)."""
    try:
        fn()
    except ddb.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    return None, None


try:
    ddb.create_table(TableName="coll", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"},
                                           {"AttributeName": "l", "AttributeType": "N"}],
                     LocalSecondaryIndexes=[{"IndexName": "by_l",
                                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                           {"AttributeName": "l", "KeyType": "RANGE"}],
                                             "Projection": {"ProjectionType": "ALL"}}])
    ddb.create_table(TableName="plain", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    WANT = {"ItemCollectionKey": {"pk": {"S": "a"}}, "SizeEstimateRangeGB": [0.0, 1.0]}

    r = ddb.put_item(TableName="coll", Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "l": {"N": "5"}},
                     ReturnItemCollectionMetrics="SIZE")
    h.eq(r.get("ItemCollectionMetrics"), WANT, "PutItem ItemCollectionMetrics")
    r = ddb.put_item(TableName="coll", Item={"pk": {"S": "a"}, "sk": {"N": "2"}},
                     ReturnItemCollectionMetrics="NONE")
    h.check("ItemCollectionMetrics" not in r, "NONE: no metrics")
    r = ddb.update_item(TableName="coll", Key={"pk": {"S": "a"}, "sk": {"N": "2"}},
                        UpdateExpression="SET l = :l", ExpressionAttributeValues={":l": {"N": "7"}},
                        ReturnItemCollectionMetrics="SIZE")
    h.eq(r.get("ItemCollectionMetrics"), WANT, "UpdateItem ItemCollectionMetrics")
    r = ddb.delete_item(TableName="coll", Key={"pk": {"S": "a"}, "sk": {"N": "2"}},
                        ReturnItemCollectionMetrics="SIZE")
    h.eq(r.get("ItemCollectionMetrics"), WANT, "DeleteItem ItemCollectionMetrics")
    r = ddb.put_item(TableName="plain", Item={"pk": {"S": "a"}}, ReturnItemCollectionMetrics="SIZE")
    h.check("ItemCollectionMetrics" not in r, "a table without an LSI: no metrics")
    r = ddb.batch_write_item(RequestItems={
        "coll": [{"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"N": str(i)}}}} for i in range(3, 6)]
        + [{"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"N": "1"}}}}],
        "plain": [{"PutRequest": {"Item": {"pk": {"S": "z"}}}}]}, ReturnItemCollectionMetrics="SIZE")
    m = r.get("ItemCollectionMetrics", {})
    h.eq(sorted(m), ["coll"], "BatchWriteItem: metrics for the LSI table only")
    h.eq(sorted(x["ItemCollectionKey"]["pk"]["S"] for x in m.get("coll", [])), ["a", "b"],
         "BatchWriteItem: one entry per item collection")
    h.eq(r.get("UnprocessedItems"), {}, "BatchWriteItem UnprocessedItems")
    r = ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "coll", "Item": {"pk": {"S": "c"}, "sk": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": "coll", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                            "ConditionExpression": "attribute_exists(pk)"}},
        {"Put": {"TableName": "plain", "Item": {"pk": {"S": "y"}}}}], ReturnItemCollectionMetrics="SIZE")
    h.eq(r.get("ItemCollectionMetrics"),
         {"coll": [{"ItemCollectionKey": {"pk": {"S": "c"}}, "SizeEstimateRangeGB": [0.0, 1.0]}]},
         "TransactWriteItems ItemCollectionMetrics (writes only, LSI table only)")
    code, msg = err(lambda: ddb.put_item(TableName="coll", Item={"pk": {"S": "q"}, "sk": {"N": "1"}},
                                         ReturnItemCollectionMetrics="SIZES"))
    h.eq(code, "ValidationException", "ReturnItemCollectionMetrics SIZES refused")
    h.check("returnItemCollectionMetrics" in msg and "[SIZE, NONE]" in msg, "its message: %r" % msg)
    h.check("Item" not in ddb.get_item(TableName="coll", Key={"pk": {"S": "q"}, "sk": {"N": "1"}}),
            "the refused put wrote nothing")

    # ExclusiveStartKey against the key condition
    q = dict(TableName="coll", KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
             ExpressionAttributeValues={":p": {"S": "a"}, ":a": {"N": "2"}, ":b": {"N": "5"}})
    code, msg = err(lambda: ddb.query(ExclusiveStartKey={"pk": {"S": "a"}, "sk": {"N": "8"}}, **q))
    h.eq((code, msg), ("ValidationException", "The provided starting key does not match the range key predicate"),
         "ExclusiveStartKey outside BETWEEN")
    r = ddb.query(ExclusiveStartKey={"pk": {"S": "a"}, "sk": {"N": "3"}}, **q)
    h.eq([x["sk"]["N"] for x in r["Items"]], ["4", "5"], "ExclusiveStartKey inside the range")
    for cond, vals, sk in (("sk > :a", {":a": {"N": "3"}}, "2"), ("sk < :a", {":a": {"N": "3"}}, "3"),
                           ("sk = :a", {":a": {"N": "3"}}, "4")):
        vals = dict(vals, **{":p": {"S": "a"}})
        code, _ = err(lambda: ddb.query(TableName="coll", KeyConditionExpression="pk = :p AND " + cond,
                                        ExpressionAttributeValues=vals,
                                        ExclusiveStartKey={"pk": {"S": "a"}, "sk": {"N": sk}}))
        h.eq(code, "ValidationException", "ExclusiveStartKey sk %s against %s" % (sk, cond))
    code, msg = err(lambda: ddb.query(ExclusiveStartKey={"pk": {"S": "a"}, "sk": {"S": "x"}}, **q))
    h.eq(code, "ValidationException", "a malformed ExclusiveStartKey")
    h.check(msg.startswith("The provided starting key is invalid: "), "its message: %r" % msg)
    code, msg = err(lambda: ddb.scan(TableName="coll", ExclusiveStartKey={"pk": {"S": "a"}}))
    h.check(code == "ValidationException" and msg.startswith("The provided starting key is invalid: "),
            "Scan's malformed ExclusiveStartKey: %r %r" % (code, msg))

    # A key attribute name of 0 or of 256 characters: each end of the range named
    for an, want in (("", "greater than or equal to 1"), ("k" * 256, "less than or equal to 255")):
        code, msg = err(lambda: raw.create_table(
            TableName="badkey", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": an, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": an, "AttributeType": "S"}]))
        h.eq((code, msg), ("ValidationException",
                           "1 validation error detected: Value '%s' at 'keySchema.1.member.attributeName' "
                           "failed to satisfy constraint: Member must have length %s" % (an, want)),
             "a key attribute name of %d characters" % len(an))
    # Expression attribute names and values
    code, msg = err(lambda: ddb.scan(TableName="plain", FilterExpression="#e = :v",
                                     ExpressionAttributeNames={"#e": ""},
                                     ExpressionAttributeValues={":v": {"S": "x"}}))
    h.eq((code, msg), ("ValidationException",
                       "ExpressionAttributeNames contains invalid value: Empty attribute name for key #e"),
         "an empty attribute name")
    code, msg = err(lambda: ddb.put_item(TableName="plain", Item={"pk": {"S": "e1"}},
                                         ConditionExpression="attribute_not_exists(#e)",
                                         ExpressionAttributeNames={"#e": ""}))
    h.eq(code, "ValidationException", "an empty attribute name in a condition")
    code, msg = err(lambda: ddb.get_item(TableName="plain", Key={"pk": {"S": "a"}},
                                         ExpressionAttributeNames={"#a": "s"}))
    h.eq((code, msg), ("ValidationException",
                       "ExpressionAttributeNames can only be specified when using expressions"),
         "names without an expression")
    code, msg = err(lambda: ddb.put_item(TableName="plain", Item={"pk": {"S": "e2"}},
                                         ExpressionAttributeValues={":v": {"N": "1"}}))
    h.eq((code, msg), ("ValidationException",
                       "ExpressionAttributeValues can only be specified when using expressions"),
         "values without an expression")
    big = {":%s" % c: {"S": "x" * 750000 + c} for c in "abc"}
    code, msg = err(lambda: ddb.put_item(TableName="plain", Item={"pk": {"S": "e3"}},
                                         ConditionExpression="attribute_not_exists(s) OR s IN (:a, :b, :c)",
                                         ExpressionAttributeValues=big))
    h.check(code == "ValidationException" and "2 MB" in msg, "2.25 MB of values: %r %r" % (code, msg))
    del big[":c"]
    r = ddb.put_item(TableName="plain", Item={"pk": {"S": "e4"}},
                     ConditionExpression="attribute_not_exists(s) OR s IN (:a, :b)", ExpressionAttributeValues=big)
    h.check("Item" in ddb.get_item(TableName="plain", Key={"pk": {"S": "e4"}}), "1.5 MB of values is fine")
    for k in ("e1", "e2", "e3"):
        h.check("Item" not in ddb.get_item(TableName="plain", Key={"pk": {"S": k}}), "refused %s wrote nothing" % k)
    h.check(ddb.describe_table(TableName="plain")["Table"]["TableStatus"] == "ACTIVE", "the server still answers")

    # Tags: DynamoDB's limits on keys and values, the reserved aws: prefix, 50 per table
    arn = ddb.describe_table(TableName="plain")["Table"]["TableArn"]
    for tags, what in (([{"Key": "", "Value": "v"}], "an empty key"),
                       ([{"Key": "k" * 129, "Value": "v"}], "a 129-character key"),
                       ([{"Key": "k", "Value": "v" * 257}], "a 257-character value"),
                       ([{"Key": "aws:x", "Value": "v"}], "an aws: key"),
                       ([], "no tags")):
        code, msg = err(lambda: raw.tag_resource(ResourceArn=arn, Tags=tags))
        h.eq(code, "ValidationException", "TagResource with %s" % what)
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "k" * 128, "Value": "v" * 256}, {"Key": "team", "Value": ""}])
    got = ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]
    h.eq(sorted(t["Key"] for t in got), sorted(["k" * 128, "team"]), "the longest key and value, and an empty value, are fine")
    code, _ = err(lambda: ddb.untag_resource(ResourceArn=arn, TagKeys=["aws:x"]))
    h.eq(code, "ValidationException", "UntagResource of an aws: key")
    code, _ = err(lambda: raw.untag_resource(ResourceArn=arn, TagKeys=[]))
    h.eq(code, "ValidationException", "UntagResource of no keys")
    mk = dict(BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    code, msg = err(lambda: raw.create_table(TableName="tags51", Tags=[{"Key": "k%d" % i, "Value": "v"} for i in range(51)], **mk))
    h.eq((code, msg), ("ValidationException", "The number of tags on a resource exceeds 50"), "CreateTable with 51 tags")
    code, _ = err(lambda: ddb.create_table(TableName="tagsaws", Tags=[{"Key": "aws:foo", "Value": "v"}], **mk))
    h.eq(code, "ValidationException", "CreateTable with an aws: tag")
    h.check("tags51" not in ddb.list_tables()["TableNames"] and "tagsaws" not in ddb.list_tables()["TableNames"],
            "the refused tables were not made")
    ddb.create_table(TableName="tags50", Tags=[{"Key": "k%d" % i, "Value": "v"} for i in range(50)], **mk)
    h.eq(len(ddb.list_tags_of_resource(ResourceArn=ddb.describe_table(TableName="tags50")["Table"]["TableArn"])["Tags"]),
         50, "CreateTable with 50 tags")

    # ListTables' ExclusiveStartTableName is a table name (3..255)
    code, _ = err(lambda: raw.list_tables(ExclusiveStartTableName="ab"))
    h.eq(code, "ValidationException", "ListTables ExclusiveStartTableName of 2 characters")

    # DescribeContinuousBackups (Terraform reads it on every refresh)
    r = ddb.describe_continuous_backups(TableName="plain")["ContinuousBackupsDescription"]
    h.eq((r["ContinuousBackupsStatus"], r["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]),
         ("ENABLED", "DISABLED"), "DescribeContinuousBackups")
    code, _ = err(lambda: ddb.describe_continuous_backups(TableName="nosuch"))
    h.eq(code, "TableNotFoundException", "DescribeContinuousBackups of a missing table")
    # ---- an update that only takes away does not make an absent item ----
    P = {"pk": {"S": "ghost"}}
    r = ddb.update_item(TableName="plain", Key=P, UpdateExpression="REMOVE a, b.c[1]", ReturnValues="ALL_NEW")
    h.check("Attributes" not in r, "REMOVE on an absent item returns no Attributes: %r" % r.get("Attributes"))
    r = ddb.update_item(TableName="plain", Key=P, UpdateExpression="DELETE s :s",
                        ExpressionAttributeValues={":s": {"SS": ["x"]}}, ReturnValues="ALL_NEW")
    h.check("Attributes" not in r, "DELETE on an absent item returns no Attributes")
    ddb.update_item(TableName="plain", Key=P, AttributeUpdates={"a": {"Action": "DELETE"}})
    ddb.transact_write_items(TransactItems=[{"Update": {"TableName": "plain", "Key": P, "UpdateExpression": "REMOVE a"}}])
    h.check("Item" not in ddb.get_item(TableName="plain", Key=P, ConsistentRead=True),
            "REMOVE/DELETE-only updates (expression, AttributeUpdates, transaction) made no item")
    h.eq(ddb.scan(TableName="plain", Select="COUNT", ScanFilter={"pk": {"AttributeValueList": [{"S": "ghost"}], "ComparisonOperator": "EQ"}})["Count"],
         0, "no ghost item in a Scan")
    r = ddb.update_item(TableName="plain", Key=P, UpdateExpression="REMOVE a SET n = :n",
                        ExpressionAttributeValues={":n": {"N": "1"}}, ReturnValues="ALL_NEW")
    h.eq(r.get("Attributes"), {"pk": {"S": "ghost"}, "n": {"N": "1"}}, "REMOVE with SET makes the item")
    ddb.update_item(TableName="plain", Key={"pk": {"S": "ghost2"}})
    h.check("Item" in ddb.get_item(TableName="plain", Key={"pk": {"S": "ghost2"}}, ConsistentRead=True),
            "an update without any action still makes the key-only item")

    # ---- size() of a value without a size: the condition fails ----
    ddb.put_item(TableName="plain", Item={"pk": {"S": "sz"}, "n": {"N": "5"}, "t": {"BOOL": True},
                                           "z": {"NULL": True}, "s": {"S": "hello"}})
    for a in ("n", "t", "z"):
        code, _ = err(lambda: ddb.update_item(TableName="plain", Key={"pk": {"S": "sz"}}, UpdateExpression="SET x = :one",
                                              ConditionExpression="size(%s) = :one" % a,
                                              ExpressionAttributeValues={":one": {"N": "1"}}))
        h.eq(code, "ConditionalCheckFailedException", "size(%s) in a condition" % a)
        got = ddb.scan(TableName="plain", FilterExpression="size(%s) >= :zero" % a,
                       ExpressionAttributeValues={":zero": {"N": "0"}})["Items"]
        h.eq(got, [], "size(%s) in a filter filters the item out" % a)
    ddb.update_item(TableName="plain", Key={"pk": {"S": "sz"}}, UpdateExpression="SET x = :one",
                    ConditionExpression="size(s) = :five", ExpressionAttributeValues={":one": {"N": "1"}, ":five": {"N": "5"}})
    h.eq(ddb.get_item(TableName="plain", Key={"pk": {"S": "sz"}})["Item"].get("x"), {"N": "1"}, "size(s) still counts")

    # ---- DynamoDB's words ----
    code, msg = err(lambda: raw.update_item(TableName="plain", Key={"pk": {"S": "w"}}, UpdateExpression="SET a = :v",
                                            ExpressionAttributeValues={":v": {"N": "abc"}}))
    h.eq((code, msg), ("ValidationException", "ExpressionAttributeValues contains invalid value: The parameter "
                       "cannot be converted to a numeric value: abc for key :v"), "a bad number in ExpressionAttributeValues")
    code, msg = err(lambda: raw.update_item(TableName="plain", Key={"pk": {"S": "w"}}, UpdateExpression="SET a = :v",
                                            ExpressionAttributeValues={":v": {"SS": []}}))
    h.check(code == "ValidationException" and msg.startswith("ExpressionAttributeValues contains invalid value: ")
            and msg.endswith(" for key :v"), "an empty set in ExpressionAttributeValues: %s" % msg)
    ddb.put_item(TableName="plain", Item={"pk": {"S": "big"}, "a": {"S": "x" * 300000}})
    code, msg = err(lambda: ddb.update_item(TableName="plain", Key={"pk": {"S": "big"}}, UpdateExpression="SET b = :v",
                                            ExpressionAttributeValues={":v": {"S": "y" * 200000}}))
    h.eq((code, msg), ("ValidationException", "Item size to update has exceeded the maximum allowed size"),
         "an update past 400 KB")
    h.eq(len(ddb.get_item(TableName="plain", Key={"pk": {"S": "big"}})["Item"]), 2, "the refused update left the item as it was")
    code, msg = err(lambda: ddb.update_item(TableName="plain", Key={"pk": {"S": "w"}}, UpdateExpression="SET a = size(b)"))
    h.eq((code, msg), ("ValidationException", "Invalid UpdateExpression: The function is not allowed in an update "
                       "expression; function: size"), "size() in an update")
    code, msg = err(lambda: ddb.update_item(TableName="plain", Key={"pk": {"S": "w"}}, UpdateExpression="SET a = :v",
                                            ConditionExpression="if_not_exists(a, :v) = :v",
                                            ExpressionAttributeValues={":v": {"N": "1"}}))
    h.eq((code, msg), ("ValidationException", "Invalid ConditionExpression: The function is not allowed in a "
                       "condition expression; function: if_not_exists"), "if_not_exists() in a condition")
    h.check("Item" not in ddb.get_item(TableName="plain", Key={"pk": {"S": "w"}}), "the refused updates wrote nothing")
    # ---- a missing table: named by the table operations only ----
    for what, fn in (("GetItem", lambda: ddb.get_item(TableName="nosuch", Key={"pk": {"S": "a"}})),
                     ("PutItem", lambda: ddb.put_item(TableName="nosuch", Item={"pk": {"S": "a"}})),
                     ("Query", lambda: ddb.query(TableName="nosuch", KeyConditionExpression="pk = :a",
                                                 ExpressionAttributeValues={":a": {"S": "a"}})),
                     ("BatchWriteItem", lambda: ddb.batch_write_item(RequestItems={"nosuch": [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}]}))):
        h.eq(err(fn), ("ResourceNotFoundException", "Requested resource not found"), "%s on a missing table" % what)
    h.eq(err(lambda: ddb.describe_table(TableName="nosuch")),
         ("ResourceNotFoundException", "Requested resource not found: Table: nosuch not found"), "DescribeTable of a missing table")
    # ---- CreateTable with a key attribute not defined: the message lists the definitions ----
    code, msg = err(lambda: ddb.create_table(TableName="undef", BillingMode="PAY_PER_REQUEST",
                                             AttributeDefinitions=[{"AttributeName": "a", "AttributeType": "S"}],
                                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}]))
    h.eq((code, msg), ("ValidationException", "One or more parameter values were invalid: Some index key "
                       "attributes are not defined in AttributeDefinitions. Keys: [pk], AttributeDefinitions: [a]"),
         "CreateTable with an undefined key attribute")
    # ---- SSESpecification is kept and described (Terraform compares it) ----
    mk = dict(BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    d = ddb.create_table(TableName="sse1", SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                              "KMSMasterKeyId": "alias/mine"}, **mk)["TableDescription"]
    h.eq(d.get("SSEDescription"), {"Status": "ENABLED", "SSEType": "KMS",
                                   "KMSMasterKeyArn": "arn:aws:kms:us-east-1:000000000000:alias/mine"},
         "CreateTable with SSE on: SSEDescription")
    h.check("SSEDescription" not in ddb.create_table(TableName="sse2", SSESpecification={"Enabled": False}, **mk)["TableDescription"],
            "SSE off (the AWS-owned key): no SSEDescription")
    ddb.update_table(TableName="sse2", SSESpecification={"Enabled": True})
    h.eq(ddb.describe_table(TableName="sse2")["Table"].get("SSEDescription", {}).get("Status"), "ENABLED",
         "UpdateTable with only SSESpecification turns it on")
    ddb.update_table(TableName="sse1", SSESpecification={"Enabled": False})
    h.check("SSEDescription" not in ddb.describe_table(TableName="sse1")["Table"], "... and off")
    code, _ = err(lambda: raw.create_table(TableName="sse3", SSESpecification={"Enabled": True, "SSEType": "DES"}, **mk))
    h.eq(code, "ValidationException", "an unknown SSEType")
    # ---- OnDemandThroughput is kept and described (raw: Debian's botocore predates it) ----
    base = {"BillingMode": "PAY_PER_REQUEST", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    st_, d = raw_call(srv.port, "DynamoDB_20120810.CreateTable", dict(base, TableName="od1", OnDemandThroughput={
        "MaxReadRequestUnits": 10, "MaxWriteRequestUnits": -1}))
    h.eq((st_, d.get("TableDescription", {}).get("OnDemandThroughput")),
         (200, {"MaxReadRequestUnits": 10, "MaxWriteRequestUnits": -1}), "CreateTable's OnDemandThroughput is described")
    st_, d = raw_call(srv.port, "DynamoDB_20120810.UpdateTable", {"TableName": "od1", "OnDemandThroughput": {
        "MaxReadRequestUnits": 20, "MaxWriteRequestUnits": 5}})
    h.eq((st_, raw_call(srv.port, "DynamoDB_20120810.DescribeTable", {"TableName": "od1"})[1]["Table"].get("OnDemandThroughput")),
         (200, {"MaxReadRequestUnits": 20, "MaxWriteRequestUnits": 5}), "UpdateTable with only OnDemandThroughput changes it")
    st_, d = raw_call(srv.port, "DynamoDB_20120810.CreateTable", dict(base, TableName="od2", OnDemandThroughput={"MaxReadRequestUnits": 0}))
    h.eq((st_, d.get("__type", "").split("#")[-1]), (400, "ValidationException"), "OnDemandThroughput of 0")
    h.check("OnDemandThroughput" not in ddb.describe_table(TableName="sse2")["Table"], "none given, none described")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
sys.exit(h.done())
