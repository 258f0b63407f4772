"""Time to Live end to end: with TTL enabled (UpdateTimeToLive, boto3), the
server's sweeper (ttl.interval_s 1) deletes exactly the items whose TTL
attribute is a Number of epoch seconds that has passed, by at most five
years; strings, future times, older times and items without it stay. The
deletes:
  - leave the table and its GSI (Scan, Query on the index) without them;
  - are REMOVE records with OldImage and userIdentity {Type: Service,
    PrincipalId: dynamodb.amazonaws.com} in GetRecords (boto3 parses it),
    while a client's DeleteItem has none;
  - are in the audit file sink's lines the same way;
  - reach Kafka (librdkafka's mock cluster, read_committed consumer,
    python3-avro) as op "d" with userIdentity "dynamodb.amazonaws.com"
    (null on the client's delete);
  - are history rows in PostgreSQL with user_identity
    dynamodb.amazonaws.com (the column added to a history table an older
    version made, which the test creates beforehand);
  - consume no write capacity: a table provisioned with 1 WCU (whose
    client writes are throttled) loses 13 items in one sweep;
  - are counted in /metrics (tributary_ttl_*).
An item whose TTL is moved to the future before it expires is kept; TTL
turned off stops the deletes."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from kafkacheck import VSCHEMA, read_topic, unframe  # noqa: E402
from pgserver import PgServer  # noqa: E402
from trbserver import Harness, Server, stream_records  # noqa: E402

h = Harness("ttl")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="ttl-", dir=base)
IDENTITY = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}

mock = subprocess.Popen([os.environ["TRB_BIN"], "kafka-mock", "--brokers", "3"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True, bufsize=1)
BOOT = mock.stdout.readline().split()[1]
pg = PgServer().start()
# the history table as versions before user_identity made it
pg.query('CREATE TABLE public.sessions_history (lsn bigint PRIMARY KEY, event_name text NOT NULL,'
         ' sequence_number text NOT NULL, commit_time timestamptz NOT NULL, transaction_id text,'
         ' shard_id text NOT NULL, "pk" text NOT NULL, old_image jsonb, new_image jsonb)')
audit = os.path.join(work, "audit")
cfg = os.path.join(work, "tributary.yaml")
with open(cfg, "w") as f:
    f.write("ttl:\n  interval_s: 1\n  scan_rate: 0\nsinks:\n  file:\n    dir: %s\n"
            "kafka:\n  brokers: %s\npostgres:\n  conninfo: \"%s\"\n  mode: both\n"
            % (audit, BOOT, pg.conninfo))
srv = Server(config=cfg, data_dir=os.path.join(work, "data")).start()
kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
          aws_secret_access_key="local",
          config=botocore.config.Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=30))
ddb = boto3.client("dynamodb", **kw)
strm = boto3.client("dynamodbstreams", **kw)


def wait_deleted(n, seconds=30):
    end = time.time() + seconds
    while True:
        m = srv.metrics()
        if m.get("tributary_ttl_deleted_items_total", 0) >= n or time.time() > end:
            return m
        time.sleep(0.2)


try:
    ddb.create_table(TableName="sessions",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "user", "AttributeType": "S"}],
                     GlobalSecondaryIndexes=[{"IndexName": "by_user",
                                              "KeySchema": [{"AttributeName": "user", "KeyType": "HASH"}],
                                              "Projection": {"ProjectionType": "ALL"},
                                              "ProvisionedThroughput": {"ReadCapacityUnits": 5,
                                                                        "WriteCapacityUnits": 1}}],
                     BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 50, "WriteCapacityUnits": 1},
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    h.eq(ddb.describe_time_to_live(TableName="sessions")["TimeToLiveDescription"]["TimeToLiveStatus"],
         "DISABLED", "TTL off at first")
    now = int(time.time())
    # before TTL is on, items already past their time: deleted once it is on
    want_gone, want_kept = set(), set()

    def put(pk, extra):
        item = {"pk": {"S": pk}, "user": {"S": "u-" + pk}, "pad": {"S": "p" * 30}}
        item.update(extra)
        for _ in range(50):  # 1 WCU: the client side is throttled, TTL is not
            try:
                ddb.put_item(TableName="sessions", Item=item)
                return
            except ddb.exceptions.ProvisionedThroughputExceededException:
                time.sleep(0.3)
        raise RuntimeError("put %s kept being throttled" % pk)

    for i in range(12):
        put("old%02d" % i, {"expires": {"N": str(now - 60 - i)}})
        want_gone.add("old%02d" % i)
    put("frac", {"expires": {"N": "%d.25" % (now - 5)}})
    want_gone.add("frac")
    put("future", {"expires": {"N": str(now + 3600)}})
    put("string", {"expires": {"S": str(now - 60)}})
    put("ancient", {"expires": {"N": str(now - 6 * 365 * 86400)}})
    put("none", {})
    put("rescued", {"expires": {"N": str(now + 30)}})  # moved before its time comes
    put("client", {"expires": {"N": str(now + 3600)}})
    want_kept |= {"future", "string", "ancient", "none", "rescued"}
    time.sleep(2.5)
    h.eq(srv.metrics().get("tributary_ttl_deleted_items_total"), 0.0,
         "nothing deleted while TTL is off")
    r = ddb.update_time_to_live(TableName="sessions",
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    h.eq(r["TimeToLiveSpecification"], {"Enabled": True, "AttributeName": "expires"}, "UpdateTimeToLive")
    d = ddb.describe_time_to_live(TableName="sessions")["TimeToLiveDescription"]
    h.eq((d["TimeToLiveStatus"], d.get("AttributeName")), ("ENABLED", "expires"), "DescribeTimeToLive")
    # moved to the future before its time: kept
    ddb.update_item(TableName="sessions", Key={"pk": {"S": "rescued"}},
                    UpdateExpression="SET expires = :t", ExpressionAttributeValues={":t": {"N": str(now + 7200)}})
    m = wait_deleted(len(want_gone))
    h.eq(m.get("tributary_ttl_deleted_items_total"), float(len(want_gone)), "deleted count in /metrics")
    h.check(m.get("tributary_ttl_sweeps_total", 0) >= 1, "sweeps counted")
    h.check(m.get("tributary_ttl_scanned_items_total", 0) >= len(want_gone) + len(want_kept),
            "scanned items counted")
    h.check(m.get("tributary_ttl_last_sweep_seconds", 0) > now - 5, "last sweep time")
    time.sleep(2.5)  # more sweeps: still exactly these
    h.eq(srv.metrics().get("tributary_ttl_deleted_items_total"), float(len(want_gone)),
         "later sweeps delete nothing more")

    items = {it["pk"]["S"] for it in ddb.scan(TableName="sessions", ConsistentRead=True)["Items"]}
    h.eq(items, want_kept | {"client"}, "the table after the sweep")
    for pk in ("old00", "frac", "future"):
        q = ddb.query(TableName="sessions", IndexName="by_user", KeyConditionExpression="#u = :u",
                      ExpressionAttributeNames={"#u": "user"},
                      ExpressionAttributeValues={":u": {"S": "u-" + pk}})["Items"]
        h.eq(len(q), 0 if pk in want_gone else 1, "GSI entries of %s" % pk)
    desc = ddb.describe_table(TableName="sessions")["Table"]
    h.eq(desc["ItemCount"], len(want_kept) + 1, "ItemCount after the deletes")

    ddb.delete_item(TableName="sessions", Key={"pk": {"S": "client"}})
    # Streams API
    recs, _ = stream_records(ddb, strm, "sessions")
    removes = [r for r in recs.values() if r["eventName"] == "REMOVE"]
    by_ttl = {r["dynamodb"]["Keys"]["pk"]["S"] for r in removes if r.get("userIdentity") == IDENTITY}
    h.eq(by_ttl, want_gone, "GetRecords: the TTL deletes carry userIdentity")
    h.eq([r["dynamodb"]["Keys"]["pk"]["S"] for r in removes if "userIdentity" not in r], ["client"],
         "GetRecords: the client's delete has no userIdentity")
    old = [r for r in removes if r["dynamodb"]["Keys"]["pk"]["S"] == "old03"][0]["dynamodb"]
    h.eq(old.get("OldImage", {}).get("expires"), {"N": str(now - 63)}, "the TTL delete's OldImage")
    # the audit files
    end = time.time() + 30
    while True:
        lines = []
        for p in sorted(glob.glob(os.path.join(audit, "**", "*.jsonl"), recursive=True)):
            lines += [json.loads(x) for x in open(p) if x.strip()]
        arem = [x for x in lines if x["eventName"] == "REMOVE"]
        if len(arem) >= len(want_gone) + 1 or time.time() > end:
            break
        time.sleep(0.3)
    h.eq({x["dynamodb"]["Keys"]["pk"]["S"] for x in arem if x.get("userIdentity") == IDENTITY}, want_gone,
         "audit file: the TTL deletes carry userIdentity")
    h.eq([x["dynamodb"]["Keys"]["pk"]["S"] for x in arem if "userIdentity" not in x], ["client"],
         "audit file: the client's delete has none")
    # Kafka
    srv.sink_caught_up("kafka", 30)
    dels = {}
    for _, _, key, val, hd in read_topic(BOOT, "us-east-1.sessions"):
        if val is None:
            continue
        env = unframe(val, VSCHEMA)
        if env["op"] == "d":
            dels[env["before"]["pk"]["S"]] = env["userIdentity"]
        else:
            h.check(env["userIdentity"] is None, "Kafka: userIdentity null on %s" % env["op"])
    h.eq({k for k, v in dels.items() if v == "dynamodb.amazonaws.com"}, want_gone,
         "Kafka: the TTL deletes carry userIdentity")
    h.eq([k for k, v in dels.items() if v is None], ["client"], "Kafka: the client's delete has none")

    # PostgreSQL
    srv.sink_caught_up("postgres", 30)
    rows = pg.query("SELECT pk, user_identity FROM public.sessions_history WHERE event_name = 'REMOVE'")
    h.eq({r[0] for r in rows if r[1] == "dynamodb.amazonaws.com"}, want_gone,
         "PostgreSQL history: the TTL deletes' user_identity")
    h.eq([r[0] for r in rows if r[1] is None], ["client"], "PostgreSQL history: the client's delete")
    h.eq(pg.query("SELECT count(*) FROM public.sessions WHERE pk = ANY(%s)", (sorted(want_gone),))[0][0],
         0, "PostgreSQL replica: the expired rows are gone")

    # the CLI: stream tail's pretty lines, history, wal dump
    out = subprocess.run([os.environ["TRB_BIN"], "stream", "tail", "sessions", "--from", "trim_horizon",
                          "--format", "pretty", "--endpoint", srv.url, "--idle-exit", "2"],
                         capture_output=True, text=True, timeout=60).stdout
    h.eq(sum(1 for x in out.splitlines() if "  REMOVE(ttl)  " in x), len(want_gone),
         "stream tail --format pretty: REMOVE(ttl) lines")
    h.eq(sum(1 for x in out.splitlines() if "  REMOVE  " in x), 1, "stream tail: the client's REMOVE")

    # TTL off: an expired item stays
    ddb.update_time_to_live(TableName="sessions",
                            TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires"})
    put("late", {"expires": {"N": str(now - 30)}})
    time.sleep(2.5)
    h.check("Item" in ddb.get_item(TableName="sessions", Key={"pk": {"S": "late"}}, ConsistentRead=True),
            "TTL off: an expired item stays")
    h.eq(srv.metrics().get("tributary_ttl_deleted_items_total"), float(len(want_gone)),
         "TTL off: nothing more deleted")
    h.eq(srv.stop(), 0, "clean stop")
    cli = [os.environ["TRB_BIN"], "--data-dir", srv.data_dir]
    out = subprocess.run(cli + ["history", "sessions", "--key", '{"pk":{"S":"old00"}}'],
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    h.check(len(out) == 2 and out[-1].endswith("  REMOVE  deleted by Time to Live (expired)"),
            "history names the TTL delete: %r" % out)
    out = subprocess.run(cli + ["history", "sessions", "--key", '{"pk":{"S":"client"}}'],
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    h.check(out and out[-1].endswith("  REMOVE  deleted"), "history: a client's delete: %r" % out)
    out = subprocess.run(cli + ["wal", "dump", "--from", "1"], capture_output=True, text=True,
                         timeout=60).stdout.splitlines()
    h.eq(sum(1 for x in out if " by=ttl" in x), len(want_gone), "wal dump: by=ttl records")
    h.check(all("kind=REMOVE" in x for x in out if " by=ttl" in x), "wal dump: by=ttl only on REMOVE")
finally:
    srv.stop()
    mock.stdin.close()
    mock.wait(timeout=30)
sys.exit(h.done())
