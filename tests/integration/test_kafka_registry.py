"""The Kafka sink's Confluent framing, with kafka.schema_registry set.

THE REGISTRY HERE IS A STAND-IN, NOT CONFLUENT'S SCHEMA REGISTRY: a small
http.server on 127.0.0.1:0 inside this test that implements only the two
REST calls involved, answering as Confluent documents them:

  POST /subjects/{subject}/versions  {"schema": "..."}  ->  {"id": N}
       (the sink registers with it; the same schema text gets the same id
       under any subject, as Confluent's global ids do; 415 for another
       Content-Type, 422 for a schema python3-avro does not parse)
  GET  /schemas/ids/{id}  ->  {"schema": "..."}
       (what a consumer's deserializer asks; this test's consumer does)

It answers the first two registrations with 503 (an error body as
Confluent's), so the sink's first deliveries fail and are retried.

Against `tributary kafka-mock` (librdkafka's mock cluster, its own process)
and a server whose config points kafka.schema_registry at the stand-in,
a few changes go to two tables with streams; the server is restarted
between two of them. An independent read_committed consumer
(python3-confluent-kafka) then checks that every key and value (tombstones'
keys too) starts with 00 and the 4-byte big-endian id the stand-in issued
for "<topic>-key" / "<topic>-value"; that the registered schemas are the
shipped schemas/*.avsc and parse with python3-avro; that the payload after
the 5-byte header decodes with the schema fetched by id into the right
change (eventName, before and after images), each change once, in order;
that each subject was registered once per server process; and that nothing
went to the schemas topic (which only the single-object framing uses).
"""
import http.server
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import avro.io  # noqa: E402
import avro.schema  # noqa: E402
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("kafka_registry")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="kafka-reg-", dir=base)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SHIPPED = {"value": open(os.path.join(ROOT, "schemas", "tributary-envelope.avsc")).read(),
           "key": open(os.path.join(ROOT, "schemas", "tributary-key.avsc")).read()}


# ---- the registry stand-in ----

class Registry:
    """State of the stand-in (see the top of the file): ids by schema text,
    the subjects' versions, and every POST with its outcome."""

    def __init__(self, fail_first):
        self.lock = threading.Lock()
        self.id_of = {}        # schema text -> id
        self.schema_of = {}    # id -> schema text
        self.subjects = {}     # subject -> [id, ...] (its versions)
        self.posts = []        # (subject, HTTP status)
        self.gets = []
        self.fail_left = fail_first
        self.next_id = 101     # not 0 or 1, so a wrong id cannot pass by chance


REG = Registry(fail_first=2)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a registry does

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        m = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
        if not m:
            return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        subject = urllib.parse.unquote(m.group(1))
        with REG.lock:
            ctype = self.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip() not in ("application/vnd.schemaregistry.v1+json",
                                                  "application/vnd.schemaregistry+json",
                                                  "application/json"):
                REG.posts.append((subject, 415))
                return self.answer(415, {"error_code": 415, "message": "HTTP 415 Unsupported Media Type"})
            try:
                req = json.loads(raw)
                text = req["schema"]
                avro.schema.parse(text)
            except Exception as ex:  # noqa: BLE001
                REG.posts.append((subject, 422))
                return self.answer(422, {"error_code": 42201, "message": "Invalid schema: %s" % ex})
            if REG.fail_left > 0:
                REG.fail_left -= 1
                REG.posts.append((subject, 503))
                return self.answer(503, {"error_code": 50003,
                                         "message": "stand-in: injected failure, try again"})
            sid = REG.id_of.get(text)
            if sid is None:
                sid = REG.next_id
                REG.next_id += 1
                REG.id_of[text] = sid
                REG.schema_of[sid] = text
            vs = REG.subjects.setdefault(subject, [])
            if sid not in vs:
                vs.append(sid)
            REG.posts.append((subject, 200))
        return self.answer(200, {"id": sid})

    def do_GET(self):
        m = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
        with REG.lock:
            REG.gets.append(self.path)
            text = REG.schema_of.get(int(m.group(1))) if m else None
        if text is None:
            return self.answer(404, {"error_code": 40403, "message": "Schema not found"})
        return self.answer(200, {"schema": text})


