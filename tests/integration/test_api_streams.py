"""DynamoDB Streams through boto3 against `tributary serve`: a workload of
puts, updates, deletes, no-op writes, a batch and a transaction on four
tables (one per StreamViewType); then ListStreams and DescribeStream with
paging, iterators of all four types, and GetRecords over every shard,
parents before children, until each shard is exhausted or caught up. The
consumer must see, for every item, exactly its changes in order with the
images the view type promises. Then: shard rollover (lineage), per-item
order under 16 concurrent writers across rollovers, disabling and
re-enabling a stream, kill -9 and restart, and the errors."""
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server, raw_call  # noqa: E402

h = Harness("api_streams")
cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False,
                                  dir=os.environ.get("TRB_TEST_TMP", "/tmp"))
cfg.write("streams:\n  shards: 3\n  rollover_s: 2\n  tables: pre:KEYS_ONLY\nregion: eu-west-1\n")
cfg.close()
srv = Server(config=cfg.name).start()
seed = int(os.environ.get("TRB_TEST_SEED", random.randrange(1 << 30)))
print("TRB_TEST_SEED=%d" % seed, flush=True)
rnd = random.Random(seed)
VIEWS = ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"]


def clients():
    kw = dict(endpoint_url=srv.url, region_name="eu-west-1", aws_access_key_id="local",
              aws_secret_access_key="local", config=botocore.config.Config(retries={"max_attempts": 1}))
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw)


ddb, strm = clients()


def make_table(name, view):
    return ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view})["TableDescription"]


def read_stream(arn, wait_open=False):
    """Every record of the stream, shard by shard, parents first. Returns
    {shard_id: [records]} and the shard list."""
    shards = []
    start = None
    while True:
        kw = {"StreamArn": arn, "Limit": 2}
        if start:
            kw["ExclusiveStartShardId"] = start
        d = strm.describe_stream(**kw)["StreamDescription"]
        shards += d["Shards"]
        start = d.get("LastEvaluatedShardId")
        if not start:
            break
    ids = [s["ShardId"] for s in shards]
    h.eq(ids, sorted(ids), "shards in ascending ShardId order")
    h.eq(len(ids), len(set(ids)), "each shard listed once over the pages")
    done, out = set(), {}
    pending = list(shards)
    while pending:
        progressed = False
        for s in list(pending):
            parent = s.get("ParentShardId")
            if parent and parent in ids and parent not in done:
                continue  # children after their parent
            it = strm.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"],
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            recs = []
            for _ in range(10000):
                r = strm.get_records(ShardIterator=it, Limit=rnd.choice([1, 3, 1000]))
                recs += r["Records"]
                if "NextShardIterator" not in r:
                    h.check("EndingSequenceNumber" in s["SequenceNumberRange"],
                            "only a closed shard ends its iterators")
                    break
                it = r["NextShardIterator"]
                if not r["Records"] and "EndingSequenceNumber" not in s["SequenceNumberRange"]:
                    break  # an open shard, caught up
            rng = s["SequenceNumberRange"]
            for rec in recs:
                sn = int(rec["dynamodb"]["SequenceNumber"])
                h.check(sn >= int(rng["StartingSequenceNumber"]) and
                        ("EndingSequenceNumber" not in rng or sn <= int(rng["EndingSequenceNumber"])),
                        "record inside its shard's sequence range")
            sns = [int(x["dynamodb"]["SequenceNumber"]) for x in recs]
            h.check(sns == sorted(sns) and len(set(sns)) == len(sns), "sequence numbers increase in a shard")
            out[s["ShardId"]] = recs
            done.add(s["ShardId"])
            pending.remove(s)
            progressed = True
        h.check(progressed, "lineage has no cycle")
        if not progressed:
            break
    return out, shards


def per_item(recs_by_shard, shards):
    """Records per item key, in the order a parents-first consumer saw them."""
    items = {}
    order = [s["ShardId"] for s in shards]
    for sid in order:
        for r in recs_by_shard.get(sid, []):
            k = (r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["Keys"]["sk"]["N"])
            items.setdefault(k, []).append(r)
    return items


