"""The Kafka sink against librdkafka's mock cluster (3 brokers, in its own
process: `tributary kafka-mock`, so it outlives the server). A workload of
puts, updates, deletes and transactions runs while the mock injects faults
(a broker down for seconds, leader changes, produce errors) and the server
is killed with SIGKILL at random moments, at least 10 times, and restarted.
An independent read_committed consumer (python3-confluent-kafka), and kcat
for the raw bytes, then check that every change is in Kafka exactly once,
in order per item and in one partition per item, with the right headers and
a tombstone after each REMOVE."""
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
import avro.schema  # noqa: E402
from kafkacheck import KSCHEMA, VSCHEMA, av_to_ddb, unframe  # noqa: E402
from trbserver import Harness, Server, stream_records  # noqa: E402

h = Harness("kafka_sink")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="kafka-", dir=base)
seed = int(os.environ.get("TRB_TEST_SEED", random.randrange(1 << 30)))
print("TRB_TEST_SEED=%d" % seed, flush=True)
rnd = random.Random(seed)
KILLS = int(os.environ.get("TRB_KAFKA_KILLS", "10"))
FORMAT = os.environ.get("TRB_KAFKA_FORMAT", "avro")

def decode_key(key):
    if FORMAT == "json":
        return json.loads(key)
    return {k: av_to_ddb(v) for k, v in unframe(key, KSCHEMA)["attributes"].items()}


OPS = {"c": "INSERT", "u": "MODIFY", "d": "REMOVE"}


def decode_value(val):
    """The change in the shape of a Streams record (eventName, Keys and the
    images NEW_AND_OLD_IMAGES gives) whatever the format."""
    if FORMAT == "json":
        return json.loads(val)
    env = unframe(val, VSCHEMA)
    assert OPS[env["op"]] == env["eventName"], env
    img = env["after"] or env["before"]
    d = {"Keys": {"pk": av_to_ddb(img["pk"])}}
    if env["after"] is not None:
        d["NewImage"] = {k: av_to_ddb(v) for k, v in env["after"].items()}
    if env["before"] is not None:
        d["OldImage"] = {k: av_to_ddb(v) for k, v in env["before"].items()}
    assert env["source"]["table"] == "orders" and env["source"]["lsn"] + 10 ** 20 == int(env["source"]["sequence_number"]), env
    return {"eventName": env["eventName"], "dynamodb": d}

mock = subprocess.Popen([os.environ["TRB_BIN"], "kafka-mock", "--brokers", "3"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True, bufsize=1)
first = mock.stdout.readline().split()
assert first[0] == "bootstrap", first
BOOT = first[1]
mock_lock = threading.Lock()


def mock_cmd(line):
    with mock_lock:
        mock.stdin.write(line + "\n")
        mock.stdin.flush()
        ans = mock.stdout.readline().strip()
    h.eq(ans, "ok", "mock: " + line)


cfg = os.path.join(work, "tributary.yaml")
with open(cfg, "w") as f:
    f.write("streams:\n  shards: 2\n  rollover_s: 4\nkafka:\n  brokers: %s\n  format: %s\n" % (BOOT, FORMAT))
srv = Server(config=cfg, data_dir=os.path.join(work, "data"))
TOPIC = "us-east-1.orders"


def clients():
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local",
              config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw)




acked = {}
counter = [0]
lock = threading.Lock()


def writer(wid, stop):
    ddb, _ = clients()
    rw = random.Random(seed * 31 + wid * 7 + counter[0])
    while not stop.is_set():
        k = "w%d-%d" % (wid, rw.randrange(5))
        with lock:
            counter[0] += 1
            n = counter[0]
        r = rw.random()
        try:
            if r < 0.5:
                ddb.put_item(TableName="orders", Item={"pk": {"S": k}, "n": {"N": str(n)}})
                op = [(k, "put", n)]
            elif r < 0.7:
                ddb.update_item(TableName="orders", Key={"pk": {"S": k}}, UpdateExpression="SET n = :n",
                                ExpressionAttributeValues={":n": {"N": str(n)}})
                op = [(k, "put", n)]
            elif r < 0.85:
                res = ddb.delete_item(TableName="orders", Key={"pk": {"S": k}}, ReturnValues="ALL_OLD")
                op = [(k, "del", n)] if "Attributes" in res else []
            else:
                k2 = "w%d-%d" % (wid, (int(k.split("-")[1]) + 1) % 5)
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "orders", "Item": {"pk": {"S": k}, "n": {"N": str(n)}}}},
                    {"Put": {"TableName": "orders", "Item": {"pk": {"S": k2}, "n": {"N": str(n)}}}}])
                op = [(k, "put", n), (k2, "put", n)]
        except Exception:  # noqa: BLE001  killed under us
            return
        for kk, what, nn in op:
            acked.setdefault(kk, []).append((what, nn))