reg_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
reg_srv.daemon_threads = True
threading.Thread(target=reg_srv.serve_forever, daemon=True).start()
REG_URL = "http://127.0.0.1:%d" % reg_srv.server_address[1]

schema_cache = {}


def schema_by_id(sid):
    """What a Confluent deserializer does: GET /schemas/ids/{id}, once per id."""
    if sid not in schema_cache:
        with urllib.request.urlopen("%s/schemas/ids/%d" % (REG_URL, sid), timeout=10) as r:
            schema_cache[sid] = avro.schema.parse(json.loads(r.read())["schema"])
    return schema_cache[sid]


def unframe(b):
    """Confluent wire format: 00, the id (4 bytes big-endian), the datum."""
    assert b[0] == 0, b[:5]
    sid = struct.unpack(">I", b[1:5])[0]
    return sid, avro.io.DatumReader(schema_by_id(sid)).read(avro.io.BinaryDecoder(io.BytesIO(b[5:])))


def av_to_ddb(av):
    """An io.tributary.AttributeValue as DynamoDB JSON, sets sorted."""
    for t in ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"):
        v = av.get(t)
        if v is not None:
            if t == "M":
                return {"M": {k: av_to_ddb(x) for k, x in v.items()}}
            if t == "L":
                return {"L": [av_to_ddb(x) for x in v]}
            if t in ("SS", "NS", "BS"):
                return {t: sorted(v)}
            return {t: v}
    raise ValueError("an AttributeValue with no type: %r" % av)


def norm(item):
    """DynamoDB JSON as boto3 takes it, sets sorted (for comparing)."""
    def one(v):
        (t, x), = v.items()
        if t == "M":
            return {"M": {k: one(y) for k, y in x.items()}}
        if t == "L":
            return {"L": [one(y) for y in x]}
        if t in ("SS", "NS", "BS"):
            return {t: sorted(x)}
        return {t: x}
    return None if item is None else {k: one(v) for k, v in item.items()}


# ---- Kafka and the server ----

