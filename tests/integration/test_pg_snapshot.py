"""The PostgreSQL sink joining late, against a real PostgreSQL (pgserver.py),
with 1 MiB WAL segments and a 3-second stream retention, so the WAL no longer
holds the table's first changes:
  A. a table "late" of ~30,000 items (38-digit numbers, nested maps, string
     sets, binary, strings with tabs, newlines, quotes and backslashes) is
     loaded, updated and partly deleted by a server WITHOUT the sink, until
     retention has trimmed the WAL; the server is then started with the sink,
     which must copy a snapshot; it is killed with SIGKILL in the middle of
     the copy (tributary.tables state 'snapshot', some items copied, a writer
     changing items after the snapshot's LSN) and started again: it must
     resume the snapshot ("resuming its snapshot", at a later LSN, counting
     on from the items already copied) while a writer keeps changing the
     table; once the sink's checkpoint
     reaches the WAL's end, the replica equals a full Scan row for row (keys,
     item jsonb with exact numbers, base64 binary, sets as arrays; the typed
     column total);
  B. a change whose total cannot be cast to numeric goes to
     tributary.dead_letters (lsn, sequence number, SQLSTATE 22xxx, the error,
     the record with its NewImage), is counted, and the good changes after it
     reach the replica; the sink is not broken;
  C. a typed column added to the config (name: text) is added to the replica
     at the next start (README: "added to the table at the next start and
     filled for the rows already there"), before any new change, and is
     filled for existing rows and new writes.
Set TRB_TEST_SEED to replay a run, TRB_PG_SNAPSHOT_ITEMS for the table size."""
import base64
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
import psycopg2  # noqa: E402
from pgserver import PgServer  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

T0 = time.time()
h = Harness("pg_snapshot")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="pgsnap-", dir=base)
seed = int(os.environ.get("TRB_TEST_SEED", random.randrange(1 << 30)))
print("TRB_TEST_SEED=%d" % seed, flush=True)
rnd = random.Random(seed)
N_ITEMS = int(os.environ.get("TRB_PG_SNAPSHOT_ITEMS", "30000"))
TABLE = "late"
CK = 'tributary_sink_checkpoint_lsn{sink="postgres"}'

pg = PgServer().start()
cfg = os.path.join(work, "tributary.yaml")
srv = Server(config=cfg, data_dir=os.path.join(work, "data"))


def note(msg):
    print("[%6.1fs] %s" % (time.time() - T0, msg), flush=True)


def write_cfg(columns=None):
    """The config: WAL trimming settings, plus the PostgreSQL sink when
    columns (typed columns of "late") is given."""
    text = ("wal:\n  segment_size: 1MiB\nstreams:\n  retention_s: 3\n"
            "retention:\n  interval_s: 1\n")
    if columns is not None:
        text += ("postgres:\n  conninfo: \"%s\"\n  mode: replica\n  on_error: dead_letter\n"
                 "  tables:\n    %s:\n      columns:\n" % (pg.conninfo, TABLE))
        for path, typ in columns.items():
            text += "        %s: %s\n" % (path, typ)
    with open(cfg, "w") as f:
        f.write(text)


def clients():
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local",
              config=botocore.config.Config(retries={"max_attempts": 2}, connect_timeout=5,
                                            read_timeout=30))
    return boto3.client("dynamodb", **kw), boto3.client("dynamodbstreams", **kw)


def log_from(offset):
    with open(srv.log_path, errors="replace") as f:
        f.seek(offset)
        return f.read()


def log_size():
    try:
        return os.path.getsize(srv.log_path)
    except OSError:
        return 0


# ---- items ---------------------------------------------------------------

STRS = ["plain", "tab\there", "new\nline", "cr\rhere", "quote'd", 'dq"x', "back\\slash",
        "\\N", "ünïcødé ✓ 😀", "", "{,}", "a\\tb"]


def big_number(r):
    digits = "".join(r.choice("0123456789") for _ in range(38)).lstrip("0") or "9"
    return r.choice([digits, "-" + digits, digits[:20] + "." + digits[20:],
                     "0." + digits, "-" + digits[:1] + "." + digits[1:] + "E-100",
                     digits[:1] + "." + digits[1:] + "E+125"])


