"""Honest retention against `tributary serve`, with 1 MiB WAL segments and a
3-second stream retention:
  A. a healthy file sink and an idle table with a stream: old segments are
     removed once past retention and delivered (the idle stream does not pin
     the WAL); reading trimmed stream data gives TrimmedDataAccessException,
     TRIM_HORIZON starts at the oldest kept record; after kill -9 every item
     is still there (the store was made durable before the WAL went).
  B. a file sink that cannot write: the WAL is kept for it (metrics say so)
     until it is further behind than retention.max_sink_lag, then it is
     marked broken, loudly, and the WAL is trimmed."""
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("retention")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)


def server(name, extra=""):
    work = tempfile.mkdtemp(prefix="ret-%s-" % name, dir=base)
    cfg = os.path.join(work, "tributary.yaml")
    with open(cfg, "w") as f:
        f.write("wal:\n  segment_size: 1MiB\nstreams:\n  retention_s: 3\n  rollover_s: 2\n"
                "retention:\n  interval_s: 1\n  max_sink_lag: 6MiB\n"
                "sinks:\n  file:\n    dir: %s/audit\n%s" % (work, extra))
    return Server(config=cfg, data_dir=os.path.join(work, "data")), work


def clients(srv):
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local", config=botocore.config.Config(retries={"max_attempts": 1}))
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw)




def segments(work):
    return len(glob.glob(os.path.join(work, "data", "wal", "wal-*.seg")))


def mk(ddb, name, stream=True):
    kw = {}
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], **kw)


def fill(ddb, table, n, prefix):
    for i in range(n):
        pad = os.urandom(1500).hex()  # 3000 bytes that do not compress
        ddb.put_item(TableName=table, Item={"pk": {"S": "%s%05d" % (prefix, i)}, "pad": {"S": pad}})


def wait_for(cond, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.25)
    h.check(False, "timed out waiting: " + what)
    return False


