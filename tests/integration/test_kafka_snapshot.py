"""The Kafka sink's snapshots: a table whose changes are not all in the WAL
(its stream enabled after it had items, or enabled again after a pause) is
sent as snapshot reads (op "r", a "snapshot: true" header, the snapshot's
LSN), then its changes after the snapshot, so a topic holds every item and
one item's messages stay in order; a table created with its stream gets no
snapshot. Against librdkafka's mock cluster (3 brokers, `tributary
kafka-mock`), checked with a read_committed consumer (python3-confluent-kafka)
decoding with python3-avro:

A  a stream enabled on a table of 2,500 items (3 transactions of reads),
   changes after it; the topic's last message per key equals a Scan; the
   other table (stream from creation) has no reads
B  a restart sends nothing again
C  the stream disabled and enabled again: a second snapshot, at a newer LSN
D  kill -9 in the middle of a 30,000-item snapshot: after the restart the
   snapshot starts again at a newer LSN and completes; per item, messages
   never go back in LSN
E  the JSON format: reads are INSERT records with NewImage, each its own
   eventID
F  a Kafka sink added to a server whose WAL retention trimmed: the table
   older than the WAL's start is sent as a snapshot, whole."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from kafkacheck import KSCHEMA, VSCHEMA, av_to_ddb, unframe  # noqa: E402
import kafkacheck  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("kafka_snapshot")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="ksnap-", dir=base)
mock = subprocess.Popen([os.environ["TRB_BIN"], "kafka-mock", "--brokers", "3"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True, bufsize=1)
BOOT = mock.stdout.readline().split()[1]


def clients(srv):
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local",
              config=botocore.config.Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=30))
    return boto3.client("dynamodb", **kw)


def read_topic(topic, seconds=60):
    return kafkacheck.read_topic(BOOT, topic, seconds)


def decoded(msgs):
    """(partition, pk, op, after-image or None, lsn, headers) per message, in partition order."""
    out = []
    for p, off, key, val, hd in msgs:
        pk = av_to_ddb(unframe(key, KSCHEMA)["attributes"]["pk"])["S"]
        if val is None:
            out.append((p, pk, "tomb", None, int(hd["lsn"]), hd))
            continue
        env = unframe(val, VSCHEMA)
        after = {k: av_to_ddb(v) for k, v in env["after"].items()} if env["after"] is not None else None
        out.append((p, pk, env["op"], after, int(hd["lsn"]), hd))
    return out


def last_state(dec):
    state = {}
    for p, pk, op, after, lsn, hd in dec:
        if op in ("r", "c", "u"):
            state[pk] = after
        elif op == "d":
            state.pop(pk, None)
    return state


def scan(ddb, table):
    items = {}
    kw = {"TableName": table, "ConsistentRead": True}
    while True:
        r = ddb.scan(**kw)
        for it in r["Items"]:
            items[it["pk"]["S"]] = it
        if "LastEvaluatedKey" not in r:
            return items
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def load(ddb, table, n, prefix="i"):
    for i in range(0, n, 25):
        reqs = [{"PutRequest": {"Item": {"pk": {"S": "%s%06d" % (prefix, j)}, "n": {"N": str(j)},
                                         "pad": {"S": "x" * 40}}}} for j in range(i, min(n, i + 25))]
        r = ddb.batch_write_item(RequestItems={table: reqs})
        while r.get("UnprocessedItems"):
            r = ddb.batch_write_item(RequestItems=r["UnprocessedItems"])


def create(ddb, table, stream):
    kw = dict(TableName=table, BillingMode="PAY_PER_REQUEST",
              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(**kw)


def stream(ddb, table, on):
    spec = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"} if on else {"StreamEnabled": False}
    ddb.update_table(TableName=table, StreamSpecification=spec)


def wait_snapshot(srv, at_least, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        m = srv.metrics()
        if m.get("tributary_kafka_snapshot_items_total", 0) >= at_least and \
                m.get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= m["tributary_wal_last_lsn"]:
            return m
        time.sleep(0.3)
    return srv.metrics()


def in_order(dec, what):
    """Per item, LSNs never go back, an item stays in one partition, and a
    change follows its item's read only when newer."""
    bad = []
    last, part = {}, {}
    for p, pk, op, after, lsn, hd in dec:
        if part.setdefault(pk, p) != p or lsn < last.get(pk, 0) or (op != "r" and op != "tomb" and lsn == last.get(pk)):
            bad.append((pk, op, lsn, last.get(pk)))
        last[pk] = lsn
    h.eq(bad[:5], [], what)


def checkpoint_tables(txid_hint=None):
    msgs = read_topic("__tributary_offsets", 30)
    cks = [json.loads(v) for p, o, k, v, hd in msgs if v]
    return cks[-1] if cks else {}


