"""`tributary stream tail` and `tributary history` end to end against a
running `tributary serve`.

stream tail: every record from TRIM_HORIZON, exactly as GetRecords gives it
(compared with raw Streams API calls) and as written (compared with the
workload); --format pretty; --from latest in the background sees a later
write; --from SEQ; following shards across rollovers (per-item order, each
record once); SIGTERM; SigV4 against a server with credentials; a table
without a stream, an unreachable server, bad arguments.

history: with the server running on the data directory, every version of an
item in order with the right event names and images (numbers compared by
value in the key), the JSON form equal to the stream's records, --since /
--until in ISO-8601 and epoch seconds, a table deleted and created again,
errors and bad arguments."""
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

BIN = os.environ["TRB_BIN"]
TMP = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(TMP, exist_ok=True)
h = Harness("cli_stream")
servers = []

# The tail is run without AWS credentials in its environment unless a check
# says otherwise (an unauthenticated server accepts unsigned requests).
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def config(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, dir=TMP)
    f.write(text)
    f.close()
    return f.name


def start(cfg=None):
    s = Server(config=cfg).start()
    servers.append(s)
    return s


def clients(srv, key="local", secret="local", region="us-east-1"):
    kw = dict(endpoint_url=srv.url, region_name=region, aws_access_key_id=key,
              aws_secret_access_key=secret,
              config=botocore.config.Config(retries={"max_attempts": 1}))
    return boto3.client("dynamodb", **kw)


def run(*args, env=None, timeout=60):
    e = dict(BASE_ENV)
    e.update(env or {})
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout, env=e)
    return p.returncode, p.stdout, p.stderr


