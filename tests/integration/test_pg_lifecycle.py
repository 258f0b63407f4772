"""The PostgreSQL sink through a table's life, against a real PostgreSQL:
  A. a stream enabled on a table that already had items: the replica is
     copied from a snapshot first, then follows;
  B. a stream disabled (changes made meanwhile are in no stream) and
     enabled again: the replica is copied again and equals the source;
  C. a table deleted and created again under its name: the old rows go;
  D. a history-only table: no replica table, every change in the history;
  E. postgres.json: dynamodb keeps the typed form; postgres.on_error: stop
     stops the sink at a change PostgreSQL refuses, saying which, and
     nothing after it is applied."""
import json
import os
import sys
import tempfile
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from pgserver import PgServer  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("pg_lifecycle")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
pg = PgServer().start()


def server(extra):
    work = tempfile.mkdtemp(prefix="pglife-", dir=base)
    cfg = os.path.join(work, "tributary.yaml")
    with open(cfg, "w") as f:
        f.write("postgres:\n  conninfo: \"%s\"\n%s" % (pg.conninfo, extra))
    return Server(config=cfg, data_dir=os.path.join(work, "data"))


def client(srv):
    return boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=botocore.config.Config(retries={"max_attempts": 1}))


def create(ddb, name, stream=True):
    kw = {}
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], **kw)


def put(ddb, table, lo, hi, tag):
    for i in range(lo, hi, 25):
        ddb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": "k%d" % j}, "v": {"N": str(j)}, "tag": {"S": tag}}}}
            for j in range(i, min(hi, i + 25))]})


def caught_up(srv, timeout=60):
    m = srv.sink_caught_up("postgres", timeout, every=0.2)
    return m.get('tributary_sink_checkpoint_lsn{sink="postgres"}', 0) >= m["tributary_wal_last_lsn"]


def same(srv, ddb, table, schema="public", what=""):
    src = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for it in page["Items"]:
            src[it["pk"]["S"]] = (Decimal(it["v"]["N"]), it["tag"]["S"])
    h.check(caught_up(srv), "%s: the sink caught up" % what)
    rows = pg.query('SELECT pk, item::text FROM %s."%s"' % (schema, table))
    rep = {}
    for pk, txt in rows:
        d = json.loads(txt, parse_float=Decimal, parse_int=Decimal)
        rep[pk] = (d["v"], d["tag"])
    h.check(rep == src, "%s: replica %s equals the source (%d rows vs %d items; e.g. missing %r, extra %r)"
            % (what, table, len(rep), len(src), sorted(set(src) - set(rep))[:3], sorted(set(rep) - set(src))[:3]))


def stream(ddb, table, on):
    spec = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"} if on else {"StreamEnabled": False}
    ddb.update_table(TableName=table, StreamSpecification=spec)


