"""The PostgreSQL sink against a real PostgreSQL (pgserver.py starts one in a
temporary directory). A random workload of puts, updates, deletes and
transactions over 2,000 keys (38-digit numbers, binary, sets, nested maps,
strings with tabs, newlines, quotes and backslashes) runs while tributary is
killed with SIGKILL at random moments, at least 10 times, and PostgreSQL is
stopped for several seconds once, mid-stream. Then:
  - the replica table equals a full Scan of the source, row for row, with
    exact numbers, and its typed column holds each item's total;
  - the history table has every change of the stream exactly once (its
    sequence numbers are the stream's), with the stream's images, and each
    item's last change there is its state in the source;
  - the checkpoint rows cover everything the WAL holds."""
import base64
import json
import os
import random
import sys
import tempfile
import threading
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from pgserver import PgServer  # noqa: E402
from trbserver import Harness, Server, stream_records  # noqa: E402

h = Harness("pg_sink")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="pgsink-", dir=base)
seed = int(os.environ.get("TRB_TEST_SEED", random.randrange(1 << 30)))
print("TRB_TEST_SEED=%d" % seed, flush=True)
rnd = random.Random(seed)
KILLS = int(os.environ.get("TRB_PG_KILLS", "10"))
KEYS = 1000  # x 2 sort keys

pg = PgServer().start()
cfg = os.path.join(work, "tributary.yaml")
with open(cfg, "w") as f:
    f.write("streams:\n  shards: 2\n  rollover_s: 5\n"
            "postgres:\n  conninfo: \"%s\"\n  mode: both\n"
            "  tables:\n    orders:\n      columns:\n        total: numeric\n        info.city: text\n"
            % pg.conninfo)
srv = Server(config=cfg, data_dir=os.path.join(work, "data"))


def clients():
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local",
              config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw)


STRS = ["plain", "tab\there", "new\nline", "quote'd", 'dq"', "back\\slash", "ünïcødé ✓", "", "{,}"]


def item(rw, pk, sk, n):
    big = "".join(rw.choice("0123456789") for _ in range(38)).lstrip("0") or "7"
    total = rw.choice([str(n), "-" + big, big, "0.%d" % n, "1E-100", "123456789.123456789"])
    it = {"pk": {"S": pk}, "sk": {"N": sk}, "total": {"N": total}, "n": {"N": str(n)},
          "name": {"S": rw.choice(STRS) + str(n)},
          "info": {"M": {"city": {"S": rw.choice(STRS)}, "zips": {"L": [{"N": "1"}, {"S": "x"}, {"NULL": True}]}}}}
    if rw.random() < 0.5:
        it["blob"] = {"B": bytes(rw.randrange(256) for _ in range(rw.randrange(1, 12)))}
    if rw.random() < 0.5:
        it["tags"] = {"SS": sorted({"t%d" % rw.randrange(9) for _ in range(3)})}
    if rw.random() < 0.3:
        it["flag"] = {"BOOL": rw.random() < 0.5}
    return it


counter = [0]
lock = threading.Lock()


def writer(wid, stop):
    ddb, _ = clients()
    rw = random.Random(seed * 31 + wid * 7 + counter[0])
    while not stop.is_set():
        pk, sk = "k%d" % rw.randrange(KEYS), str(rw.randrange(2))
        with lock:
            counter[0] += 1
            n = counter[0]
        r = rw.random()
        key = {"pk": {"S": pk}, "sk": {"N": sk}}
        try:
            if r < 0.45:
                ddb.put_item(TableName="orders", Item=item(rw, pk, sk, n))
            elif r < 0.65:
                ddb.update_item(TableName="orders", Key=key, UpdateExpression="SET total = :t, #n = :n",
                                ExpressionAttributeNames={"#n": "name"},
                                ExpressionAttributeValues={":t": {"N": str(n)}, ":n": {"S": "upd%d" % n}})
            elif r < 0.8:
                ddb.delete_item(TableName="orders", Key=key)
            else:
                pk2 = "k%d" % rw.randrange(KEYS)
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "orders", "Item": item(rw, pk, sk, n)}},
                    {"Put": {"TableName": "orders", "Item": item(rw, pk2, "1", n)}},
                    {"Delete": {"TableName": "orders", "Key": {"pk": {"S": "k%d" % rw.randrange(KEYS)},
                                                                 "sk": {"N": "0"}}}}])
        except Exception:  # noqa: BLE001  killed under us, or a transaction conflict
            if stop.is_set():
                return
            time.sleep(0.05)


def plain(av):
    """A DynamoDB-JSON attribute value in the sink's plain JSON form."""
    t, v = next(iter(av.items()))
    if t == "S":
        return v
    if t == "N":
        return Decimal(v)
    if t == "B":
        return base64.b64encode(v).decode()
    if t == "BOOL":
        return v
    if t == "NULL":
        return None
    if t == "M":
        return {k: plain(x) for k, x in v.items()}
    if t == "L":
        return [plain(x) for x in v]
    if t == "SS":
        return list(v)
    if t == "NS":
        return [Decimal(x) for x in v]
    if t == "BS":
        return [base64.b64encode(x).decode() for x in v]
    raise ValueError(t)


def plain_item(it):
    return {k: plain(v) for k, v in it.items()}


def jload(text):
    return None if text is None else json.loads(text, parse_float=Decimal, parse_int=Decimal)