def raw(srv, op, body):
    """One Streams API call as raw JSON (what the tail must print verbatim)."""
    req = urllib.request.Request(srv.url + "/", data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDBStreams_20120810." + op})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def stream_records(srv, table):
    """Every record of the table's newest stream via the raw API, parents
    first, sorted by sequence number."""
    arn = raw(srv, "ListStreams", {"TableName": table})["Streams"][-1]["StreamArn"]
    shards, start = [], None
    while True:
        body = {"StreamArn": arn}
        if start:
            body["ExclusiveStartShardId"] = start
        d = raw(srv, "DescribeStream", body)["StreamDescription"]
        shards += d["Shards"]
        start = d.get("LastEvaluatedShardId")
        if not start:
            break
    out = []
    for s in shards:
        it = raw(srv, "GetShardIterator", {"StreamArn": arn, "ShardId": s["ShardId"],
                                           "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        while it:
            r = raw(srv, "GetRecords", {"ShardIterator": it})
            out += r["Records"]
            it = r.get("NextShardIterator") if r["Records"] else None
    out.sort(key=lambda r: int(r["dynamodb"]["SequenceNumber"]))
    return out, shards


def make_table(ddb, name, stream=True, view="NEW_AND_OLD_IMAGES"):
    kw = dict(TableName=name, BillingMode="PAY_PER_REQUEST",
              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                    {"AttributeName": "sk", "AttributeType": "N"}],
              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                         {"AttributeName": "sk", "KeyType": "RANGE"}])
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    ddb.create_table(**kw)


class Background:
    """A tail running in the background; ready() waits for its 'tailing' line."""

    def __init__(self, *args, env=None):
        e = dict(BASE_ENV)
        e.update(env or {})
        self.p = subprocess.Popen([BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=e)
        self.err_lines = []
        self.ready_ev = threading.Event()
        self.t = threading.Thread(target=self._read_err, daemon=True)
        self.t.start()

    def _read_err(self):
        for line in self.p.stderr:
            self.err_lines.append(line)
            if "tailing" in line:
                self.ready_ev.set()
        self.ready_ev.set()

    def ready(self, timeout=30):
        return self.ready_ev.wait(timeout) and self.p.poll() is None

    def wait(self, timeout=60):
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        self.t.join(5)
        return self.p.returncode, out, "".join(self.err_lines)


def K(pk, sk):
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


try:
    srv = start()
    ddb = clients(srv)
    U = srv.url
    make_table(ddb, "orders")
    make_table(ddb, "plain", stream=False)

    # ---- the workload: versions of ann/1, other items around it ----
    expect = []  # (eventName, Keys, NewImage or None, OldImage or None)
    cur = {}

    def put(item):
        key = json.dumps({"pk": item["pk"], "sk": item["sk"]}, sort_keys=True)
        old = cur.get(key)
        ddb.put_item(TableName="orders", Item=item)
        if old != item:
            expect.append(("MODIFY" if old else "INSERT", {"pk": item["pk"], "sk": item["sk"]}, item, old))
        cur[key] = item

    def delete(k):
        key = json.dumps(k, sort_keys=True)
        old = cur.pop(key, None)
        ddb.delete_item(TableName="orders", Key=k)
        if old:
            expect.append(("REMOVE", k, None, old))

    put(dict(K("ann", 1), v={"N": "1"}))
    put(dict(K("bob", 1), v={"S": "x"}))
    put(dict(K("ann", 1), v={"N": "2"}, tag={"SS": ["a", "b"]}))
    put(dict(K("ann", 1), v={"N": "2"}, tag={"SS": ["a", "b"]}))  # no change: no record
    put(dict(K("ann", 2), v={"N": "9"}))
    ddb.update_item(TableName="orders", Key=K("ann", 1), UpdateExpression="SET v = v + :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    old = cur[json.dumps(K("ann", 1), sort_keys=True)]
    new = dict(old, v={"N": "3"})
    expect.append(("MODIFY", K("ann", 1), new, old))
    cur[json.dumps(K("ann", 1), sort_keys=True)] = new
    time.sleep(1.2)
    mid = time.time()  # --since / --until boundary (commit times are whole microseconds)
    time.sleep(1.2)
    delete(K("ann", 1))
    put(dict(K("carl", 5), v={"BOOL": True}))
    put(dict(K("ann", 1), v={"N": "4"}))
    n_first = len(expect)

    records, _ = stream_records(srv, "orders")
    h.eq(len(records), len(expect), "the raw stream holds every change once")
    for i, (ev, keys, nw, od) in enumerate(expect):
        r = records[i] if i < len(records) else {}
        d = r.get("dynamodb", {})
        h.eq((r.get("eventName"), d.get("Keys"), d.get("NewImage"), d.get("OldImage")),
             (ev, keys, nw, od), "raw stream record %d is the write" % i)

    # ---- stream tail --from trim_horizon --count N ----
    rc, out, err = run("stream", "tail", "orders", "--endpoint", U, "--from", "trim_horizon",
                       "--count", str(n_first))
    h.eq(rc, 0, "tail --count exits 0: " + err)
    lines = out.splitlines()
    h.eq(len(lines), n_first, "tail --count N prints N lines")
    h.eq([json.loads(x) for x in lines], records, "tail prints GetRecords' records, in order")
    h.check("tailing" in err and "TRIM_HORIZON" in err, "stderr says where it starts: " + err)
    # fewer than there are
    rc, out, err = run("stream", "tail", "orders", "--endpoint", U, "--from", "trim_horizon",
                       "--count", "3")
    h.eq((rc, [json.loads(x) for x in out.splitlines()]), (0, records[:3]), "tail --count 3")
    # everything, then idle: no duplicate, no extra
    rc, out, err = run("stream", "tail", "orders", "--endpoint", U, "--from", "trim_horizon",
                       "--idle-exit", "1")
    h.eq((rc, [json.loads(x) for x in out.splitlines()]), (0, records),
         "tail --idle-exit prints every record once, then exits 0")
    # --endpoint without a scheme, and --opt=value
    rc, out, err = run("stream", "tail", "orders", "--endpoint=127.0.0.1:%d" % srv.port,
                       "--from=trim_horizon", "--count=1")
    h.eq((rc, [json.loads(x) for x in out.splitlines()]), (0, records[:1]), "--opt=value forms")
    # the default endpoint comes from api.listen in the config
    rc, out, err = run("--config", config("api:\n  listen: 127.0.0.1:%d\n" % srv.port),
                       "stream", "tail", "orders", "--from", "trim_horizon", "--count", "1")
    h.eq((rc, len(out.splitlines())), (0, 1), "endpoint from api.listen: " + err)

    # ---- --format pretty ----
    rc, out, err = run("stream", "tail", "orders", "--endpoint", U, "--from", "trim_horizon",
                       "--count", str(n_first), "--format", "pretty")
    h.eq(rc, 0, "pretty exits 0")
    plines = out.splitlines()
    h.eq(len(plines), n_first, "pretty: one line per record")
    for i, line in enumerate(plines[:n_first]):
        f = line.split("  ")
        r = records[i]
        h.check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", f[0]) is not None, "pretty time: " + line)
        h.eq(f[1:3], [r["dynamodb"]["SequenceNumber"], r["eventName"]], "pretty seq and event")
        h.eq(json.loads(f[3]), r["dynamodb"]["Keys"], "pretty keys")
        rest = dict(x.split("=", 1) for x in f[4:])
        h.eq({k: json.loads(v) for k, v in rest.items()},
             {k: v for k, v in (("old", r["dynamodb"].get("OldImage")),
                                ("new", r["dynamodb"].get("NewImage"))) if v is not None},
             "pretty images of record %d" % i)
    h.eq([x.split("  ")[2] for x in plines], [e[0] for e in expect], "pretty event names in order")

    # ---- --from SEQ ----
    seq3 = records[3]["dynamodb"]["SequenceNumber"]
    rc, out, err = run("stream", "tail", "orders", "--endpoint", U, "--from", seq3, "--idle-exit", "1")
    h.eq((rc, [json.loads(x) for x in out.splitlines()]), (0, records[3:]),
         "--from SEQ prints the records from SEQ on")

    # ---- --from latest in the background sees a later write ----
    bg = Background("stream", "tail", "orders", "--endpoint", U, "--from", "latest", "--idle-exit", "3")
    h.check(bg.ready(), "latest tail positions itself")
    ddb.put_item(TableName="orders", Item=dict(K("late", 1), v={"S": "after"}))
    rc, out, err = bg.wait()
    got = [json.loads(x) for x in out.splitlines()]
    h.eq(rc, 0, "latest tail exits 0 after --idle-exit: " + err)
    h.eq([(r["eventName"], r["dynamodb"]["Keys"]) for r in got], [("INSERT", K("late", 1))],
         "latest tail prints exactly the write made after it started")

    # ---- SIGTERM stops it cleanly ----
    bg = Background("stream", "tail", "orders", "--endpoint", U)
    h.check(bg.ready(), "tail started")
    bg.p.send_signal(signal.SIGTERM)
    rc, out, err = bg.wait(timeout=15)
    h.eq((rc, out), (0, ""), "SIGTERM: exit 0, nothing printed: " + err)
    # Ctrl-C while records flow: exit 0, every line printed whole
    bg = Background("stream", "tail", "orders", "--endpoint", U)
    h.check(bg.ready(), "tail started")
    flowing = threading.Event()

    def flow_writer():
        for j in range(400):
            if flowing.is_set():
                break
            ddb.put_item(TableName="orders", Item=dict(K("flow", j), v={"N": str(j)}))

    wt = threading.Thread(target=flow_writer)
    wt.start()
    time.sleep(1.5)
    bg.p.send_signal(signal.SIGINT)
    rc, out, err = bg.wait(timeout=15)
    flowing.set()
    wt.join()
    flow = [json.loads(x)["dynamodb"]["Keys"]["sk"]["N"] for x in out.splitlines()]
    h.check(rc == 0 and len(flow) > 0 and flow == [str(j) for j in range(len(flow))],
            "SIGINT while records flow: exit 0, whole lines in order (%s, %r): %s" % (rc, flow, err))

    # ---- errors ----
    rc, out, err = run("stream", "tail", "plain", "--endpoint", U)
    h.eq(rc, 1, "table without a stream: exit 1")
    h.check("table plain has no stream" in err and "StreamSpecification" in err, "no-stream message: " + err)
    rc, out, err = run("stream", "tail", "nosuchtable", "--endpoint", U)
    h.eq(rc, 1, "unknown table: exit 1")
    h.eq(len(err.splitlines()), 1, "unknown table: one-line message: " + err)
    import socket
    sk = socket.socket()
    sk.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % sk.getsockname()[1]
    sk.close()
    rc, out, err = run("stream", "tail", "orders", "--endpoint", dead)
    h.eq(rc, 1, "unreachable server: exit 1")
    h.check(("cannot reach the server at " + dead) in err, "unreachable message: " + err)

    for args in (["stream"], ["stream", "bogus"], ["stream", "tail"],
                 ["stream", "tail", "orders", "--from", "yesterday"],
                 ["stream", "tail", "orders", "--from", "12x"],
                 ["stream", "tail", "orders", "--format", "xml"],
                 ["stream", "tail", "orders", "--count", "0"],
                 ["stream", "tail", "orders", "--count", "-3"],
                 ["stream", "tail", "orders", "--idle-exit", "-1"],
                 ["stream", "tail", "orders", "--idle-exit", "soon"],
                 ["stream", "tail", "orders", "--bogus"],
                 ["stream", "tail", "orders", "extra"],
                 ["stream", "tail", "orders", "--endpoint", "ftp://x"],
                 ["stream", "tail", "orders", "--count"]):
        rc, out, err = run(*args)
        h.eq(rc, 2, "bad arguments %s: exit 2 (%s)" % (args, err.strip()))
    for args in (["stream", "--help"], ["stream", "tail", "--help"], ["history", "--help"]):
        rc, out, err = run(*args)
        h.check(rc == 0 and out.startswith("usage: tributary"), "%s prints usage" % args)
    rc, out, err = run("--help")
    h.check("history TABLE --key" in out and "stream tail TABLE" in out, "main usage lists both commands")

    # ---- history, with the server running on the data directory ----
    D = ["--data-dir", srv.data_dir]
    ann = [e for e in expect if e[1] == K("ann", 1)]
    ann_recs = [r for r in records if r["dynamodb"]["Keys"] == K("ann", 1)]
    for key in ('{"pk":{"S":"ann"},"sk":{"N":"1"}}', '{"sk":{"N":"1.00"},"pk":{"S":"ann"}}',
                '{"pk":{"S":"ann"},"sk":{"N":"1e0"}}'):
        rc, out, err = run(*D, "history", "orders", "--key", key)
        h.eq(rc, 0, "history exits 0 while the server runs: " + err)
        hl = out.splitlines()
        h.eq([x.split("  ")[2] for x in hl], [e[0] for e in ann], "history event names (%s)" % key)
        h.eq([x.split("  ")[1] for x in hl], [r["dynamodb"]["SequenceNumber"] for r in ann_recs],
             "history sequence numbers are the stream's")
    for line, e in zip(hl, ann):
        f = line.split("  ")
        h.check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", f[0]) is not None, "history time: " + line)
        if e[0] == "REMOVE":
            h.eq(f[3:], ["deleted"], "history REMOVE line")
        else:
            h.check(f[3].startswith("new=") and json.loads(f[3][4:]) == e[2], "history image: " + line)
    rc, out, err = run(*D, "history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}',
                       "--format", "json")
    h.eq((rc, [json.loads(x) for x in out.splitlines()]), (0, ann_recs),
         "history --format json gives the stream's records")
    times = [datetime.datetime.strptime(x.split("  ")[0], "%Y-%m-%dT%H:%M:%S.%fZ")
             .replace(tzinfo=datetime.timezone.utc).timestamp() for x in hl]
    h.check(times == sorted(times), "history times ascend")
    after_mid = [e[0] for e, t in zip(ann, times) if t >= mid]
    h.check(0 < len(after_mid) < len(ann), "the workload has versions on both sides of mid")
    iso = datetime.datetime.fromtimestamp(mid, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for since in (iso, "%.6f" % mid,
                  datetime.datetime.fromtimestamp(mid, datetime.timezone(datetime.timedelta(hours=2)))
                  .strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")):
        rc, out, err = run(*D, "history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}',
                           "--since", since)
        h.eq((rc, [x.split("  ")[2] for x in out.splitlines()]), (0, after_mid), "--since " + since)
    rc, out, err = run(*D, "history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}',
                       "--until", iso)
    h.eq((rc, [x.split("  ")[2] for x in out.splitlines()]), (0, [e[0] for e, t in zip(ann, times) if t < mid]),
         "--until")
    rc, out, err = run(*D, "history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}',
                       "--since", str(int(time.time()) + 3600))
    h.eq((rc, out), (0, ""), "--since in the future: nothing, exit 0")
    h.check("no changes of this item are in the WAL" in err, "no-changes message: " + err)
    rc, out, err = run(*D, "history", "orders", "--key", '{"pk":{"S":"nobody"},"sk":{"N":"1"}}')
    h.eq((rc, out), (0, ""), "an item never written: exit 0")
    h.check("no changes of this item are in the WAL" in err, "no-changes message: " + err)

    # a table deleted and created again: both incarnations, the deletion marked
    make_table(ddb, "recycle")
    ddb.put_item(TableName="recycle", Item=dict(K("x", 1), v={"N": "1"}))
    ddb.delete_table(TableName="recycle")
    make_table(ddb, "recycle")
    ddb.put_item(TableName="recycle", Item=dict(K("x", 1), v={"N": "2"}))
    rc, out, err = run(*D, "history", "recycle", "--key", '{"pk":{"S":"x"},"sk":{"N":"1"}}')
    h.eq((rc, [x.split("  ")[2] for x in out.splitlines()]), (0, ["INSERT", "TABLE_DELETE", "INSERT"]),
         "history across a table's deletion and re-creation: " + err)

    # errors and bad arguments
    for args, code, what in (
            (["history", "orders"], 2, "missing --key"),
            (["history", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}'], 2, "missing TABLE"),
            # a key read and refused exits 1, as put and get do with theirs
            (["history", "orders", "--key", '{"pk":{"S":"ann"'], 1, "malformed key JSON"),
            (["history", "orders", "--key", '{"pk":{"S":"ann"}}'], 1, "key not matching the schema"),
            (["history", "orders", "--key", '{"pk":{"N":"1"},"sk":{"N":"1"}}'], 1, "key of the wrong type"),
            (["history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}', "--since", "yesterday"], 2, "bad --since"),
            (["history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}', "--until", "2026-13-01T00:00:00Z"], 2, "bad --until"),
            (["history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}', "--since", "2026-12-02", "--until", "2026-12-01"], 2, "--since after --until"),
            (["history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}', "--format", "xml"], 2, "bad --format"),
            (["history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}', "--bogus"], 2, "unknown option"),
            (["history", "nosuchtable", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}'], 1, "unknown table")):
        rc, out, err = run(*D, *args)
        h.eq(rc, code, "history %s: exit %d (%s)" % (what, code, err.strip()))
        h.eq(len(err.splitlines()), 1, "history %s: one-line message" % what)
    rc, out, err = run("--data-dir", os.path.join(TMP, "no-such-dir-here"), "history", "orders",
                       "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}')
    h.check(rc == 1 and len(err.splitlines()) == 1 and "no-such-dir-here" in err,
            "history on a missing data directory: exit 1, one line: " + err)
    srv.stop()
    # and after the server stopped, the same history
    rc, out, err = run(*D, "history", "orders", "--key", '{"pk":{"S":"ann"},"sk":{"N":"1"}}')
    h.eq((rc, [x.split("  ")[2] for x in out.splitlines()]), (0, [e[0] for e in ann]),
         "history with the server stopped")

    # ---- following shards across rollovers ----
    srv2 = start(config("streams:\n  shards: 2\n  rollover_s: 1\n"))
    ddb2 = clients(srv2)
    make_table(ddb2, "roll", view="NEW_IMAGE")
    bg = Background("stream", "tail", "roll", "--endpoint", srv2.url, "--from", "latest",
                    "--idle-exit", "4")
    h.check(bg.ready(), "rollover tail started")
    written = {}
    t_end = time.time() + 3.5
    i = 0
    while time.time() < t_end:
        pk = "k%d" % (i % 5)
        ddb2.put_item(TableName="roll", Item={"pk": {"S": pk}, "sk": {"N": "0"}, "n": {"N": str(i)}})
        written.setdefault(pk, []).append(str(i))
        i += 1
        time.sleep(0.05)
    rc, out, err = bg.wait(timeout=120)
    h.eq(rc, 0, "rollover tail exits 0: " + err)
    seen = {}
    for line in out.splitlines():
        r = json.loads(line)
        seen.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(r["dynamodb"]["NewImage"]["n"]["N"])
    h.eq(seen, written, "across rollovers: every record once, each item's in order")
    _, shards = stream_records(srv2, "roll")
    h.check(len(shards) > 4, "the stream rolled over (%d shards)" % len(shards))
    rc, out, err = run("stream", "tail", "roll", "--endpoint", srv2.url, "--from", "trim_horizon",
                       "--count", str(i))
    seen = {}
    for line in out.splitlines():
        r = json.loads(line)
        seen.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(r["dynamodb"]["NewImage"]["n"]["N"])
    h.eq((rc, seen), (0, written), "trim_horizon over closed shards, parents first")
    srv2.stop()

    # A parent larger than one GetRecords page (1000 records) and a child:
    # the child must wait until the parent is read to its end.
    srv4 = start(config("streams:\n  shards: 1\n  rollover_s: 3\n"))
    ddb4 = clients(srv4)
    t0 = time.time()
    make_table(ddb4, "big", view="KEYS_ONLY")
    for b in range(50):
        ddb4.batch_write_item(RequestItems={"big": [
            {"PutRequest": {"Item": K("p%d" % (b * 25 + j), 0)}} for j in range(25)]})
    time.sleep(max(0, t0 + 3.3 - time.time()))
    ddb4.put_item(TableName="big", Item=K("child", 0))
    recs4, shards4 = stream_records(srv4, "big")
    first = {r["dynamodb"]["SequenceNumber"] for r in recs4[:1250]}
    h.check(len(shards4) == 2 and int(shards4[0]["SequenceNumberRange"]["EndingSequenceNumber"]) >=
            max(int(x) for x in first), "the 1250 records are in the first shard: %s" % shards4)
    rc, out, err = run("stream", "tail", "big", "--endpoint", srv4.url, "--from", "trim_horizon",
                       "--count", "1251")
    seqs = [int(json.loads(x)["dynamodb"]["SequenceNumber"]) for x in out.splitlines()]
    h.eq((rc, len(seqs)), (0, 1251), "a 1250-record parent and its child: every record")
    h.check(seqs == sorted(seqs), "the child's record comes after all of its parent's")
    h.eq(json.loads(out.splitlines()[-1])["dynamodb"]["Keys"] if seqs else None, K("child", 0),
         "the child's record is last")
    srv4.stop()

    # ---- SigV4 against a server with credentials ----
    creds = "api:\n  access_key_id: AKIDCLITEST\n  secret_access_key: s3cret\nregion: eu-west-1\n"
    cfg3 = config(creds)
    srv3 = start(cfg3)
    ddb3 = clients(srv3, "AKIDCLITEST", "s3cret", region="eu-west-1")
    h.raises(lambda: clients(srv3, "AKIDCLITEST", "s3cret").list_tables(), "InvalidSignatureException",
             "a client signing for us-east-1 at an eu-west-1 server")
    make_table(ddb3, "auth", view="KEYS_ONLY")
    ddb3.put_item(TableName="auth", Item=K("a", 1))
    rc, out, err = run("--config", cfg3, "stream", "tail", "auth", "--endpoint", srv3.url,
                       "--from", "trim_horizon", "--count", "1")
    h.eq((rc, [json.loads(x)["dynamodb"]["Keys"] for x in out.splitlines()]), (0, [K("a", 1)]),
         "signed with the config's credentials: " + err)
    envk = {"AWS_ACCESS_KEY_ID": "AKIDCLITEST", "AWS_SECRET_ACCESS_KEY": "s3cret"}
    rc, out, err = run("stream", "tail", "auth", "--endpoint", srv3.url, "--from", "trim_horizon",
                       "--count", "1", env=dict(envk, AWS_DEFAULT_REGION="eu-west-1"))
    h.eq(rc, 0, "signed with the environment's credentials and region: " + err)
    rc, out, err = run("stream", "tail", "auth", "--endpoint", srv3.url, "--from", "trim_horizon",
                       "--count", "1", env=dict(envk, AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="us-east-1"))
    h.eq(rc, 0, "AWS_REGION before AWS_DEFAULT_REGION: " + err)
    rc, out, err = run("stream", "tail", "auth", "--endpoint", srv3.url, "--from", "trim_horizon",
                       "--count", "1", env=envk)
    h.check(rc == 1 and "should be scoped to a valid region" in err,
            "the environment's keys without its region sign for us-east-1, which that server refuses: " + err)
    rc, out, err = run("stream", "tail", "auth", "--endpoint", srv3.url, "--from", "trim_horizon", "--count", "1")
    h.eq(rc, 1, "unsigned against a server with credentials: exit 1")
    h.check("MissingAuthenticationTokenException" in err, "the server's error type is printed: " + err)
    rc, out, err = run("stream", "tail", "auth", "--endpoint", srv3.url, "--count", "1",
                       env={"AWS_ACCESS_KEY_ID": "AKIDCLITEST", "AWS_SECRET_ACCESS_KEY": "wrong"})
    h.check(rc == 1 and "InvalidSignatureException" in err, "a wrong secret: exit 1: " + err)
    srv3.stop()
finally:
    for s in servers:
        s.stop()

sys.exit(h.done())