srv = None
try:
    cfg = os.path.join(work, "tributary.yaml")
    with open(cfg, "w") as f:
        f.write("kafka:\n  brokers: %s\n" % BOOT)
    srv = Server(config=cfg, data_dir=os.path.join(work, "data")).start()
    ddb = clients(srv)

    # ---- A: a stream enabled on a table that has items ----
    create(ddb, "legacy", False)
    create(ddb, "fresh", True)
    load(ddb, "legacy", 2500)
    load(ddb, "fresh", 30, prefix="f")
    stream(ddb, "legacy", True)
    m = wait_snapshot(srv, 2500)
    h.eq(m.get("tributary_kafka_snapshot_items_total"), 2500.0, "the 2,500 items went as snapshot reads")
    for j in range(0, 40):
        ddb.update_item(TableName="legacy", Key={"pk": {"S": "i%06d" % j}}, UpdateExpression="SET n = n + :one",
                        ExpressionAttributeValues={":one": {"N": "1000"}})
    for j in range(40, 50):
        ddb.delete_item(TableName="legacy", Key={"pk": {"S": "i%06d" % j}})
    ddb.put_item(TableName="legacy", Item={"pk": {"S": "new"}, "n": {"N": "1"}})
    srv.sink_caught_up("kafka", 60)
    dec = decoded(read_topic("us-east-1.legacy"))
    reads = [d for d in dec if d[2] == "r"]
    h.eq(len(reads), 2500, "one read per item")
    h.eq(len({d[1] for d in reads}), 2500, "each item read once")
    s1 = {d[4] for d in reads}
    h.eq(len(s1), 1, "the reads carry one snapshot LSN")
    h.check(all(d[5].get("snapshot") == b"true" and d[5].get("eventName") == b"INSERT" and
                d[5].get("table") == b"legacy" and d[5].get("shardId") for d in reads),
            "reads say snapshot, INSERT, the table and a shard (first: %r)" % (reads[0][5] if reads else None,))
    h.check(all(d[3]["n"]["N"] == str(int(d[1][1:])) and d[3]["pad"] == {"S": "x" * 40} for d in reads),
            "each read's after image is the item as it was")
    changes = [d for d in dec if d[2] != "r"]
    h.eq(sorted({d[2] for d in changes}), ["c", "d", "tomb", "u"], "then the changes after the snapshot")
    h.check(all(d[4] > min(s1) for d in changes), "only changes after the snapshot's LSN")
    h.eq(len([d for d in changes if d[2] == "u"]), 40, "the 40 updates")
    in_order(dec, "per item: the read first, then its changes, in LSN order")
    want = {k: v for k, v in scan(ddb, "legacy").items()}
    got = last_state(dec)
    h.eq(len(got), len(want), "the topic's items are the table's (%d)" % len(want))
    h.check(got == want, "the topic's last message per item is the item")
    fresh = decoded(read_topic("us-east-1.fresh"))
    h.eq(sorted({d[2] for d in fresh}), ["c"], "a table with its stream from creation: its changes, no reads")
    h.eq(len(fresh), 30, "its 30 puts")
    ck = checkpoint_tables()
    h.eq(ck.get("version"), 2, "checkpoint version 2")
    h.eq(int(ck.get("tables", {}).get("legacy", {}).get("snapshot_lsn", 0)), min(s1),
         "the checkpoint records the table's snapshot: %r" % ck.get("tables"))
    h.check("fresh" not in ck.get("tables", {}), "and no snapshot of the table that needed none")

    # ---- B: a restart sends nothing again ----
    srv.stop()
    srv.start()
    ddb = clients(srv)
    ddb.put_item(TableName="legacy", Item={"pk": {"S": "after-restart"}, "n": {"N": "2"}})
    srv.sink_caught_up("kafka", 60)
    time.sleep(1.5)  # a scan of the tables runs once a second
    h.eq(srv.metrics().get("tributary_kafka_snapshot_items_total"), 0.0, "after a restart: no snapshot again")
    dec = decoded(read_topic("us-east-1.legacy"))
    h.eq(len([d for d in dec if d[2] == "r"]), 2500, "still one read per item")
    h.eq(last_state(dec), scan(ddb, "legacy"), "and the topic still matches the table")

    # ---- C: disabled and enabled again: the changes in between are in no stream ----
    stream(ddb, "legacy", False)
    ddb.put_item(TableName="legacy", Item={"pk": {"S": "i000001"}, "n": {"N": "-1"}})  # in no stream
    stream(ddb, "legacy", True)
    nitems = len(scan(ddb, "legacy"))
    m = wait_snapshot(srv, nitems)
    h.eq(m.get("tributary_kafka_snapshot_items_total"), float(nitems), "enabled again: a new snapshot of %d" % nitems)
    dec = decoded(read_topic("us-east-1.legacy"))
    s2 = {d[4] for d in dec if d[2] == "r"} - s1
    h.check(len(s2) == 1 and min(s2) > min(s1), "at a newer LSN (%r after %r)" % (s2, s1))
    h.eq(last_state(dec), scan(ddb, "legacy"), "the change made while the stream was off arrives with it")
    in_order(dec, "per item still in LSN order")

    # ---- D: kill -9 in the middle of a snapshot ----
    create(ddb, "big", False)
    N = 30000
    load(ddb, "big", N, prefix="b")
    stream(ddb, "big", True)
    hit = False
    end = time.time() + 60
    while time.time() < end:
        got = srv.metrics().get("tributary_kafka_snapshot_items_total", 0) - nitems
        if got > 0:
            hit = got < N
            break
        time.sleep(0.01)
    srv.kill9()
    h.check(hit, "killed in the middle of the snapshot")
    srv.start()
    ddb = clients(srv)
    m = wait_snapshot(srv, N, 120)
    h.eq(m.get("tributary_kafka_snapshot_items_total"), float(N), "after the restart the snapshot starts again, whole")
    ddb.update_item(TableName="big", Key={"pk": {"S": "b000007"}}, UpdateExpression="SET n = :v",
                    ExpressionAttributeValues={":v": {"N": "77"}})
    srv.sink_caught_up("kafka", 60)
    dec = decoded(read_topic("us-east-1.big", 120))
    rd = [d for d in dec if d[2] == "r"]
    h.eq({d[1] for d in rd}, {"b%06d" % j for j in range(N)}, "the snapshot holds every item")
    per = {}
    for d in rd:
        per[d[1]] = per.get(d[1], 0) + 1
    again = sum(1 for v in per.values() if v > 1)
    h.check(len(rd) > N and again == len(rd) - N,
            "the interrupted snapshot's reads came first, then the whole one (%d items read twice)" % again)
    h.check(all(v <= 2 for v in per.values()), "no item read more than twice")
    in_order(dec, "per item, nothing goes back in LSN across the restart")
    h.eq(last_state(dec), scan(ddb, "big"), "the topic matches the table")

    srv.stop()
    srv = None

    # ---- E: the JSON format ----
    cfg2 = os.path.join(work, "json.yaml")
    with open(cfg2, "w") as f:
        f.write("region: eu-west-1\nkafka:\n  brokers: %s\n  format: json\n" % BOOT)
    srv = Server(config=cfg2, data_dir=os.path.join(work, "data-json")).start()
    ddb = clients(srv)
    create(ddb, "docs", False)
    load(ddb, "docs", 60, prefix="d")
    stream(ddb, "docs", True)
    wait_snapshot(srv, 60)
    msgs = read_topic("eu-west-1.docs")
    recs = [json.loads(v) for p, o, k, v, hd in msgs if hd.get("snapshot") == b"true"]
    h.eq(len(recs), 60, "JSON: one read per item")
    h.check(all(r["eventName"] == "INSERT" and r["awsRegion"] == "eu-west-1" and
                r["dynamodb"]["NewImage"]["pk"] == r["dynamodb"]["Keys"]["pk"] and
                r["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES" for r in recs),
            "JSON reads are INSERT records with the item as NewImage (first: %r)" % (recs[0] if recs else None,))
    h.eq(len({r["eventID"] for r in recs}), 60, "each read has its own eventID")
    h.eq(len({r["dynamodb"]["SequenceNumber"] for r in recs}), 1, "and the snapshot's sequence number")
    srv.stop()
    srv = None

    # ---- F: a sink added after retention trimmed the WAL ----
    cfg3 = os.path.join(work, "trim.yaml")
    trim = "wal:\n  segment_size: 1MiB\nstreams:\n  retention_s: 2\nretention:\n  interval_s: 1\n"
    with open(cfg3, "w") as f:
        f.write(trim)
    srv = Server(config=cfg3, data_dir=os.path.join(work, "data-trim")).start()
    ddb = clients(srv)
    create(ddb, "old", True)
    for i in range(0, 6000, 25):
        reqs = [{"PutRequest": {"Item": {"pk": {"S": "o%06d" % j}, "pad": {"S": "y" * 400}}}}
                for j in range(i, i + 25)]
        ddb.batch_write_item(RequestItems={"old": reqs})
    end = time.time() + 60
    while time.time() < end and srv.metrics()["tributary_wal_first_lsn"] <= 1:
        time.sleep(0.5)
    first = srv.metrics()["tributary_wal_first_lsn"]
    h.check(first > 1, "retention trimmed the WAL (it starts at LSN %d)" % first)
    srv.stop()
    with open(cfg3, "w") as f:
        f.write(trim + "region: ap-south-1\nkafka:\n  brokers: %s\n" % BOOT)
    srv.start()
    ddb = clients(srv)
    m = wait_snapshot(srv, 6000)
    h.eq(m.get("tributary_kafka_snapshot_items_total"), 6000.0, "the table older than the WAL went as a snapshot")
    dec = decoded(read_topic("ap-south-1.old"))
    h.eq(len([d for d in dec if d[2] == "r"]), 6000, "one read per item")
    h.eq(len([d for d in dec if d[2] != "r"]), 0, "and no change from the part of the WAL that is left")
    h.eq(last_state(dec), scan(ddb, "old"), "the topic holds the table")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    if srv:
        srv.stop()
    try:
        mock.stdin.write("quit\n")
        mock.stdin.flush()
        mock.wait(timeout=10)
    except Exception:  # noqa: BLE001
        mock.kill()
sys.exit(h.done())
