"""The audit file sink under kill -9: writers change items while the server
is killed with SIGKILL at random moments, at least 10 times, and restarted.
At the end the audit files must hold every committed change exactly once
(the same records, byte for byte in content, that the Streams API serves),
every acknowledged write among them, in order per item, with no partial
line; tables without a stream write nothing; and the checkpoint moves past
records of tables without a stream (heartbeats)."""
import glob
import json
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server, stream_records  # noqa: E402

h = Harness("file_sink")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="filesink-", dir=base)
audit = os.path.join(work, "audit")
cfg = os.path.join(work, "tributary.yaml")
with open(cfg, "w") as f:
    f.write("streams:\n  shards: 2\n  rollover_s: 3\nsinks:\n  file:\n    dir: %s\n"
            "    rotate_bytes: 1MiB\n" % audit)
srv = Server(config=cfg, data_dir=os.path.join(work, "data"))
seed = int(os.environ.get("TRB_TEST_SEED", random.randrange(1 << 30)))
print("TRB_TEST_SEED=%d" % seed, flush=True)
rnd = random.Random(seed)
KILLS = int(os.environ.get("TRB_FILE_SINK_KILLS", "10"))


def clients():
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local",
              config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw)


acked = {}      # key -> list of ("put"|"del", n) in acknowledgement order
counter = [0]
lock = threading.Lock()


def writer(wid, stop):
    ddb, _ = clients()
    rw = random.Random(seed * 100 + wid + counter[0])
    while not stop.is_set():
        k = "w%d-%d" % (wid, rw.randrange(6))
        with lock:
            counter[0] += 1
            n = counter[0]
        try:
            if rw.random() < 0.75:
                ddb.put_item(TableName="audited", Item={"pk": {"S": k}, "n": {"N": str(n)}})
                op = ("put", n)
            else:
                r = ddb.delete_item(TableName="audited", Key={"pk": {"S": k}}, ReturnValues="ALL_OLD")
                if "Attributes" not in r:
                    continue  # deleting nothing is no change
                op = ("del", n)
        except Exception:  # noqa: BLE001  the server was killed under us
            return
        acked.setdefault(k, []).append(op)
        try:
            ddb.put_item(TableName="plain", Item={"pk": {"S": k}, "n": {"N": str(n)}})
        except Exception:  # noqa: BLE001
            return


try:
    srv.start()
    ddb, strm = clients()
    ddb.create_table(TableName="audited", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.create_table(TableName="plain", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    for round_ in range(KILLS):
        stop = threading.Event()
        ths = [threading.Thread(target=writer, args=(w, stop)) for w in range(4)]
        for th in ths:
            th.start()
        time.sleep(rnd.uniform(0.3, 1.5))
        srv.kill9()
        stop.set()
        for th in ths:
            th.join()
        srv.start()
    ddb, strm = clients()
    # serve runs its stream threads streams.priority_boost (default 5) nice
    # levels above the request threads, when it may (root may).
    # (threads name themselves once running: wait until all have)
    want_comms = {"trb-sink", "trb-streams", "MHD-worker", "trb-commit"}
    for _ in range(100):
        nices = {}
        for t in glob.glob("/proc/%d/task/*" % srv.proc.pid):
            try:
                comm = open(t + "/comm").read().strip()
                nice = int(open(t + "/stat").read().rsplit(")", 1)[1].split()[16])
            except OSError:
                continue
            nices.setdefault(comm, set()).add(nice)
        if want_comms <= set(nices):
            break
        time.sleep(0.05)
    main_nice = nices.get("tributary", {0}).copy().pop()
    up = max(main_nice - 5, -20) if os.geteuid() == 0 else main_nice
    h.eq(nices.get("trb-sink"), {up}, "the file sink's delivery thread runs 5 nice levels up")
    h.eq(nices.get("trb-streams"), {up}, "the stream index thread runs 5 nice levels up")
    h.eq(nices.get("MHD-worker"), {main_nice}, "the HTTP threads run at the server's priority")
    h.eq(nices.get("trb-commit"), {main_nice}, "the commit thread runs at the server's priority")
    # A final quiet period: only the table without a stream changes.
    for i in range(20):
        ddb.put_item(TableName="plain", Item={"pk": {"S": "tick%d" % i}})
    last_lsn = None
    deadline = time.time() + 20
    while time.time() < deadline:
        ck = json.load(open(os.path.join(audit, "checkpoint.json")))
        if last_lsn == ck["lsn"]:
            break
        last_lsn = ck["lsn"]
        time.sleep(1.5)
    h.eq(srv.stop(), 0, "clean stop")
    srv.start()
    ddb, strm = clients()

    # ---- what the Streams API says was committed ----
    stream_recs, shards = stream_records(ddb, strm, "audited")
    h.check(len(shards) > 2, "the stream rolled over during the test (%d shards)" % len(shards))

    # ---- the audit files ----
    lines, partial = [], 0
    for path in sorted(glob.glob(os.path.join(audit, "audited", "*.jsonl"))):
        data = open(path, "rb").read()
        if data and not data.endswith(b"\n"):
            partial += 1
        for ln in data.split(b"\n"):
            if ln:
                lines.append(json.loads(ln))
    h.eq(partial, 0, "no partial last line")
    h.eq(glob.glob(os.path.join(audit, "plain", "*")), [], "no file for a table without a stream")
    sns = [x["dynamodb"]["SequenceNumber"] for x in lines]
    h.eq(len(sns), len(set(sns)), "every record in the audit files once (%d records)" % len(sns))
    h.eq(sorted(sns, key=int), sorted(stream_recs, key=int), "the audit files hold exactly the committed changes")
    same = all(x["eventName"] == stream_recs[x["dynamodb"]["SequenceNumber"]]["eventName"] and
               x["dynamodb"].get("NewImage") == stream_recs[x["dynamodb"]["SequenceNumber"]]["dynamodb"].get("NewImage")
               for x in lines if x["dynamodb"]["SequenceNumber"] in stream_recs)
    h.check(same, "audit records equal the stream's")
    per = {}
    for x in lines:
        per.setdefault(x["dynamodb"]["Keys"]["pk"]["S"], []).append(x)
    h.check(all([int(r["dynamodb"]["SequenceNumber"]) for r in v] ==
                sorted(int(r["dynamodb"]["SequenceNumber"]) for r in v) for v in per.values()),
            "per-item order in the files")
    missing = 0
    for k, ops in acked.items():
        seen = [("del", None) if r["eventName"] == "REMOVE" else ("put", int(r["dynamodb"]["NewImage"]["n"]["N"]))
                for r in per.get(k, [])]
        # Each acknowledged change is there, in acknowledgement order (a write that was
        # in flight at a kill may be there too, unacknowledged).
        j = 0
        for op in ops:
            while j < len(seen) and not (seen[j][0] == op[0] and (op[0] == "del" or seen[j][1] == op[1])):
                j += 1
            if j == len(seen):
                missing += 1
                break
            j += 1
    h.eq(missing, 0, "every acknowledged write is in the audit files, in order (%d keys, %d writes)"
         % (len(acked), sum(len(v) for v in acked.values())))
    ck = json.load(open(os.path.join(audit, "checkpoint.json")))
    h.eq((ck["format"], ck["version"]), ("tributary-file-sink", 1), "checkpoint format")
    max_audit = max(int(s) - 10 ** 20 for s in sns)
    h.check(int(ck["lsn"]) > max_audit, "heartbeats moved the checkpoint past the last audited record")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
sys.exit(h.done())
