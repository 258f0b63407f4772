"""TransactWriteItems' ClientRequestToken driven by boto3 against `tributary
serve` on loopback: a repeat with the same token and parameters succeeds
without applying the writes again (the item and the WAL are unchanged; the
replay reports read capacity), the same token with other parameters is
IdempotentParameterMismatchException, a token of the wrong length is
ValidationException, a cancelled first attempt is not remembered (the retry
runs), and identical requests racing on one token apply the writes once
(the others get TransactionInProgressException or the replay's success).
Tokens live in the server's memory only, so nothing here restarts it."""
import http.client
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("api_idempotency")
srv = Server().start()


def client(validate=True):
    return boto3.client(
        "dynamodb", endpoint_url=srv.url, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
        config=botocore.config.Config(retries={"max_attempts": 1},
                                      parameter_validation=validate))


def wal_records(table):
    """WAL records of `table`, from `tributary wal dump` (read-only, may run
    beside the server)."""
    out = subprocess.run([srv.bin, "--data-dir", srv.data_dir, "wal", "dump"],
                         check=True, capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if (" table=%s " % table) in ln]


ddb = client()
E = ddb.exceptions
KEY = {"id": {"S": "a"}}


def n_of(key=KEY):
    item = ddb.get_item(TableName="ctr", Key=key, ConsistentRead=True).get("Item")
    return item and int(item["n"]["N"])


def incr(key=KEY, by="1"):
    return {"Update": {"TableName": "ctr", "Key": key, "UpdateExpression": "SET n = n + :one",
                       "ExpressionAttributeValues": {":one": {"N": by}}}}