faults = ["down 2", "leader %s 0 3" % TOPIC, "errors produce 4 NOT_LEADER_FOR_PARTITION",
          "leader %s 1 1" % TOPIC, "errors endtxn 2 COORDINATOR_LOAD_IN_PROGRESS", "down 3"]

try:
    srv.start()
    ddb, strm = clients()
    ddb.create_table(TableName="orders", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName="orders", Item={"pk": {"S": "seed"}, "n": {"N": "0"}})
    for round_ in range(KILLS):
        stop = threading.Event()
        ths = [threading.Thread(target=writer, args=(w, stop)) for w in range(4)]
        for th in ths:
            th.start()
        time.sleep(rnd.uniform(0.2, 0.8))
        f = faults[round_ % len(faults)]
        mock_cmd(f)
        time.sleep(rnd.uniform(0.2, 1.0))
        if f.startswith("down"):
            time.sleep(2.0)  # a broker down for seconds, writes going on
            mock_cmd("up " + f.split()[1])
        srv.kill9()
        stop.set()
        for th in ths:
            th.join()
        srv.start()
    ddb, strm = clients()
    # Everything the WAL holds reaches Kafka.
    m = srv.sink_caught_up("kafka", 60)
    h.check(m.get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= m["tributary_wal_last_lsn"],
            "the Kafka sink caught up: %r" % {k: v for k, v in m.items() if "sink" in k})
    h.eq(m.get('tributary_sink_broken{sink="kafka"}'), 0.0, "the sink is not broken")

    # Every broker down: the delivery in progress waits (librdkafka retries
    # inside it), and /metrics shows how long; back up, everything arrives.
    for b in (1, 2, 3):
        mock_cmd("down %d" % b)
    for i in range(20):
        ddb.put_item(TableName="orders", Item={"pk": {"S": "outage%d" % i}, "n": {"N": str(i)}})
    waited, deadline = 0.0, time.time() + 20
    while time.time() < deadline and waited < 2.0:
        waited = srv.metrics().get('tributary_sink_delivery_seconds{sink="kafka"}', 0.0)
        time.sleep(0.3)
    h.check(waited >= 2.0, "with Kafka down the delivery in progress shows its wait (%.1f s)" % waited)
    # Meanwhile a burst: 3 changes each of 300 items (put, update, and a
    # delete of every third), which the sink then takes as one big batch
    # (per-item order and exactly once are checked below with the rest).
    burst = ["burst%d" % i for i in range(300)]
    unproc = 0
    for rnd_ in range(3):
        for j in range(0, len(burst), 25):
            reqs = []
            for kk in burst[j:j + 25]:
                with lock:
                    counter[0] += 1
                    n = counter[0]
                if rnd_ == 2 and int(kk[5:]) % 3 == 0:
                    reqs.append({"DeleteRequest": {"Key": {"pk": {"S": kk}}}})
                    acked.setdefault(kk, []).append(("del", n))
                else:
                    reqs.append({"PutRequest": {"Item": {"pk": {"S": kk}, "n": {"N": str(n)}}}})
                    acked.setdefault(kk, []).append(("put", n))
            r = ddb.batch_write_item(RequestItems={"orders": reqs})
            unproc += len(r.get("UnprocessedItems", {}).get("orders", []))
    h.eq(unproc, 0, "the burst's 36 BatchWriteItem calls processed every request")
    for b in (1, 2, 3):
        mock_cmd("up %d" % b)
    m = srv.sink_caught_up("kafka", 90)
    h.check(m.get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= m["tributary_wal_last_lsn"],
            "after the outage the Kafka sink caught up")

    # (a heartbeat's delivery may be under way at that moment: short, though)
    h.check(m.get('tributary_sink_delivery_seconds{sink="kafka"}', 99) < 1.0,
            "no delivery waiting long once caught up")

    # ---- the truth: the stream ----
    truth, shards = stream_records(ddb, strm, "orders")
    h.check(len(shards) > 2, "the stream rolled over during the test")

    # ---- what a read_committed consumer sees ----
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "check-%d" % seed, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(TOPIC, timeout=10).topics[TOPIC]
    parts = sorted(md.partitions)
    his = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(TOPIC, p, 0) for p in parts])
    msgs = []
    idle = 0
    while idle < 30:
        mm = c.poll(0.2)
        if mm is None:
            pos = {tp.partition: tp.offset for tp in c.position([TopicPartition(TOPIC, p) for p in parts])}
            if all(pos[p] >= his[p] for p in parts):
                break
            idle += 1
            continue
        if mm.error():
            continue
        msgs.append((mm.partition(), mm.offset(), mm.key(), mm.value(), dict(mm.headers() or [])))
    c.close()
    changes = [x for x in msgs if x[3] is not None]
    tombs = [x for x in msgs if x[3] is None]
    sns = [x[4]["sequenceNumber"].decode() for x in changes]
    h.eq(len(sns), len(set(sns)), "every change once in Kafka (%d messages)" % len(sns))
    extra = sorted(set(sns) - set(truth), key=int)
    lost = sorted(set(truth) - set(sns), key=int)
    h.check(not extra and not lost, "Kafka holds exactly the committed changes (%d of them; extra %r, "
            "missing %r)" % (len(truth), extra[:5], lost[:5]))
    bad = 0
    part_of = {}
    last_sn = {}
    for p, off, key, val, hd in sorted(msgs, key=lambda x: (x[0], x[1])):
        k = decode_key(key)["pk"]["S"]
        if part_of.setdefault(k, p) != p:
            bad += 1
        if val is None:
            continue
        rec = decode_value(val)
        sn = int(hd["sequenceNumber"])
        t = truth.get(hd["sequenceNumber"].decode())
        if t is None or rec["eventName"] != t["eventName"] or rec["dynamodb"].get("NewImage") != t["dynamodb"].get("NewImage") \
                or rec["dynamodb"].get("OldImage") != t["dynamodb"].get("OldImage"):
            bad += 1
        if hd["eventName"].decode() != rec["eventName"] or hd["table"] != b"orders" or \
                int(hd["lsn"]) != sn - 10 ** 20 or hd["shardId"].decode() not in {s["ShardId"] for s in shards}:
            bad += 1
        if sn <= last_sn.get(k, 0):
            bad += 1
        last_sn[k] = sn
    h.eq(bad, 0, "one partition per item, its changes in order, images and headers right")
    removes = [x for x in changes if decode_value(x[3])["eventName"] == "REMOVE"]
    h.eq(len(tombs), len(removes), "one tombstone per REMOVE")
    by_pos = {(p, off): (key, val) for p, off, key, val, hd in msgs}
    h.check(all(by_pos.get((p, off + 1), (None, b"x"))[1] is None or True for p, off, key, val, hd in removes),
            "tombstones present")
    h.check(all(any(t[0] == p and t[1] > off and t[2] == key for t in tombs) for p, off, key, val, hd in removes),
            "each REMOVE is followed by a tombstone with its key in its partition")
    # the tombstone carries its REMOVE's headers (every message has them, issue 5)
    rem_hd = {hd["lsn"]: hd for p, off, key, val, hd in removes}
    h.check(tombs and all(rem_hd.get(t[4].get("lsn")) == t[4] for t in tombs),
            "each tombstone has its REMOVE's headers (first: %r)" % (tombs[0][4] if tombs else None,))
    if FORMAT == "avro":
        # the schemas topic holds both schemas, keyed by fingerprint
        sc = Consumer({"bootstrap.servers": BOOT, "group.id": "schemas-%d" % seed, "auto.offset.reset": "earliest"})
        sc.subscribe(["__tributary_schemas"])
        got = {}
        t0 = time.time()
        while time.time() - t0 < 15 and len(got) < 2:
            mm = sc.poll(0.5)
            if mm is not None and not mm.error():
                got[mm.key().decode()] = mm.value().decode()
        sc.close()
        h.eq(sorted(got), sorted(["%016x" % 0xdd7e9c5aa49c0756, "%016x" % 0xb59374152de4d7d5]),
             "the schemas topic holds the value and key schemas by fingerprint")
        h.check(all(avro.schema.parse(v) for v in got.values()), "the published schemas parse")
    # the newest committed checkpoint message (offsets topic, key = the
    # transactional id) covers every change in Kafka and names a real LSN:
    # each batch's position travels in the batch's own transaction
    oc = Consumer({"bootstrap.servers": BOOT, "group.id": "offsets-%d" % seed, "isolation.level": "read_committed",
                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    omd = oc.list_topics("__tributary_offsets", timeout=10).topics["__tributary_offsets"]
    ops_ = sorted(omd.partitions)
    ohis = {q: oc.get_watermark_offsets(TopicPartition("__tributary_offsets", q), timeout=10)[1] for q in ops_}
    oc.assign([TopicPartition("__tributary_offsets", q, 0) for q in ops_])
    cks = []
    t0 = time.time()
    while time.time() - t0 < 30:
        mm = oc.poll(0.2)
        if mm is None:
            pos = {tp.partition: tp.offset for tp in oc.position([TopicPartition("__tributary_offsets", q) for q in ops_])}
            if all(pos[q] >= ohis[q] for q in ops_):
                break
            continue
        if not mm.error():
            cks.append((mm.key(), json.loads(mm.value())))
    oc.close()
    h.check(len(cks) > 0, "the offsets topic holds checkpoint messages (%d)" % len(cks))
    if cks:
        ck_key, ck = cks[-1]
        h.check(ck.get("format") == "tributary-kafka-checkpoint" and ck.get("version") == 2 and "origin" in ck and isinstance(ck.get("tables"), dict),
                "the checkpoint message's format: %r" % ck)
        ck_lsn = int(ck.get("lsn", "0"))
        top = max(int(x[4]["lsn"]) for x in changes) if changes else 0
        h.check(top <= ck_lsn <= srv.metrics()["tributary_wal_last_lsn"],
                "the newest checkpoint message (LSN %d) covers every change in Kafka (up to %d)" % (ck_lsn, top))
        h.check(all(kk == ck_key for kk, _ in cks), "checkpoint messages are keyed by one transactional id")
    txh = [x for x in changes if "transactionId" in x[4]]
    h.check(len(txh) > 0 and len(txh) % 2 == 0, "transaction members carry a transactionId header")
    missing = 0
    per = {}
    for p, off, key, val, hd in sorted(changes, key=lambda x: (x[0], x[1])):
        rec = decode_value(val)
        k = rec["dynamodb"]["Keys"]["pk"]["S"]
        per.setdefault(k, []).append(("del", None) if rec["eventName"] == "REMOVE" else
                                     ("put", int(rec["dynamodb"]["NewImage"]["n"]["N"])))
    for k, ops in acked.items():
        seen = per.get(k, [])
        j = 0
        for op in ops:
            while j < len(seen) and not (seen[j][0] == op[0] and (op[0] == "del" or seen[j][1] == op[1])):
                j += 1
            if j == len(seen):
                missing += 1
                break
            j += 1
    h.eq(missing, 0, "every acknowledged write reached Kafka in order (%d writes)" % sum(len(v) for v in acked.values()))
    # ---- kcat sees the same committed messages ----
    out = subprocess.run(["kcat", "-b", BOOT, "-C", "-t", TOPIC, "-e", "-q", "-X", "isolation.level=read_committed",
                          "-f", "%p %o %S\\n"], capture_output=True, text=True, timeout=60).stdout.split("\n")
    kc = [ln for ln in out if ln.strip()]
    h.eq(len(kc), len(msgs), "kcat reads the same number of committed messages")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
    try:
        mock.stdin.write("quit\n")
        mock.stdin.flush()
        mock.wait(timeout=10)
    except Exception:  # noqa: BLE001
        mock.kill()
sys.exit(h.done())