srv = None
try:
    srv = server("  tables:\n    hist_only:\n      mode: history\n    quiet_first:\n      mode: both\n"
                 "    dl_both:\n      mode: both\n      columns:\n        v: numeric\n")
    srv.start()
    ddb = client(srv)

    # A. a stream enabled late
    create(ddb, "late_stream", stream=False)
    put(ddb, "late_stream", 0, 300, "before")
    stream(ddb, "late_stream", True)
    put(ddb, "late_stream", 250, 400, "after")
    ddb.delete_item(TableName="late_stream", Key={"pk": {"S": "k5"}})
    same(srv, ddb, "late_stream", what="A")
    st = pg.query("SELECT state, snapshot_items FROM tributary.tables WHERE source_table = 'late_stream'")
    h.check(st and st[0][0] == "streaming" and st[0][1] >= 300, "A: copied from a snapshot: %r" % st)

    # B. disabled, changed, enabled again
    stream(ddb, "late_stream", False)
    put(ddb, "late_stream", 0, 50, "gap")
    ddb.delete_item(TableName="late_stream", Key={"pk": {"S": "k7"}})
    stream(ddb, "late_stream", True)
    put(ddb, "late_stream", 390, 420, "again")
    same(srv, ddb, "late_stream", what="B")
    h.check("disabled and enabled again" in open(srv.log_path).read(), "B: the log says why it copies again")

    # C. deleted and created again
    create(ddb, "again")
    put(ddb, "again", 0, 100, "old")
    h.check(caught_up(srv), "C: the first table delivered")
    ddb.delete_table(TableName="again")
    create(ddb, "again")
    put(ddb, "again", 50, 80, "new")
    same(srv, ddb, "again", what="C")

    # G. a table all_tables brings whose name PostgreSQL cannot take is left
    # out, loudly; the others go on
    long = "t" * 60
    create(ddb, long)
    put(ddb, long, 0, 3, "x")
    create(ddb, "after_long")
    put(ddb, "after_long", 0, 5, "y")
    same(srv, ddb, "after_long", what="G")
    h.check("table %s is not sent to PostgreSQL" % long in open(srv.log_path).read(),
            "G: the log says which table is left out and why")
    h.eq(srv.metrics().get('tributary_sink_broken{sink="postgres"}'), 0.0, "G: the sink goes on")
    # ... and one whose key attribute is lsn, a column of both the replica and the
    # history: the advice is to rename it (no mode would avoid the clash)
    ddb.create_table(TableName="lsn_keyed", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "lsn", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "lsn", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName="lsn_keyed", Item={"lsn": {"S": "x"}})
    h.check(caught_up(srv), "G: caught up past the lsn-keyed table")
    line = [x for x in open(srv.log_path).read().splitlines() if "table lsn_keyed is not sent" in x]
    h.check(line and "no mode avoids it" in line[0] and "with the mode that" not in line[0],
            "G: the lsn-keyed table's line says to rename: %r" % line[:1])

    # D. history only
    create(ddb, "hist_only")
    put(ddb, "hist_only", 0, 40, "h")
    put(ddb, "hist_only", 0, 10, "h2")
    ddb.delete_item(TableName="hist_only", Key={"pk": {"S": "k1"}})
    h.check(caught_up(srv), "D: caught up")
    h.eq(pg.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'hist_only'"),
         [(0,)], "D: no replica table for a history-only table")
    h.eq(pg.query("SELECT event_name, count(*) FROM public.hist_only_history GROUP BY 1 ORDER BY 1"),
         [("INSERT", 40), ("MODIFY", 10), ("REMOVE", 1)], "D: the history has every change")

    # H. a table created while the sink runs, whose first change comes after
    # the sink's checkpoint has passed its creation (heartbeats move it): no
    # snapshot, and the history has its first changes too
    log0 = len(open(srv.log_path).read())
    create(ddb, "quiet_first")
    h.check(caught_up(srv), "H: caught up after the creation")
    time.sleep(2.5)  # two heartbeats: the checkpoint is past the creation
    h.check(caught_up(srv), "H: caught up again")
    ddb.put_item(TableName="quiet_first", Item={"pk": {"S": "a"}, "v": {"N": "1"}, "tag": {"S": "t"}})
    ddb.put_item(TableName="quiet_first", Item={"pk": {"S": "a"}, "v": {"N": "2"}, "tag": {"S": "t"}})
    ddb.put_item(TableName="quiet_first", Item={"pk": {"S": "b"}, "v": {"N": "3"}, "tag": {"S": "t"}})
    h.check(caught_up(srv), "H: caught up after the writes")
    h.eq(pg.query("SELECT pk, event_name FROM public.quiet_first_history ORDER BY lsn"),
         [("a", "INSERT"), ("a", "MODIFY"), ("b", "INSERT")], "H: the history has the first changes")
    h.check("quiet_first: its changes are not all in the WAL" not in open(srv.log_path).read()[log0:],
            "H: no snapshot for a table the sink saw created")

    # F. a change the replica refuses still has its history row
    create(ddb, "dl_both")
    ddb.put_item(TableName="dl_both", Item={"pk": {"S": "good"}, "v": {"N": "1"}, "tag": {"S": "t"}})
    ddb.put_item(TableName="dl_both", Item={"pk": {"S": "bad"}, "v": {"S": "x"}, "tag": {"S": "t"}})
    h.check(caught_up(srv), "F: caught up")
    h.eq(pg.query("SELECT pk FROM public.dl_both ORDER BY pk"), [("good",)], "F: the replica lacks the refused change")
    h.eq(pg.query("SELECT pk, event_name FROM public.dl_both_history ORDER BY lsn"),
         [("good", "INSERT"), ("bad", "INSERT")], "F: the history has every change, the refused one too")
    h.eq(pg.query("SELECT count(*) FROM tributary.dead_letters WHERE source_table = 'dl_both'"), [(1,)],
         "F: one dead letter")
    srv.stop()

    # E. the typed form, and stopping at a refused change
    srv = server("  schema: typed\n  json: dynamodb\n  on_error: stop\n"
                 "  tables:\n    strict:\n      columns:\n        v: numeric\n")
    srv.start()
    ddb = client(srv)
    create(ddb, "strict")
    put(ddb, "strict", 0, 5, "ok")
    h.check(caught_up(srv), "E: caught up")
    rows = pg.query("SELECT item::text, v FROM typed.strict WHERE pk = 'k3'")
    h.check(rows and json.loads(rows[0][0]) == {"pk": {"S": "k3"}, "v": {"N": "3"}, "tag": {"S": "ok"}}
            and rows[0][1] == 3, "E: the DynamoDB-typed form, and the typed column read from it: %r" % rows)
    ddb.put_item(TableName="strict", Item={"pk": {"S": "bad"}, "v": {"S": "x"}, "tag": {"S": "bad"}})
    ddb.put_item(TableName="strict", Item={"pk": {"S": "later"}, "v": {"N": "1"}, "tag": {"S": "ok"}})
    deadline = time.time() + 20
    while time.time() < deadline and srv.metrics().get('tributary_sink_broken{sink="postgres"}') != 1.0:
        time.sleep(0.2)
    h.eq(srv.metrics().get('tributary_sink_broken{sink="postgres"}'), 1.0, "E: on_error stop: the sink stopped")
    log = open(srv.log_path).read()
    h.check("postgres.on_error: stop" in log and "table strict, LSN" in log, "E: the log names the change")
    h.eq(pg.query("SELECT count(*) FROM typed.strict WHERE pk IN ('bad', 'later')"), [(0,)],
         "E: nothing at or after the refused change is applied")
    h.eq(pg.query("SELECT count(*) FROM tributary.dead_letters WHERE source_table = 'strict'"), [(0,)],
         "E: no dead letter in stop mode")
except Exception:
    import traceback
    traceback.print_exc()
    h.check(False, "the test ran to the end")
finally:
    if srv:
        srv.stop()
        if h.failed:
            print(open(srv.log_path).read()[-5000:])
    pg.cleanup()
sys.exit(h.done())