try:
    ddb.create_table(
        TableName="ctr", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="ctr", Item={"id": {"S": "a"}, "n": {"N": "0"}})

    # ---- the same token and parameters three times: applied once ----
    tok = "token-increment-once"
    r = ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=tok,
                                 ReturnConsumedCapacity="TOTAL")
    h.eq(n_of(), 1, "first call applied")
    cc = r["ConsumedCapacity"][0]
    h.eq((cc["TableName"], cc["CapacityUnits"], cc.get("WriteCapacityUnits")), ("ctr", 2.0, 2.0),
         "first call reports write capacity (2x for a transaction)")
    wal_before = wal_records("ctr")
    h.check(len(wal_before) >= 3, "create, put and the transaction are in the WAL (%d)" %
            len(wal_before))
    for i in range(2):
        r = ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=tok,
                                     ReturnConsumedCapacity="TOTAL")
        h.eq(r["ResponseMetadata"]["HTTPStatusCode"], 200, "replay %d succeeds" % (i + 1))
        cc = r["ConsumedCapacity"][0]
        h.eq((cc["TableName"], cc["CapacityUnits"], cc.get("ReadCapacityUnits"),
              "WriteCapacityUnits" in cc), ("ctr", 1.0, 1.0, False),
             "replay %d reports read capacity, not write" % (i + 1))
    h.eq(n_of(), 1, "three calls with one token: incremented once")
    h.eq(wal_records("ctr"), wal_before, "the replays appended nothing to the WAL")
    # What is not a parameter may differ: capacity, metrics.
    r = ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=tok,
                                 ReturnItemCollectionMetrics="SIZE")
    h.check("ConsumedCapacity" not in r, "replay without capacity asked: none reported")
    r = ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=tok,
                                 ReturnConsumedCapacity="INDEXES")
    cc = r["ConsumedCapacity"][0]
    h.eq(cc.get("Table"), {"CapacityUnits": 1.0, "ReadCapacityUnits": 1.0},
         "replay with INDEXES: the table's read capacity")
    h.eq(n_of(), 1, "replays with other capacity/metrics options apply nothing")

    # ---- the same token, other parameters ----
    h.raises(lambda: ddb.transact_write_items(TransactItems=[incr(by="2")],
                                              ClientRequestToken=tok),
             "IdempotentParameterMismatchException", "same token, other value")
    e = h.raises(lambda: ddb.transact_write_items(
        TransactItems=[incr(key={"id": {"S": "b"}})], ClientRequestToken=tok),
        "IdempotentParameterMismatchException", "same token, other item")
    if e is not None:
        h.eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, "mismatch is HTTP 400")
    h.eq(n_of(), 1, "mismatches applied nothing")
    h.eq(n_of({"id": {"S": "b"}}), None, "the other item was not created")
    # The original still replays after a mismatch; another token runs.
    ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=tok)
    h.eq(n_of(), 1, "the original still replays after a mismatch")
    ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken="another-token")
    h.eq(n_of(), 2, "another token runs")

    # ---- the token's length: 1..36 characters ----
    ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken="x" * 36)
    h.eq(n_of(), 3, "a 36-character token is accepted")
    e = h.raises(lambda: ddb.transact_write_items(TransactItems=[incr()],
                                                  ClientRequestToken="y" * 37),
                 "ValidationException", "a 37-character token")
    if e is not None:
        h.check("clientRequestToken" in e.response["Error"]["Message"] and
                "less than or equal to 36" in e.response["Error"]["Message"],
                "the message names the member and the limit: %r" % e.response["Error"]["Message"])
    raw = client(validate=False)  # botocore would refuse "" itself
    h.raises(lambda: raw.transact_write_items(TransactItems=[incr()], ClientRequestToken=""),
             "ValidationException", "an empty token")
    h.eq(n_of(), 3, "invalid tokens applied nothing")

    # ---- a cancelled first attempt is not remembered ----
    ddb.put_item(TableName="ctr", Item={"id": {"S": "gate"}, "open": {"BOOL": False}})
    gated = [incr(),
             {"ConditionCheck": {"TableName": "ctr", "Key": {"id": {"S": "gate"}},
                                 "ConditionExpression": "#o = :t",
                                 "ExpressionAttributeNames": {"#o": "open"},
                                 "ExpressionAttributeValues": {":t": {"BOOL": True}}}}]
    gtok = "token-cancelled-then-retried"
    e = h.raises(lambda: ddb.transact_write_items(TransactItems=gated, ClientRequestToken=gtok),
                 "TransactionCanceledException", "cancelled first attempt")
    if e is not None:
        h.eq([x["Code"] for x in e.response["CancellationReasons"]],
             ["None", "ConditionalCheckFailed"], "cancellation reasons")
    h.raises(lambda: ddb.transact_write_items(TransactItems=gated, ClientRequestToken=gtok),
             "TransactionCanceledException", "a retry before the fix runs (and fails) again")
    h.eq(n_of(), 3, "cancelled attempts applied nothing")
    ddb.put_item(TableName="ctr", Item={"id": {"S": "gate"}, "open": {"BOOL": True}})
    ddb.transact_write_items(TransactItems=gated, ClientRequestToken=gtok)
    h.eq(n_of(), 4, "after the fix the retry with the same token executes")
    ddb.transact_write_items(TransactItems=gated, ClientRequestToken=gtok)
    h.eq(n_of(), 4, "and from then on it replays")
    # After a failure the token is free for other parameters too.
    ftok = "token-failed-then-other-params"
    ddb.put_item(TableName="ctr", Item={"id": {"S": "gate"}, "open": {"BOOL": False}})
    h.raises(lambda: ddb.transact_write_items(TransactItems=gated, ClientRequestToken=ftok),
             "TransactionCanceledException", "cancelled with a fresh token")
    ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=ftok)
    h.eq(n_of(), 5, "the failed token's retry with other parameters runs (no mismatch)")

    # ---- identical requests racing on one token: applied once ----
    # Raw HTTP with the body serialised beforehand, so that the eight
    # requests really are in flight together (boto3 would serialise them
    # one after another under the GIL). The ones that find the first still
    # running get TransactionInProgressException; later ones the replay.
    in_progress = 0
    for round_ in range(10):
        rtok = "token-race-%d" % round_
        body = json.dumps({"TransactItems": [incr()], "ClientRequestToken": rtok}).encode()
        before = n_of()
        results = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def race():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            conn.connect()
            barrier.wait()
            conn.request("POST", "/", body=body, headers={
                "X-Amz-Target": "DynamoDB_20120810.TransactWriteItems",
                "Content-Type": "application/x-amz-json-1.0"})
            resp = conn.getresponse()
            res = (resp.status, json.loads(resp.read()).get("__type", "ok"))
            conn.close()
            with lock:
                results.append(res)

        threads = [threading.Thread(target=race) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        busy = (400, "com.amazonaws.dynamodb.v20120810#TransactionInProgressException")
        in_progress += results.count(busy)
        h.check(len(results) == 8 and (200, "ok") in results and
                all(x in ((200, "ok"), busy) for x in results),
                "race %d: success or TransactionInProgressException only: %r" % (round_, results))
        h.eq(n_of(), before + 1, "race %d: eight identical requests applied once" % round_)
        ddb.transact_write_items(TransactItems=[incr()], ClientRequestToken=rtok)
        h.eq(n_of(), before + 1, "race %d: a later retry replays" % round_)
    print("racing requests answered TransactionInProgressException: %d of 80" % in_progress)
    # boto3 retries TransactionInProgressException (with the same token):
    # with its default retries every racer ends in success, applied once.
    before = n_of()
    results = []
    barrier = threading.Barrier(8)

    def race_boto3():
        c = boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                         aws_access_key_id="local", aws_secret_access_key="local")
        barrier.wait()
        try:
            c.transact_write_items(TransactItems=[incr()], ClientRequestToken="token-race-boto3")
            results.append("ok")
        except botocore.exceptions.ClientError as ex:
            results.append(ex.response["Error"]["Code"])

    threads = [threading.Thread(target=race_boto3) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h.eq(results, ["ok"] * 8, "boto3 with retries: every racer succeeds")
    h.eq(n_of(), before + 1, "boto3 with retries: applied once")
    final_n = n_of()

    # ---- the WAL after the server stopped ----
    applied = wal_records("ctr")
    h.eq(srv.stop(), 0, "clean stop")
    h.eq(wal_records("ctr"), applied, "WAL after stop: nothing more was appended")
    # One MODIFY of item "a" per increment actually applied, none per replay.
    mods = [ln for ln in applied if "kind=MODIFY" in ln and 'keys={"id":{"S":"a"}}' in ln]
    h.eq(len(mods), final_n, "one WAL change of the counter per applied increment")
except Exception as ex:  # a crash of the test itself is a failure, with its trace
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
sys.exit(h.done())