def total_value(r, n):
    x = r.random()
    if x < 0.2:
        return big_number(r)
    if x < 0.4:
        return "%d.%02d" % (r.randrange(-10 ** 6, 10 ** 6), r.randrange(100))
    if x < 0.45:
        return "1E-130"
    return str(n)


def make_item(r, pk, sk, n):
    """A ~250-byte item with every kind of value."""
    it = {"pk": {"S": pk}, "sk": {"N": str(sk)},
          "name": {"S": r.choice(STRS) + "-%d" % n},
          "n": {"N": str(n)},
          "nested": {"M": {"a": {"M": {"b": {"L": [{"N": big_number(r)}, {"S": r.choice(STRS)},
                                                   {"BOOL": r.random() < 0.5}, {"NULL": True}]}}},
                           "c": {"M": {}}, "d": {"L": []}}},
          "pad": {"S": "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                               for _ in range(r.randrange(60, 110)))}}
    if r.random() < 0.92:  # some items have no total: the typed column is NULL
        it["total"] = {"N": total_value(r, n)}
    if r.random() < 0.6:
        it["tags"] = {"SS": list({"t%d%s" % (r.randrange(20), r.choice(STRS)) for _ in range(3)})}
    if r.random() < 0.6:
        it["blob"] = {"B": bytes(r.randrange(256) for _ in range(r.randrange(1, 40)))}
    if r.random() < 0.2:
        it["nums"] = {"NS": list({str(r.randrange(-1000, 1000)), big_number(r)})}
    if r.random() < 0.1:
        it["bins"] = {"BS": list({bytes([r.randrange(256), r.randrange(256)]) for _ in range(2)})}
    if r.random() < 0.3:
        it["flag"] = {"BOOL": r.random() < 0.5}
    return it


def plain_eq(av, j):
    """Whether j (parsed with Decimal numbers) is the plain-JSON form of the
    DynamoDB attribute value av: numbers exact, binary as base64 text, sets
    as arrays (in any order)."""
    t, v = next(iter(av.items()))
    if t == "S":
        return isinstance(j, str) and j == v
    if t == "N":
        return isinstance(j, Decimal) and j == Decimal(v)
    if t == "B":
        return j == base64.b64encode(v).decode()
    if t == "BOOL":
        return isinstance(j, bool) and j == v
    if t == "NULL":
        return j is None
    if t == "M":
        return (isinstance(j, dict) and set(j) == set(v) and
                all(plain_eq(v[k], j[k]) for k in v))
    if t == "L":
        return isinstance(j, list) and len(j) == len(v) and all(plain_eq(a, b) for a, b in zip(v, j))
    if t == "SS":
        return isinstance(j, list) and all(isinstance(x, str) for x in j) and sorted(j) == sorted(v)
    if t == "NS":
        return (isinstance(j, list) and all(isinstance(x, Decimal) for x in j) and
                sorted(j) == sorted(Decimal(x) for x in v))
    if t == "BS":
        return isinstance(j, list) and sorted(j) == sorted(base64.b64encode(x).decode() for x in v)
    raise ValueError(t)


def item_eq(it, j):
    return isinstance(j, dict) and set(j) == set(it) and all(plain_eq(it[k], j[k]) for k in it)


def jload(text):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


# ---- helpers ---------------------------------------------------------------

def batch_put(ddb, items):
    req = {TABLE: [{"PutRequest": {"Item": it}} for it in items]}
    for _ in range(50):
        r = ddb.batch_write_item(RequestItems=req)
        req = r.get("UnprocessedItems") or {}
        if not req:
            return
        time.sleep(0.05)
    raise RuntimeError("batch_write_item left items unprocessed")


def load(first, count, nthreads=3):
    """Items with sk first..first+count-1, 25 per batch_write_item, from
    nthreads threads."""
    errs = []

    def work_(tid):
        try:
            ddb, _ = clients()
            r = random.Random(seed * 1000 + first + tid)
            batch = []
            for n in range(first + tid, first + count, nthreads):
                batch.append(make_item(r, "p%03d" % (n % 300), n, n))
                if len(batch) == 25:
                    batch_put(ddb, batch)
                    batch = []
            if batch:
                batch_put(ddb, batch)
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ths = [threading.Thread(target=work_, args=(i,)) for i in range(nthreads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errs:
        raise errs[0]


def key_of(n):
    return {"pk": {"S": "p%03d" % (n % 300)}, "sk": {"N": str(n)}}


def wait_for(cond, seconds, what, every=0.25):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(every)
    h.check(False, "timed out (%d s) waiting: %s" % (seconds, what))
    return False


def caught_up():
    m = srv.metrics()
    return m.get(CK, 0) >= m["tributary_wal_last_lsn"]


def table_state():
    """(state, snapshot_items, snapshot_lsn) of "late" in tributary.tables,
    or None before the sink made its tables."""
    try:
        r = pg.query("SELECT state, snapshot_items, snapshot_lsn FROM tributary.tables "
                     "WHERE source_table = %s", (TABLE,))
    except psycopg2.errors.UndefinedTable:
        return None
    except psycopg2.errors.InvalidSchemaName:
        return None
    return tuple(r[0]) if r else None


def scan(ddb):
    src = {}
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        for it in page["Items"]:
            src[(it["pk"]["S"], Decimal(it["sk"]["N"]))] = it
    return src


def compare(ddb, what, with_name=False, skip=()):
    """The replica public.late equals a Scan of "late", row for row (keys
    in skip excepted: they must be absent from the replica)."""
    src = scan(ddb)
    cols = "pk, sk, item::text, lsn, total" + (", name" if with_name else "")
    rows = pg.query("SELECT %s FROM public.%s" % (cols, TABLE))
    rep = {(r[0], r[1]): r for r in rows}
    h.eq(len(rep), len(rows), "%s: no duplicate keys in the replica" % what)
    for k in skip:
        h.check(k not in rep, "%s: the refused item %r is not in the replica" % (what, k))
        src.pop(k, None)
    missing = sorted(k for k in src if k not in rep)
    extra = sorted(k for k in rep if k not in src)
    h.eq(len(rep), len(src), "%s: replica rows = source items" % what)
    h.check(not missing and not extra, "%s: same keys (%d missing, e.g. %r; %d extra, e.g. %r)"
            % (what, len(missing), missing[:3], len(extra), extra[:3]))
    bad_item = bad_total = bad_name = bad_lsn = 0
    for k, it in src.items():
        r = rep.get(k)
        if not r:
            continue
        j = jload(r[2])
        if not item_eq(it, j):
            bad_item += 1
            if bad_item <= 3:
                print("%s: item differs at %r:\n  pg   %s\n  scan %r" % (what, k, r[2], it))
        want = Decimal(it["total"]["N"]) if "total" in it else None
        if r[4] != want:
            bad_total += 1
            if bad_total <= 3:
                print("%s: total differs at %r: pg %r, scan %r" % (what, k, r[4], want))
        if with_name:
            want = it["name"]["S"] if "name" in it else None
            if r[5] != want:
                bad_name += 1
                if bad_name <= 3:
                    print("%s: name differs at %r: pg %r, scan %r" % (what, k, r[5], want))
        if not (isinstance(r[3], int) and r[3] > 0):
            bad_lsn += 1
    h.eq(bad_item, 0, "%s: item jsonb equals the Scan's item (exact numbers, base64, sets)" % what)
    h.eq(bad_total, 0, "%s: the typed column total equals the item's total" % what)
    if with_name:
        h.eq(bad_name, 0, "%s: the typed column name equals the item's name" % what)
    h.eq(bad_lsn, 0, "%s: every row has an lsn > 0" % what)
    return src, rep


# ---- the test ----------------------------------------------------------------

try:
    # ---------------- A: loaded without the sink, the WAL trimmed ----------------
    write_cfg(None)
    srv.start()
    ddb, strm = clients()
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    wait_for(lambda: ddb.describe_table(TableName=TABLE)["Table"]["TableStatus"] == "ACTIVE", 30,
             "the table is ACTIVE")
    loaded = 0

    def grow(count):
        """count more items, then a few hundred updates and deletes."""
        global loaded
        t = time.time()
        load(loaded, count)
        first, loaded = loaded, loaded + count
        ups = rnd.sample(range(first, loaded), 300)
        for n in ups[:200]:
            ddb.update_item(TableName=TABLE, Key=key_of(n),
                            UpdateExpression="SET #t = :t, #n = :n, #g = :s ADD #c :one",
                            ExpressionAttributeNames={"#t": "total", "#n": "name", "#g": "tags",
                                                      "#c": "n"},
                            ExpressionAttributeValues={":t": {"N": big_number(rnd)},
                                                       ":n": {"S": "upd\t%d" % n},
                                                       ":s": {"SS": ["u1", "u\n2"]},
                                                       ":one": {"N": "1"}})
        for n in ups[200:]:
            ddb.delete_item(TableName=TABLE, Key=key_of(n))
        note("loaded %d items (now %d written), 200 updated, 100 deleted, in %.1f s"
             % (count, loaded, time.time() - t))

    grow(N_ITEMS)
    # Retention trims the WAL (nothing holds it: no sink).
    deadline = time.time() + 60
    nudged = time.time()
    while time.time() < deadline and srv.metrics()["tributary_wal_first_lsn"] <= 1:
        if time.time() - nudged > 8:  # more WAL, in new segments
            for n in rnd.sample(range(loaded), 200):
                ddb.update_item(TableName=TABLE, Key=key_of(n), UpdateExpression="ADD #c :one",
                                ExpressionAttributeNames={"#c": "n"}, ExpressionAttributeValues={":one": {"N": "1"}})
            nudged = time.time()
        time.sleep(0.25)
    m = srv.metrics()
    h.check(m["tributary_wal_first_lsn"] > 1, "the WAL was trimmed (first LSN %d, last %d)"
            % (m["tributary_wal_first_lsn"], m["tributary_wal_last_lsn"]))
    note("WAL trimmed: first LSN %d, last %d" % (m["tributary_wal_first_lsn"], m["tributary_wal_last_lsn"]))
    h.eq(srv.stop(), 0, "clean stop of the server without the sink")

    # ---------------- the snapshot, killed in the middle ----------------
    class Writer(threading.Thread):
        """Puts (new keys and overwrites), updates and deletes on "late"
        until stopped or for `seconds`."""

        def __init__(self, nbase, seconds):
            super().__init__()
            self.nbase, self.seconds = nbase, seconds
            self.stop_ev = threading.Event()
            self.ops = self.errors = 0
            self.first_ack = None

        def run(self):
            wd, _ = clients()
            r = random.Random(seed * 7 + self.nbase)
            n = self.nbase
            t_end = time.time() + self.seconds
            while time.time() < t_end and not self.stop_ev.is_set():
                n += 1
                x = r.random()
                try:
                    if x < 0.4:
                        wd.put_item(TableName=TABLE, Item=make_item(r, "w%02d" % r.randrange(50), n, n))
                    elif x < 0.6:  # overwrite an existing one
                        k = r.randrange(loaded)
                        wd.put_item(TableName=TABLE, Item=make_item(r, "p%03d" % (k % 300), k, n))
                    elif x < 0.85:
                        wd.update_item(TableName=TABLE, Key=key_of(r.randrange(loaded)),
                                       UpdateExpression="SET #t = :t, #n = :n REMOVE #p",
                                       ExpressionAttributeNames={"#t": "total", "#n": "name", "#p": "pad"},
                                       ExpressionAttributeValues={":t": {"N": total_value(r, n)},
                                                                  ":n": {"S": r.choice(STRS)}})
                    else:
                        wd.delete_item(TableName=TABLE, Key=key_of(r.randrange(loaded)))
                    self.ops += 1
                    if self.first_ack is None:
                        self.first_ack = time.time()
                except Exception as e:  # noqa: BLE001
                    if self.stop_ev.is_set():
                        return  # the server was killed under us
                    self.errors += 1
                    print("writer:", e, flush=True)

        def finish(self):
            self.stop_ev.set()
            self.join()

    write_cfg({"total": "numeric"})
    caught = None  # (snapshot_items, snapshot_lsn) seen just before kill -9
    for attempt in range(3):
        run_at = log_size()
        srv.start()
        # Changes after the first snapshot's LSN, before the crash: the
        # resumed copy must still end with every key's latest state.
        w = Writer(10 ** 6 * (attempt + 1), 120)
        w.start()
        seen_snapshot = False
        ops_at_seen = None
        deadline = time.time() + 90
        while time.time() < deadline:
            s = table_state()
            if s and s[0] == "snapshot":
                seen_snapshot = True
                if s[1] > 0 and ops_at_seen is None:
                    ops_at_seen = w.ops
                if s[1] > 0 and w.ops >= ops_at_seen + 10:
                    w.stop_ev.set()
                    srv.kill9()
                    caught = (s[1], s[2])
                    break
            if s and s[0] == "streaming":
                break
            time.sleep(0.02)
        w.finish()
        h.check(w.errors == 0, "no write failed before the kill (%d errors)" % w.errors)
        if caught:
            note("killed -9 in the snapshot (attempt %d): %d items copied, snapshot LSN %d, "
                 "%d changes written meanwhile" % (attempt + 1, caught[0], caught[1], w.ops))
            break
        h.check(seen_snapshot, "attempt %d: tributary.tables showed state 'snapshot' (saw %r)"
                % (attempt + 1, table_state()))
        if not seen_snapshot and table_state() is None:
            break  # no snapshot at all: nothing to retry
        # Too fast to catch: start over with a bigger table (and no sink state).
        note("NOTE: the snapshot of %d items finished before it could be caught; making the "
             "table bigger and starting over" % loaded)
        srv.stop()
        pg.query("DROP SCHEMA tributary CASCADE")
        pg.query("DROP TABLE IF EXISTS public.%s" % TABLE)
        write_cfg(None)
        srv.start()
        ddb, strm = clients()
        grow(loaded)
        srv.stop()
        write_cfg({"total": "numeric"})
    h.check(caught is not None, "the server was killed in the middle of its snapshot")
    if caught is None:
        raise RuntimeError("no snapshot to resume")
    h.check(log_from(run_at).count("copying a snapshot") == 1,
            "the killed run's log says it copies a snapshot")

    # ---------------- resumed, with writes going on ----------------
    run_at = log_size()
    srv.start()
    w = Writer(10 ** 7, 2.5)
    w.start()
    streaming_at = None
    while w.is_alive():
        s = table_state()
        if streaming_at is None and s and s[0] == "streaming":
            streaming_at = time.time()
        time.sleep(0.02)
    w.finish()
    wait_for(lambda: (table_state() or ("",))[0] == "streaming", 60, "the resumed snapshot ends")
    ddb, strm = clients()
    note("writer: %d changes, %d errors; first acknowledged %s the snapshot ended"
         % (w.ops, w.errors, "before" if w.first_ack and streaming_at and w.first_ack < streaming_at
            else "after (or unknown)"))
    h.check(w.ops > 50 and w.errors == 0,
            "the writer changed items during the resumed run (%d ok, %d errors)" % (w.ops, w.errors))
    run_log = log_from(run_at)
    m = re.search(r"resuming its snapshot after (\d+) items", run_log)
    h.check(m is not None, "the restarted run's log says it resumes its snapshot")
    resumed_after = int(m.group(1)) if m else -1
    m2 = re.search(r"resuming its snapshot after \d+ items \(now at LSN (\d+)\)", run_log)
    h.check(m2 is not None and int(m2.group(1)) > caught[1],
            "the resumed copy is of a later state than the first (LSN %s > %d): changes came in between"
            % (m2 and m2.group(1), caught[1]))
    h.check(resumed_after >= caught[0] and resumed_after > 0,
            "it resumes after the items copied before the kill (%d >= %d)" % (resumed_after, caught[0]))
    h.check("copying a snapshot" not in run_log, "the restarted run does not start the copy over")
    wait_for(caught_up, 90, "the postgres sink's checkpoint reaches the WAL's last LSN")
    m = srv.metrics()
    note("caught up: checkpoint %d, WAL %d..%d, snapshot items this run %d"
         % (m.get(CK, 0), m["tributary_wal_first_lsn"], m["tributary_wal_last_lsn"],
            m.get("tributary_postgres_snapshot_items_total", -1)))
    h.eq(m.get('tributary_sink_broken{sink="postgres"}'), 0.0, "the sink is not broken")
    h.eq(m.get("tributary_postgres_dead_letters_total"), 0.0, "no dead letters yet")
    st = table_state()
    h.check(st is not None and st[0] == "streaming", "tributary.tables: late is streaming (%r)" % (st,))
    h.check(st is not None and st[2] == caught[1],
            "the snapshot LSN is the first copy's (%r vs %d)" % (st, caught[1]))
    h.check(st is not None and st[1] == resumed_after + m.get("tributary_postgres_snapshot_items_total", -1),
            "snapshot_items = items before the kill (%d) + items copied after (%d): %r"
            % (resumed_after, m.get("tributary_postgres_snapshot_items_total", -1), st))
    prog = re.findall(r"snapshot (\d+) of about (\d+) items \((\d+)%\), (\d+) items/s", log_from(run_at))
    h.check(bool(prog) and st is not None and int(prog[-1][0]) == st[1],
            "the last progress line of the resumed copy counts every item copied (%r vs %r)"
            % (prog[-1:], st))
    ck = pg.query("SELECT lsn FROM tributary.checkpoints WHERE shard_id = '*'")
    h.check(len(ck) == 1 and ck[0][0] >= m["tributary_wal_last_lsn"],
            "tributary.checkpoints '*' row reaches the WAL's end (%r)" % ck)
    src, rep = compare(ddb, "after the resumed snapshot")
    h.check(sum(1 for it in src.values() if len(it.get("total", {}).get("N", "").lstrip("-")) >= 38) > 100,
            "38-digit totals were compared")
    h.check(any(k[0].startswith("w") for k in src), "items written during the snapshot were compared")

    # ---------------- B: a change PostgreSQL refuses ----------------
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shards = [s["ShardId"] for s in strm.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
              if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    iters = [strm.get_shard_iterator(StreamArn=arn, ShardId=s, ShardIteratorType="LATEST")["ShardIterator"]
             for s in shards]
    before = srv.metrics()["tributary_wal_last_lsn"]
    bad = {"pk": {"S": "bad"}, "sk": {"N": "1"}, "total": {"S": "not-a-number"},
           "name": {"S": "bad one"}, "n": {"N": "7"}}
    ddb.put_item(TableName=TABLE, Item=bad)
    after = srv.metrics()["tributary_wal_last_lsn"]
    good = [make_item(rnd, "good", i, i) for i in range(5)]
    for it in good:
        it["total"] = {"N": str(100 + int(it["sk"]["N"]))}
        ddb.put_item(TableName=TABLE, Item=it)
    seq = None
    for it in iters:
        for rec in strm.get_records(ShardIterator=it, Limit=100)["Records"]:
            if rec["dynamodb"]["Keys"]["pk"]["S"] == "bad":
                seq = rec["dynamodb"]["SequenceNumber"]
    h.check(seq is not None, "the stream has the bad change")
    wait_for(caught_up, 60, "the sink catches up after the bad change")
    m = srv.metrics()
    dl = pg.query("SELECT sink, source_table, lsn, sequence_number, event_name, sqlstate, error, "
                  "record::text FROM tributary.dead_letters ORDER BY id")
    h.eq(len(dl), 1, "one dead letter")
    if dl:
        d = dl[0]
        print("dead letter:", d, flush=True)
        h.eq(d[1], TABLE, "dead letter: source_table")
        h.check(before < d[2] <= after, "dead letter: its lsn %d is the bad put's (in (%d, %d])"
                % (d[2], before, after))
        h.check(seq is not None and d[2] == int(seq) - 10 ** 20 and d[3] == seq,
                "dead letter: lsn and sequence_number are the stream record's (%r, %r vs %r)"
                % (d[2], d[3], seq))
        h.eq(d[4], "INSERT", "dead letter: event_name")
        h.check(d[5] is not None and d[5].startswith("22"), "dead letter: SQLSTATE class 22 (%r)" % d[5])
        h.check("numeric" in d[6], "dead letter: the error mentions numeric (%r)" % d[6])
        rec = jload(d[7])
        h.eq(rec.get("NewImage"), bad, "dead letter: the record's NewImage")
        h.eq(rec.get("Keys"), {"pk": {"S": "bad"}, "sk": {"N": "1"}}, "dead letter: the record's Keys")
    h.eq(m.get("tributary_postgres_dead_letters_total"), 1.0, "the dead letter is counted")
    h.eq(m.get('tributary_sink_broken{sink="postgres"}'), 0.0, "the sink is not broken")
    got = pg.query("SELECT sk, item::text, total FROM public.%s WHERE pk = 'good' ORDER BY sk" % TABLE)
    h.eq(len(got), 5, "the good items after the bad one are in the replica")
    h.check(all(item_eq(it, jload(r[1])) and r[2] == Decimal(it["total"]["N"]) for it, r in zip(good, got)),
            "the good items are right in the replica")
    h.eq(pg.query("SELECT count(*) FROM public.%s WHERE pk = 'bad'" % TABLE), [(0,)],
         "the refused item is not in the replica")

    # ---------------- C: the config grows a typed column ----------------
    h.eq(srv.stop(), 0, "clean stop")
    write_cfg({"total": "numeric", "name": "text"})
    run_at = log_size()
    srv.start()
    ddb, strm = clients()

    def replica_cols():
        return [r[0] for r in pg.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s ORDER BY ordinal_position", (TABLE,))]

    # README: "A column added to the config is added to the table at the next
    # start and filled for the rows already there" -- before any new change.
    wait_for(lambda: "the postgres sink resumes after LSN" in log_from(run_at), 60,
             "the postgres sink opens after the restart")
    wait_for(caught_up, 60, "the sink is caught up after the restart")
    t_open = time.time()
    while time.time() - t_open < 5 and "name" not in replica_cols():
        time.sleep(0.1)
    cols = replica_cols()
    h.check("name" in cols, "at the next start (no new change yet, sink open and caught up for 5 s) "
            "the replica got the column name added to the config (columns %r)" % cols)
    if "name" in cols:
        nulls = pg.query("SELECT count(*) FROM public.%s WHERE name IS NULL AND item ? 'name'" % TABLE)
        h.eq(nulls, [(0,)], "at the next start, existing rows have name filled from item")
    fresh = [make_item(rnd, "c", i, 2 * 10 ** 6 + i) for i in range(30)]
    batch_put(ddb, fresh[:25])
    for it in fresh[25:]:
        ddb.put_item(TableName=TABLE, Item=it)
    for n in rnd.sample(range(loaded), 20):
        ddb.update_item(TableName=TABLE, Key=key_of(n), UpdateExpression="SET #n = :n",
                        ExpressionAttributeNames={"#n": "name"},
                        ExpressionAttributeValues={":n": {"S": "renamed\t%d" % n}})
    wait_for(caught_up, 90, "the sink catches up after the restart with a new column")
    cols = replica_cols()
    h.check("name" in cols, "after new changes, the replica has the column name (%r)" % cols)
    h.check("adding column name" in log_from(run_at), "the log says the column was added")
    if "name" in cols:
        src, rep = compare(ddb, "after the new column", with_name=True, skip=[("bad", Decimal(1))])
        h.check(all(("c", Decimal(i)) in rep and rep[("c", Decimal(i))][5] == fresh[i]["name"]["S"]
                    for i in range(30)), "new writes fill the new column")
    m = srv.metrics()
    h.eq(m.get('tributary_sink_broken{sink="postgres"}'), 0.0, "the sink is not broken at the end")
    h.eq(pg.query("SELECT count(*) FROM tributary.dead_letters"), [(1,)],
         "filling the new column made no dead letters")
    h.eq(srv.stop(), 0, "clean stop at the end")
except Exception:
    import traceback
    traceback.print_exc()
    h.check(False, "the test ran to the end")
finally:
    srv.stop()
    if h.failed:
        print("---- server log (tail) ----")
        print(open(srv.log_path, errors="replace").read()[-8000:])
    pg.cleanup()
print("run time %.1f s" % (time.time() - T0))
sys.exit(h.done())