srv = None
try:
    # ---------------- A ----------------
    srv, work = server("a")
    srv.start()
    ddb, strm = clients(srv)
    mk(ddb, "busy")
    mk(ddb, "idle")
    arn = ddb.describe_table(TableName="busy")["Table"]["LatestStreamArn"]
    shard = strm.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    early = strm.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    first_recs = strm.get_records(ShardIterator=early, Limit=1)  # a valid, early position
    fill(ddb, "busy", 1500, "a")          # ~4.5 MB of WAL: several segments
    made = segments(work) + srv.metrics().get("tributary_retention_segments_removed_total", 0)
    h.check(made >= 4, "the WAL grew to several segments (%d)" % made)
    # Past retention and delivered (the idle stream has nothing): trimmed.
    time.sleep(3.5)
    fill(ddb, "busy", 300, "b")           # new segments after the horizon
    wait_for(lambda: srv.metrics().get("tributary_retention_segments_removed_total", 0) >= 2, 20,
             "retention removes old segments")
    m = srv.metrics()
    h.check(m["tributary_wal_first_lsn"] > 1, "the WAL now starts later (LSN %d)" % m["tributary_wal_first_lsn"])
    h.check(segments(work) < 6, "fewer segment files on disk (%d)" % segments(work))
    h.eq(m.get('tributary_sink_broken{sink="file"}'), 0.0, "the healthy sink is not broken")
    # `history` says the WAL's beginning is gone rather than show a short
    # history as the whole one
    import subprocess
    hp = subprocess.run([os.environ["TRB_BIN"], "--data-dir", os.path.join(work, "data"), "history",
                         "busy", "--key", '{"pk":{"S":"b00001"}}'], capture_output=True, text=True,
                        timeout=60)
    h.check(hp.returncode == 0 and "older versions were removed by retention" in hp.stderr,
            "history notes the trimmed WAL: %r" % hp.stderr.strip())
    # Writes that keep coming to a table without a stream (nothing for the
    # sink): its checkpoint still moves (a heartbeat while they come), so they
    # do not pin the WAL.
    mk(ddb, "nostream", stream=False)
    import threading
    stop_ns = threading.Event()

    def ns_writer():
        i = 0
        while not stop_ns.is_set():
            ddb2, _ = clients(srv)
            for _ in range(50):
                ddb2.put_item(TableName="nostream", Item={"pk": {"S": "n%06d" % i}})
                i += 1
    th = threading.Thread(target=ns_writer)
    th.start()
    time.sleep(0.5)
    lsn_then = srv.metrics()["tributary_wal_last_lsn"]
    moved = wait_for(lambda: srv.metrics().get('tributary_sink_checkpoint_lsn{sink="file"}', 0) > lsn_then,
                     5, "the file sink's checkpoint moves while a stream-less table is written")
    still = srv.metrics()["tributary_wal_last_lsn"] > lsn_then + 50
    stop_ns.set()
    th.join()
    h.check(moved and still, "the checkpoint moved past LSN %d while the writes went on" % lsn_then)
    # Trimmed stream data.
    try:
        strm.get_records(ShardIterator=early)
        h.check(False, "reading trimmed data should fail")
    except strm.exceptions.TrimmedDataAccessException:
        h.check(True, "TrimmedDataAccessException for an iterator below the trim point")
    d = strm.describe_stream(StreamArn=arn)["StreamDescription"]
    got = 0
    for s in d["Shards"]:
        it = strm.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = strm.get_records(ShardIterator=it, Limit=1000)["Records"]
        got += len(recs)
        h.check(all(int(r["dynamodb"]["SequenceNumber"]) - 10 ** 20 >= m["tributary_wal_first_lsn"] for r in recs),
                "TRIM_HORIZON reads only kept records")
    h.check(got > 0, "kept records are readable")
    if first_recs["Records"]:
        sn = first_recs["Records"][0]["dynamodb"]["SequenceNumber"]
        try:
            strm.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    SequenceNumber=sn)
            h.check(False, "an iterator at a trimmed sequence number should fail")
        except (strm.exceptions.TrimmedDataAccessException, strm.exceptions.ResourceNotFoundException):
            h.check(True, "a trimmed sequence number is refused")
    # Nothing acknowledged is lost, even with the WAL trimmed and a kill -9.
    srv.kill9()
    srv.start()
    ddb, strm = clients(srv)
    n = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName="busy", Select="COUNT"))
    h.eq(n, 1800, "every item is there after trimming and kill -9")
    h.eq(ddb.describe_table(TableName="busy")["Table"]["LatestStreamArn"], arn, "the stream survives")
    h.check(any(s["ShardId"] for s in strm.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]),
            "its shards are still described after the restart")
    ddb.put_item(TableName="busy", Item={"pk": {"S": "after"}})
    found = False
    for s in strm.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        if "EndingSequenceNumber" in s["SequenceNumberRange"]:
            continue
        it = strm.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for _ in range(50):
            r = strm.get_records(ShardIterator=it)
            found |= any(x["dynamodb"]["Keys"]["pk"]["S"] == "after" for x in r["Records"])
            if not r["Records"] or "NextShardIterator" not in r:
                break
            it = r["NextShardIterator"]
    h.check(found, "a stream seeded from the catalog after trimming gets new records")
    h.eq(srv.stop(), 0, "clean stop")
    srv = None

    # ---------------- B ----------------
    srv, work = server("b")
    os.makedirs(os.path.join(work, "audit"))
    open(os.path.join(work, "audit", "stuck"), "w").close()  # a file where its directory goes
    srv.start()
    ddb, strm = clients(srv)
    mk(ddb, "stuck")
    fill(ddb, "stuck", 900, "c")   # ~2.7 MB: past retention soon, not past the lag cap
    time.sleep(4)
    m = srv.metrics()
    h.eq(m.get('tributary_sink_failing{sink="file"}'), 1.0, "the sink is failing")
    h.eq(m.get("tributary_retention_segments_removed_total"), 0.0, "the WAL is kept for the failing sink")
    h.eq(m.get("tributary_retention_held_by_sinks"), 1.0, "metrics say a sink holds the WAL")
    fill(ddb, "stuck", 1500, "d")  # now past the 6 MiB cap
    wait_for(lambda: srv.metrics().get('tributary_sink_broken{sink="file"}') == 1.0, 20,
             "the sink is marked broken past the lag cap")
    wait_for(lambda: srv.metrics().get("tributary_retention_segments_removed_total", 0) >= 1, 20,
             "with the broken sink out of the way, the WAL is trimmed")
    h.check("marking it broken" in open(srv.log_path).read(), "the log says the sink was marked broken")
    h.eq(srv.stop(), 0, "clean stop")
    # It never delivered anything (no checkpoint): once its directory can be
    # made it starts at the oldest record the WAL kept, saying so, instead of
    # staying broken for good.
    os.remove(os.path.join(work, "audit", "stuck"))
    log0 = os.path.getsize(srv.log_path) if os.path.exists(srv.log_path) else 0
    srv.start()
    m = srv.metrics()
    first = m["tributary_wal_first_lsn"]
    h.check(first > 1, "the WAL was trimmed (starts at LSN %d)" % first)
    wait_for(lambda: srv.metrics().get('tributary_sink_checkpoint_lsn{sink="file"}', 0) >=
             srv.metrics()["tributary_wal_last_lsn"], 30, "the sink without a checkpoint catches up")
    m = srv.metrics()
    h.eq(m.get('tributary_sink_broken{sink="file"}'), 0.0, "the sink without a checkpoint is not broken")
    with open(srv.log_path) as f:
        f.seek(log0)
        h.check("has no checkpoint and the WAL starts at LSN" in f.read(),
                "the log says where the sink without a checkpoint starts")
    lsns = []
    for fn in glob.glob(os.path.join(work, "audit", "stuck", "*.jsonl")):
        for line in open(fn):
            lsns.append(int(json.loads(line)["dynamodb"]["SequenceNumber"]) - 10 ** 20)
    h.check(lsns and min(lsns) >= first and len(lsns) == len(set(lsns)),
            "its audit file starts at the WAL's first record (%d records from LSN %s)" %
            (len(lsns), min(lsns) if lsns else None))
    h.eq(srv.stop(), 0, "clean stop")
    srv = None
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    if srv:
        srv.stop()
sys.exit(h.done())