try:
    arns = {}
    for v in VIEWS:
        d = make_table("t_" + v.lower(), v)
        arns[v] = d["LatestStreamArn"]
        h.check(d["LatestStreamArn"].startswith(
            "arn:aws:dynamodb:eu-west-1:000000000000:table/t_%s/stream/" % v.lower()), "stream ARN shape")
        h.eq(d["StreamSpecification"], {"StreamEnabled": True, "StreamViewType": v}, "stream spec")
    ddb.create_table(TableName="nostream", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])

    # ---- the workload, and the model of what each stream must say ----
    model = {v: {} for v in VIEWS}   # view -> key -> list of (event, old, new)
    state = {v: {} for v in VIEWS}

    def key(p, s):
        return {"pk": {"S": p}, "sk": {"N": str(s)}}

    def note(v, k, old, new):
        if old == new:
            return
        ev = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
        model[v].setdefault(k, []).append((ev, old, new))

    for step in range(150):
        p, s = "p%d" % rnd.randrange(8), rnd.randrange(4)
        k = (p, str(s))
        r = rnd.random()
        for v in VIEWS:
            t = "t_" + v.lower()
            old = state[v].get(k)
            if r < 0.4:
                item = dict(key(p, s), val={"N": str(rnd.randrange(3))})
                ddb.put_item(TableName=t, Item=item)
                new = item
            elif r < 0.7:
                inc = rnd.randrange(2)
                ddb.update_item(TableName=t, Key=key(p, s), UpdateExpression="SET val = if_not_exists(val, :z) + :i",
                                ExpressionAttributeValues={":z": {"N": "0"}, ":i": {"N": str(inc)}})
                new = dict(old or key(p, s))
                new["val"] = {"N": str(int((old or {}).get("val", {"N": "0"})["N"]) + inc)}
            else:
                ddb.delete_item(TableName=t, Key=key(p, s))
                new = None
            note(v, k, old, new)
            if new is None:
                state[v].pop(k, None)
            else:
                state[v][k] = new
    # A batch and a transaction on the NEW_AND_OLD_IMAGES table.
    v = "NEW_AND_OLD_IMAGES"
    t = "t_new_and_old_images"
    ddb.batch_write_item(RequestItems={t: [{"PutRequest": {"Item": dict(key("b", 1), val={"N": "7"})}},
                                           {"PutRequest": {"Item": dict(key("b", 2), val={"N": "8"})}}]})
    for s in (1, 2):
        note(v, ("b", str(s)), state[v].get(("b", str(s))), dict(key("b", s), val={"N": str(6 + s)}))
        state[v][("b", str(s))] = dict(key("b", s), val={"N": str(6 + s)})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": t, "Item": dict(key("x", 1), val={"N": "1"})}},
        {"Put": {"TableName": t, "Item": dict(key("x", 2), val={"N": "2"})}},
        {"Delete": {"TableName": t, "Key": key("b", 1)}}])
    for kk, new in ((("x", "1"), dict(key("x", 1), val={"N": "1"})), (("x", "2"), dict(key("x", 2), val={"N": "2"})),
                    (("b", "1"), None)):
        note(v, kk, state[v].get(kk), new)
        if new is None:
            state[v].pop(kk, None)
        else:
            state[v][kk] = new
    # No-op writes: no record.
    ddb.put_item(TableName=t, Item=state[v][("x", "2")])
    ddb.delete_item(TableName=t, Key=key("nobody", 1))

    # A table the config file gives a stream.
    d = ddb.create_table(TableName="pre", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])["TableDescription"]
    h.eq(d.get("StreamSpecification"), {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
         "streams.tables gives a created table its stream")
    pre_arn = d["LatestStreamArn"]
    ddb.delete_table(TableName="pre")

    # ---- ListStreams ----
    got = []
    start = None
    while True:
        kw = {"Limit": 1}
        if start:
            kw["ExclusiveStartStreamArn"] = start
        r = strm.list_streams(**kw)
        got += [x["StreamArn"] for x in r["Streams"]]
        start = r.get("LastEvaluatedStreamArn")
        if not start:
            break
    h.eq(sorted(got), sorted(list(arns.values()) + [pre_arn]), "ListStreams pages through every stream once")
    h.eq(strm.list_streams(TableName="nostream")["Streams"], [], "a table without a stream lists none")
    h.raises(lambda: strm.list_streams(TableName="no_such_table"), "ResourceNotFoundException",
             "ListStreams of a table that does not exist")
    h.eq([x["StreamArn"] for x in strm.list_streams(TableName="t_keys_only")["Streams"]], [arns["KEYS_ONLY"]],
         "ListStreams by table")

    # ---- every view type: each item's changes, in order, with the right images ----
    for v in VIEWS:
        recs, shards = read_stream(arns[v])
        d = strm.describe_stream(StreamArn=arns[v])["StreamDescription"]
        h.eq((d["StreamStatus"], d["StreamViewType"], d["TableName"]), ("ENABLED", v, "t_" + v.lower()),
             "DescribeStream of %s" % v)
        h.eq(d["KeySchema"], [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
             "KeySchema in the description")
        items = per_item(recs, shards)
        h.eq(sorted(items), sorted(model[v]), "%s: the items that changed" % v)
        bad = 0
        for k, want in model[v].items():
            seen = items.get(k, [])
            if len(seen) != len(want):
                bad += 1
                continue
            for rec, (ev, old, new) in zip(seen, want):
                dd = rec["dynamodb"]
                ok = rec["eventName"] == ev and dd["StreamViewType"] == v and dd["Keys"] == {
                    "pk": {"S": k[0]}, "sk": {"N": k[1]}}
                ok = ok and rec["eventSource"] == "aws:dynamodb" and rec["awsRegion"] == "eu-west-1"
                ok = ok and len(rec["eventID"]) == 32 and rec["eventVersion"] == "1.1"
                wn = new if v in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") else None
                wo = old if v in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") else None
                ok = ok and dd.get("NewImage") == wn and dd.get("OldImage") == wo
                if not ok:
                    bad += 1
                    print("mismatch", v, k, rec, (ev, old, new))
        h.eq(bad, 0, "%s: every item's records match its changes in order" % v)
    # The transaction's records share a transaction id; the batch's do not.
    # (An extension member: botocore drops members its model lacks, so read
    # the raw answers.)
    import http.client
    import json

    def raw(op, body):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("POST", "/", body=json.dumps(body), headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDBStreams_20120810." + op})
        out = json.loads(conn.getresponse().read())
        conn.close()
        return out

    recs, shards = read_stream(arns["NEW_AND_OLD_IMAGES"])
    tx = []
    for s in shards:
        it = raw("GetShardIterator", {"StreamArn": arns["NEW_AND_OLD_IMAGES"], "ShardId": s["ShardId"],
                                      "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        tx += [r for r in raw("GetRecords", {"ShardIterator": it})["Records"] if "transactionId" in r]
    h.eq(len(tx), 3, "three records carry a transaction id")
    h.eq(len({r["transactionId"] for r in tx}), 1, "one transaction id for the transaction")

    # ---- iterator types ----
    arn = arns["NEW_AND_OLD_IMAGES"]
    shards = strm.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    latest = {s["ShardId"]: strm.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"],
                                                    ShardIteratorType="LATEST")["ShardIterator"]
              for s in open_shards}
    ddb.put_item(TableName=t, Item=dict(key("late", 1), val={"N": "1"}))
    fresh = []
    for sid, it in latest.items():
        r = strm.get_records(ShardIterator=it)
        fresh += r["Records"]
    if not fresh:
        # the shards rolled over (2 s here) between LATEST and the write: the
        # write is in a child of one of them
        for s in strm.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            if s.get("ParentShardId") in latest:
                it = strm.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                fresh += strm.get_records(ShardIterator=it)["Records"]
    h.eq([r["dynamodb"]["Keys"]["pk"]["S"] for r in fresh], ["late"], "LATEST sees only the new write")
    some = next(rs for rs in recs.values() if len(rs) >= 2)
    sid = next(s for s, rs in recs.items() if rs is some)
    sn = some[1]["dynamodb"]["SequenceNumber"]
    it = strm.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                 SequenceNumber=sn)["ShardIterator"]
    h.eq(strm.get_records(ShardIterator=it, Limit=1)["Records"][0]["dynamodb"]["SequenceNumber"], sn,
         "AT_SEQUENCE_NUMBER starts at that record")
    it = strm.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                 SequenceNumber=some[0]["dynamodb"]["SequenceNumber"])["ShardIterator"]
    h.eq(strm.get_records(ShardIterator=it, Limit=1)["Records"][0]["dynamodb"]["SequenceNumber"], sn,
         "AFTER_SEQUENCE_NUMBER starts after that record")

    # ---- errors ----
    def raises(fn, code, what):
        try:
            fn()
        except strm.exceptions.ClientError as e:
            h.eq(e.response["Error"]["Code"], code, what)
            return
        h.check(False, "%s: no error, want %s" % (what, code))

    raises(lambda: strm.get_records(ShardIterator="garbage"), "ValidationException", "garbage iterator")
    tampered = it[:-3] + ("A" if it[-3] != "A" else "B") + it[-2:]
    raises(lambda: strm.get_records(ShardIterator=tampered), "ValidationException", "tampered iterator")
    raises(lambda: strm.describe_stream(StreamArn="arn:nonsense:this-is-not-a-stream-arn-at-all"), "ValidationException", "malformed stream ARN")
    raises(lambda: strm.describe_stream(StreamArn=arn.rsplit("/", 1)[0] + "/2001-01-01T00:00:00.000"),
           "ResourceNotFoundException", "unknown stream")
    raises(lambda: strm.get_shard_iterator(StreamArn=arn, ShardId="shardId-00000000000000000000-00000000",
                                           ShardIteratorType="LATEST"), "ResourceNotFoundException", "unknown shard")
    raises(lambda: strm.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="AT_SEQUENCE_NUMBER"),
           "ValidationException", "AT_SEQUENCE_NUMBER without a sequence number")
    raises(lambda: strm.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON",
                                           SequenceNumber=sn), "ValidationException",
           "TRIM_HORIZON with a sequence number")
    raises(lambda: strm.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                           SequenceNumber="1000000000000000000012x"), "ValidationException", "non-numeric sequence number")
    raises(lambda: strm.get_records(ShardIterator=it, Limit=1001), "ValidationException", "Limit 1001")

    # ---- rollover: shards close, children name their parents ----
    time.sleep(2.2)
    ddb.put_item(TableName=t, Item=dict(key("after", 1), val={"N": "1"}))
    d = strm.describe_stream(StreamArn=arn)["StreamDescription"]
    closed = [s for s in d["Shards"] if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    children = [s for s in d["Shards"] if s.get("ParentShardId")]
    h.check(len(closed) >= 3 and len(children) >= 3, "rollover closed shards and opened children")
    ids = {s["ShardId"] for s in d["Shards"]}
    h.check(all(c["ParentShardId"] in ids for c in children), "children name listed parents")
    # ShardFilter is newer than Debian's botocore: raw.
    st_, kids = raw_call(srv.port, "DynamoDBStreams_20120810.DescribeStream", {
        "StreamArn": arn, "ShardFilter": {"Type": "CHILD_SHARDS", "ShardId": children[0]["ParentShardId"]}})
    h.eq([s["ShardId"] for s in kids["StreamDescription"]["Shards"]], [children[0]["ShardId"]],
         "ShardFilter CHILD_SHARDS")

    # ---- 16 writers across rollovers: per-item order ----
    ddb.create_table(TableName="busy", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    busy_arn = ddb.describe_table(TableName="busy")["Table"]["LatestStreamArn"]
    errors = []

    def writer(w):
        c, _ = clients()
        try:
            end = time.time() + 4.5
            n = 0
            while time.time() < end:
                n += 1
                c.put_item(TableName="busy", Item={"pk": {"S": "w%d-k%d" % (w, n % 5)}, "n": {"N": str(n)}})
        except Exception as ex:  # noqa: BLE001
            errors.append(repr(ex))

    ths = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    h.eq(errors, [], "writers ran without errors")
    time.sleep(2.1)
    ddb.put_item(TableName="nostream", Item={"pk": {"S": "tick"}})  # a record after the last boundary
    recs, shards = read_stream(busy_arn)
    h.check(sum(1 for s in shards if s.get("ParentShardId")) >= 3, "the busy stream rolled over")
    per = {}
    for s in shards:
        for r in recs.get(s["ShardId"], []):
            per.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(int(r["dynamodb"]["NewImage"]["n"]["N"]))
    final = {}
    for page in ddb.get_paginator("scan").paginate(TableName="busy"):
        for it_ in page["Items"]:
            final[it_["pk"]["S"]] = int(it_["n"]["N"])
    h.eq(sorted(per), sorted(final), "every busy item is in the stream")
    h.check(all(v == sorted(v) and len(set(v)) == len(v) for v in per.values()),
            "per-item order across shard rollovers")
    h.check(all(per[k][-1] == final[k] for k in final), "the last record of each item is its final state")

    # ---- disable, re-enable ----
    ddb.update_table(TableName="t_keys_only", StreamSpecification={"StreamEnabled": False})
    d = strm.describe_stream(StreamArn=arns["KEYS_ONLY"])["StreamDescription"]
    h.eq(d["StreamStatus"], "DISABLED", "disabled stream")
    h.check(all("EndingSequenceNumber" in s["SequenceNumberRange"] for s in d["Shards"]),
            "a disabled stream's shards are all closed")
    time.sleep(0.01)
    nd = ddb.update_table(TableName="t_keys_only", StreamSpecification={"StreamEnabled": True,
                                                                         "StreamViewType": "NEW_IMAGE"})
    new_arn = nd["TableDescription"]["LatestStreamArn"]
    h.check(new_arn != arns["KEYS_ONLY"], "enabling again gives a new stream")
    h.eq(len(strm.list_streams(TableName="t_keys_only")["Streams"]), 2, "both streams listed")

    # ---- kill -9 and restart: the same shards and records ----
    before = {v: read_stream(arns[v])[0] for v in ("NEW_IMAGE", "OLD_IMAGE")}
    srv.kill9()
    srv.start()
    ddb, strm = clients()
    for v in ("NEW_IMAGE", "OLD_IMAGE"):
        after, _ = read_stream(arns[v])
        h.eq(after, before[v], "%s: the same shards and records after kill -9" % v)

    # ---- N changes (streams.shards 3 -> 6): shards close, 6 children name their parents ----
    old_ids = {s["ShardId"] for s in strm.describe_stream(StreamArn=busy_arn)["StreamDescription"]["Shards"]}
    with open(cfg.name, "w") as f:
        f.write("streams:\n  shards: 6\n  rollover_s: 600\n  tables: nostream:NEW_IMAGE\nregion: eu-west-1\n")
    srv.stop()
    srv.start()
    ddb, strm = clients()
    busy_after = strm.describe_stream(StreamArn=busy_arn)["StreamDescription"]["Shards"]
    d = ddb.describe_table(TableName="nostream")["Table"]
    h.eq(d.get("StreamSpecification"), {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
         "streams.tables gives an existing table a stream at start")
    h.check(all("EndingSequenceNumber" in s["SequenceNumberRange"] for s in busy_after if s["ShardId"] in old_ids),
            "the change of N closed every shard there was")
    for i in range(60):
        ddb.put_item(TableName="busy", Item={"pk": {"S": "w%d-k%d" % (i % 16, i % 5)}, "n": {"N": str(10 ** 6 + i)}})
    recs, shards = read_stream(busy_arn)
    newest = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    h.eq(len(newest), 6, "six open shards after the change")
    by_id = {s["ShardId"]: s for s in shards}
    h.check(all(s.get("ParentShardId") in by_id for s in newest), "each new shard names a listed parent")
    h.eq(len({s["ParentShardId"] for s in newest}), 3, "each old shard is the parent of two new ones")
    per = {}
    for s in shards:
        for r in recs.get(s["ShardId"], []):
            per.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(int(r["dynamodb"]["NewImage"]["n"]["N"]))
    h.check(all(v == sorted(v) for v in per.values()), "per-item order across the change of N")
    h.check(all(per[k][-1] >= 10 ** 6 for k in per if k.startswith("w") and k.split("-")[0] in
                ["w%d" % i for i in range(16)] and any(x >= 10 ** 6 for x in per[k])),
            "new writes land after the old ones")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
    os.unlink(cfg.name)
sys.exit(h.done())