try:
    srv.start()
    ddb, strm = clients()
    ddb.create_table(TableName="orders", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    pg_down_round = 2 + rnd.randrange(KILLS - 3)
    for round_ in range(KILLS):
        stop = threading.Event()
        ths = [threading.Thread(target=writer, args=(w, stop)) for w in range(4)]
        for th in ths:
            th.start()
        time.sleep(rnd.uniform(0.3, 1.2))
        if round_ == pg_down_round:
            pg.stop()  # PostgreSQL away for seconds, writes going on
            time.sleep(4)
            m = srv.metrics()
            h.check(m.get('tributary_sink_failing{sink="postgres"}') == 1.0 or
                    m.get("tributary_postgres_connected") == 0.0,
                    "the sink says PostgreSQL is away: %r" % {k: v for k, v in m.items() if "postgres" in k})
            pg.start()
            time.sleep(rnd.uniform(0.5, 2.0))
        srv.kill9()
        stop.set()
        for th in ths:
            th.join()
        srv.start()
    ddb, strm = clients()
    print("changes attempted: %d" % counter[0], flush=True)

    m = srv.sink_caught_up("postgres", 90, every=0.3)
    h.check(m.get('tributary_sink_checkpoint_lsn{sink="postgres"}', 0) >= m["tributary_wal_last_lsn"],
            "the PostgreSQL sink caught up: %r" % {k: v for k, v in m.items() if "sink" in k})
    h.eq(m.get('tributary_sink_broken{sink="postgres"}'), 0.0, "the sink is not broken")
    h.eq(m.get("tributary_postgres_dead_letters_total"), 0.0, "no dead letters")
    h.check(m.get("tributary_postgres_reconnects_total", 0) >= 0, "reconnects are counted")
    ck = pg.query("SELECT lsn FROM tributary.checkpoints WHERE shard_id = '*'")
    h.check(len(ck) == 1 and ck[0][0] >= m["tributary_wal_last_lsn"] - 0,
            "the checkpoint row in PostgreSQL: %r" % ck)
    h.check(len(pg.query("SELECT 1 FROM tributary.checkpoints WHERE shard_id <> '*'")) >= 2,
            "a checkpoint row per shard")

    # ---- the replica equals a Scan ----
    src = {}
    for page in ddb.get_paginator("scan").paginate(TableName="orders", ConsistentRead=True):
        for it in page["Items"]:
            src[(it["pk"]["S"], Decimal(it["sk"]["N"]))] = it
    rows = pg.query("SELECT pk, sk, item::text, lsn, total::text, info_city FROM public.orders")
    rep = {(r[0], r[1]): r for r in rows}
    h.eq(len(rows), len(src), "replica rows = source items")
    h.check(len(src) > 200, "the workload left items (%d)" % len(src))
    missing = [k for k in src if k not in rep]
    extra = [k for k in rep if k not in src]
    h.check(not missing and not extra, "same keys (missing %r, extra %r)" % (missing[:3], extra[:3]))
    bad_item = bad_typed = 0
    for k, it in src.items():
        r = rep.get(k)
        if not r:
            continue
        if jload(r[2]) != plain_item(it):
            bad_item += 1
            if bad_item <= 3:
                print("replica differs at %r:\n  pg   %s\n  scan %r" % (k, r[2], plain_item(it)))
        if Decimal(r[4]) != Decimal(it["total"]["N"]) or r[5] != it["info"]["M"]["city"]["S"]:
            bad_typed += 1
    h.eq(bad_item, 0, "replica items equal the source's, numbers exact")
    h.eq(bad_typed, 0, "typed columns (total numeric, info_city text) hold the items' values")
    h.check(any(len(it["total"]["N"].lstrip("-")) >= 38 for it in src.values()), "38-digit numbers were checked")

    # ---- the history holds the stream, once ----
    truth, shards = stream_records(ddb, strm, "orders")
    h.check(len(shards) > 2, "the stream rolled over during the test")
    print("source items %d, stream changes %d" % (len(src), len(truth)), flush=True)
    hist = pg.query("SELECT lsn, event_name, sequence_number, pk, sk, old_image::text, new_image::text, "
                    "transaction_id, shard_id FROM public.orders_history ORDER BY lsn")
    seqs = [r[2] for r in hist]
    h.eq(len(seqs), len(set(seqs)), "every change once in the history (%d rows)" % len(seqs))
    lost = sorted(set(truth) - set(seqs), key=int)
    more = sorted(set(seqs) - set(truth), key=int)
    h.check(not lost and not more, "the history holds exactly the stream's %d changes (missing %r, extra %r)"
            % (len(truth), lost[:5], more[:5]))
    bad = 0
    txns = 0
    for r in hist:
        t = truth.get(r[2])
        if not t:
            continue
        d = t["dynamodb"]
        ok = (r[1] == t["eventName"] and
              jload(r[6]) == (plain_item(d["NewImage"]) if "NewImage" in d else None) and
              jload(r[5]) == (plain_item(d["OldImage"]) if "OldImage" in d else None) and
              (r[3], r[4]) == (d["Keys"]["pk"]["S"], Decimal(d["Keys"]["sk"]["N"])))
        txns += r[7] is not None
        if not ok:
            bad += 1
            if bad <= 3:
                print("history differs at %s: %r vs %r" % (r[2], r, t))
    h.eq(bad, 0, "history rows carry the stream's event names, keys and images")
    h.check(txns > 0, "transactions' changes carry their transaction id")
    # each item's last change in the history is its state now
    last = {}
    for r in hist:
        last[(r[3], r[4])] = r
    wrong = 0
    for k, r in last.items():
        if r[1] == "REMOVE":
            wrong += k in src
        else:
            wrong += k not in src or jload(r[6]) != plain_item(src[k])
    h.eq(wrong, 0, "replaying the history gives the source's state")
except Exception:
    import traceback
    traceback.print_exc()
    h.check(False, "the test ran to the end")
finally:
    srv.stop()
    if h.failed:
        print(open(srv.log_path).read()[-6000:])
    pg.cleanup()
sys.exit(h.done())