mock = subprocess.Popen([os.environ["TRB_BIN"], "kafka-mock", "--brokers", "1"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True, bufsize=1)
first = mock.stdout.readline().split()
assert first[0] == "bootstrap", first
BOOT = first[1]

cfg = os.path.join(work, "tributary.yaml")
with open(cfg, "w") as f:
    f.write("streams:\n  shards: 2\nkafka:\n  brokers: %s\n  format: avro\n  schema_registry: %s/\n"
            % (BOOT, REG_URL))
srv = Server(config=cfg, data_dir=os.path.join(work, "data"))
TOPICS = {"orders": "us-east-1.orders", "audit": "us-east-1.audit"}


def clients():
    kw = dict(endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="local",
              aws_secret_access_key="local",
              config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
    return boto3.client("dynamodb", **kw)




def caught_up(what):
    deadline = time.time() + 60
    m = {}
    while time.time() < deadline:
        m = srv.metrics()
        if m.get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= m["tributary_wal_last_lsn"]:
            break
        time.sleep(0.2)
    h.check(m.get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= m.get("tributary_wal_last_lsn", 1),
            "%s: the Kafka sink caught up: %r" % (what, {k: v for k, v in m.items() if "sink" in k}))
    h.eq(m.get('tributary_sink_broken{sink="kafka"}'), 0.0, what + ": the sink is not broken")


def read_topic(topic):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "check-" + topic, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10).topics[topic]
    parts = sorted(md.partitions)
    his = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    msgs = []
    idle = 0
    while idle < 50:
        mm = c.poll(0.2)
        if mm is None:
            pos = {tp.partition: tp.offset for tp in c.position([TopicPartition(topic, p) for p in parts])}
            if all(pos[p] >= his[p] for p in parts):
                break
            idle += 1
            continue
        if mm.error():
            continue
        msgs.append((mm.partition(), mm.offset(), mm.key(), mm.value(), dict(mm.headers() or [])))
    c.close()
    return sorted(msgs, key=lambda x: (x[0], x[1]))


O1 = {"pk": {"S": "o1"}, "n": {"N": "1"}, "note": {"S": "first \u00e9t\u00e9"}}
O1b = dict(O1, n={"N": "10"})
O2 = {"pk": {"S": "o2"}, "n": {"N": "2"}, "tags": {"SS": ["b", "a"]}}
O3 = {"pk": {"S": "o3"}, "bin": {"B": b"\x00\x01\xff"}, "ok": {"BOOL": True}, "nil": {"NULL": True},
      "l": {"L": [{"N": "-1.5"}, {"S": "x"}]}, "m": {"M": {"inner": {"NS": ["3", "12345678901234567890"]}}}}
O4 = {"pk": {"S": "o4"}, "n": {"N": "4"}}
A1 = {"pk": {"S": "a1"}, "what": {"S": "audit"}}
# per item: the changes the topic must hold, in order: (eventName, OldImage, NewImage)
WANT = {("orders", "o1"): [("INSERT", None, O1), ("MODIFY", O1, O1b)],
        ("orders", "o2"): [("INSERT", None, O2), ("REMOVE", O2, None)],
        ("orders", "o3"): [("INSERT", None, O3)],
        ("orders", "o4"): [("INSERT", None, O4)],
        ("audit", "a1"): [("INSERT", None, A1)]}

try:
    srv.start()
    ddb = clients()
    for t in TOPICS:
        ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName="orders", Item=O1)
    ddb.put_item(TableName="orders", Item=O2)
    ddb.update_item(TableName="orders", Key={"pk": {"S": "o1"}}, UpdateExpression="SET n = :n",
                    ExpressionAttributeValues={":n": {"N": "10"}})
    ddb.delete_item(TableName="orders", Key={"pk": {"S": "o2"}})
    ddb.put_item(TableName="orders", Item=O3)
    ddb.put_item(TableName="audit", Item=A1)
    caught_up("first run")
    with REG.lock:
        posts1 = list(REG.posts)
    h.eq([st for s, st in posts1[:2]], [503, 503], "the first two registrations got the injected 503")
    h.eq(sum(1 for s, st in posts1 if st == 503), 2, "and no others")
    log = open(srv.log_path, encoding="utf-8", errors="replace").read()
    h.check("HTTP 503" in log and "injected failure" in log,
            "the failed registration is in the server log with the registry's message")
    ok1 = sorted(s for s, st in posts1 if st == 200)
    h.eq(ok1, sorted(["us-east-1.orders-key", "us-east-1.orders-value",
                      "us-east-1.audit-key", "us-east-1.audit-value"]),
         "first run: each subject registered once (TopicNameStrategy)")
    h.check(all(st in (200, 503) for s, st in posts1), "no registration was refused: %r" % posts1)

    # A new process registers again (and gets the same ids).
    h.eq(srv.stop(), 0, "the server stops cleanly (no sanitizer report)")
    srv.start()
    ddb = clients()
    ddb.put_item(TableName="orders", Item=O4)
    caught_up("after a restart")
    with REG.lock:
        posts2 = REG.posts[len(posts1):]
        subjects = {k: list(v) for k, v in REG.subjects.items()}
        schema_of = dict(REG.schema_of)
    h.eq(sorted(s for s, st in posts2), ["us-east-1.orders-key", "us-east-1.orders-value"],
         "the restarted server registered the topic it sent to, once per subject")
    h.check(all(len(v) == 1 for v in subjects.values()), "one version per subject: %r" % subjects)

    # ---- the registered schemas are the shipped ones ----
    ids = {}
    for t, topic in TOPICS.items():
        for part in ("key", "value"):
            sid = subjects.get("%s-%s" % (topic, part), [None])[0]
            ids[(t, part)] = sid
            text = schema_of.get(sid, "")
            h.eq(text.strip(), SHIPPED[part].strip(), "%s-%s: the registered schema is schemas/*.avsc" % (topic, part))
            h.check(avro.schema.parse(text) == avro.schema.parse(SHIPPED[part]),
                    "%s-%s: the registered schema parses with python3-avro" % (topic, part))
    h.check(ids[("orders", "key")] != ids[("orders", "value")], "key and value have their own ids")

    # ---- what a read_committed consumer sees ----
    got = {}
    for t, topic in TOPICS.items():
        msgs = read_topic(topic)
        h.check(len(msgs) > 0, topic + ": has messages")
        bad_key = bad_val = 0
        sns = []
        for p, off, key, val, hd in msgs:
            if key[:5] != b"\x00" + struct.pack(">I", ids[(t, "key")]):
                bad_key += 1
            _, k = unframe(key)
            pk = av_to_ddb(k["attributes"]["pk"])["S"]
            if val is None:  # a tombstone: the key only
                got.setdefault((t, pk), []).append(("tombstone", p))
                continue
            if val[:5] != b"\x00" + struct.pack(">I", ids[(t, "value")]):
                bad_val += 1
            _, env = unframe(val)
            sns.append(hd["sequenceNumber"])
            h.eq(env["eventName"], hd["eventName"].decode(), "%s@%d: eventName as the header says" % (topic, off))
            h.eq(env["source"]["table"], t, "%s@%d: source.table" % (topic, off))
            old = {a: av_to_ddb(v) for a, v in env["before"].items()} if env["before"] is not None else None
            new = {a: av_to_ddb(v) for a, v in env["after"].items()} if env["after"] is not None else None
            got.setdefault((t, pk), []).append(((env["eventName"], old, new), p))
        h.eq(bad_key, 0, "%s: every key starts with 00 and the id of %s-key (%d)" % (topic, topic, ids[(t, "key")]))
        h.eq(bad_val, 0, "%s: every value starts with 00 and the id of %s-value (%d)" % (topic, topic, ids[(t, "value")]))
        h.eq(len(sns), len(set(sns)), topic + ": every change once")
    for item, want in WANT.items():
        seq = got.get(item, [])
        changes = [c for c, p in seq if c != "tombstone"]
        h.eq(changes, [(e, norm(o), norm(n)) for e, o, n in want], "%s/%s: the changes, in order" % item)
        h.eq(len({p for c, p in seq}), 1, "%s/%s: one partition" % item)
    o2 = [c for c, p in got.get(("orders", "o2"), [])]
    h.eq(o2[-1:], ["tombstone"], "the REMOVE is followed by a tombstone")
    h.eq(sorted(got), sorted(WANT), "no other items")
    with REG.lock:
        gets = list(REG.gets)
    h.check(all(g.startswith("/schemas/ids/") for g in gets) and len(gets) == 2,
            "the consumer fetched the two schemas by id: %r" % gets)

    # ---- nothing on the schemas topic ----
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "schemas-topic"})
    topics = c.list_topics(timeout=10).topics
    c.close()
    h.check("__tributary_schemas" not in topics, "with a registry, nothing goes to the schemas topic: %r"
            % sorted(topics))
    h.eq(srv.stop(), 0, "the restarted server stops cleanly")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
    reg_srv.shutdown()
    try:
        mock.stdin.write("quit\n")
        mock.stdin.flush()
        mock.wait(timeout=10)
    except Exception:  # noqa: BLE001
        mock.kill()
sys.exit(h.done())
