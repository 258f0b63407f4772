"""The Kafka sink's typed projection (kafka.tables), against `tributary
kafka-mock` (librdkafka's mock cluster in its own process):
  A. kafka.on_error dead_letter: changes of a table with columns (long,
     double, string, int at a nested path, boolean, bytes) arrive with
     the envelope plus the columns field, decoded by python3-avro with the
     schema the sink published on the schemas topic under the fingerprint
     in each message's frame; a change whose value does not fit its column
     arrives with columns null and a tributary.error header naming the
     column, and the same message is on the dead-letter topic; a REMOVE
     has columns null; a table without columns keeps the plain envelope.
  B. kafka.on_error stop: the sink stops at the change that does not fit,
     saying which, and nothing from it on reaches the topic.
  C. with a schema registry (a stand-in in this test: an http.server that
     answers POST /subjects/{subject}/versions with an id, nothing else),
     the projected value schema is what gets registered under
     "<topic>-value", and messages framed with its id decode with it."""
import http.server
import io
import struct
import threading
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import avro.io  # noqa: E402
import avro.schema  # noqa: E402
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("kafka_projection")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="kafka-proj-", dir=base)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ENVELOPE = open(os.path.join(ROOT, "schemas", "tributary-envelope.avsc")).read()

mock = subprocess.Popen([os.environ["TRB_BIN"], "kafka-mock", "--brokers", "3"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True, bufsize=1)
first = mock.stdout.readline().split()
assert first[0] == "bootstrap", first
BOOT = first[1]

COLS = ("      columns:\n        total: long\n        price: double\n        name: string\n"
        "        info.lines[0]: int\n        flag: boolean\n        blob: bytes\n")


REGISTERED = {}  # subject -> schema text


class Registry(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        subject = self.path.split("/")[2]
        REGISTERED[subject] = body["schema"]
        sid = 200 + sorted(REGISTERED).index(subject)
        out = json.dumps({"id": sid}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def server(name, on_error, extra=""):
    d = os.path.join(work, name)
    os.makedirs(d)
    cfg = os.path.join(d, "tributary.yaml")
    with open(cfg, "w") as f:
        f.write("kafka:\n  brokers: %s\n  transactional_id: proj-%s\n  on_error: %s\n%s"
                "  tables:\n    %s:\n%s" % (BOOT, name, on_error, extra, name, COLS))
    return Server(config=cfg, data_dir=os.path.join(d, "data"))


def client(srv):
    return boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=botocore.config.Config(retries={"max_attempts": 1}))


def create(ddb, name):
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})


def consume(topic, want, secs=20):
    """Every committed message of topic, once at least `want` are there (or time is up)."""
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "proj-%s-%f" % (topic, time.time()),
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    out = []
    deadline = time.time() + secs
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        while time.time() < deadline and len(out) < want:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append((m.key(), m.value(), dict(m.headers() or [])))
    finally:
        c.close()
    return out


def schemas():
    return {k.decode(): v.decode() for k, v, _ in consume("__tributary_schemas", 10 ** 9, secs=4) if v}


def decode(val, by_fp):
    assert val[:2] == b"\xc3\x01", val[:2]
    fp = "%016x" % int.from_bytes(val[2:10], "little")
    sch = avro.schema.parse(by_fp[fp])
    return avro.io.DatumReader(sch).read(avro.io.BinaryDecoder(io.BytesIO(val[10:]))), fp


srv = None
try:
    # ---- A. dead letters ----
    srv = server("orders", "dead_letter")
    srv.start()
    ddb = client(srv)
    create(ddb, "orders")
    create(ddb, "plain")
    ddb.put_item(TableName="orders", Item={
        "pk": {"S": "a"}, "total": {"N": "9007199254740993"}, "price": {"N": "19.5"},
        "name": {"S": "caf\u00e9"}, "info": {"M": {"lines": {"L": [{"N": "3"}]}}},
        "flag": {"BOOL": True}, "blob": {"B": b"\x00\xff"}})
    ddb.put_item(TableName="orders", Item={"pk": {"S": "b"}, "total": {"S": "not a number"}})
    ddb.put_item(TableName="orders", Item={"pk": {"S": "c"}, "total": {"N": "1.5"}})
    ddb.put_item(TableName="orders", Item={"pk": {"S": "d"}, "price": {"N": "2"}})
    ddb.delete_item(TableName="orders", Key={"pk": {"S": "a"}})
    ddb.put_item(TableName="plain", Item={"pk": {"S": "x"}, "total": {"S": "whatever"}})
    msgs = [m for m in consume("us-east-1.orders", 6) if m[1] is not None]
    h.eq(len(msgs), 5, "five changes on the topic (tombstones aside)")
    by_fp = schemas()
    h.check(len(by_fp) >= 3, "the schemas topic holds the key, the envelope and the projection: %r" % list(by_fp))
    rows = {}
    for key, val, hd in msgs:
        env, fp = decode(val, by_fp)
        pk = (env["after"] or env["before"])["pk"]["S"]
        rows.setdefault(pk, []).append((env, hd, fp))
    fps = {fp for v in rows.values() for _, _, fp in v}
    h.eq(len(fps), 1, "one value schema for the table's messages")
    proj_schema = json.loads(by_fp[fps.pop()]) if fps else {}
    h.check(proj_schema.get("fields", [{}])[-1].get("name") == "columns" and
            [f["name"] for f in proj_schema["fields"][:-1]] == [f["name"] for f in json.loads(ENVELOPE)["fields"]],
            "the projection's schema is the envelope plus columns")
    env, hd, _ = rows["a"][0]
    h.eq(env["columns"], {"total": 9007199254740993, "price": 19.5, "name": "caf\u00e9", "info_lines_0": 3,
                          "flag": True, "blob": b"\x00\xff"}, "A: the columns of a change that fits")
    h.check("tributary.error" not in hd, "A: no error header when it fits")
    h.eq(env["after"]["total"]["N"], "9007199254740993", "A: the envelope still has the exact number")
    env, hd, _ = rows["a"][1]
    h.eq((env["op"], env["columns"]), ("d", None), "A: a REMOVE has columns null")
    for pk, why in (("b", "the value is not a number but a S"), ("c", "the number is not an integer")):
        env, hd, _ = rows[pk][0]
        h.eq(env["columns"], None, "A: %s: columns null when a value does not fit" % pk)
        err = hd.get("tributary.error", b"").decode()
        h.check(err.startswith("column total (path total, long): " + why),
                "A: %s: the tributary.error header says why: %r" % (pk, err))
    env, hd, _ = rows["d"][0]
    h.eq(env["columns"], {"total": None, "price": 2.0, "name": None, "info_lines_0": None, "flag": None,
                          "blob": None}, "A: missing attributes are null")
    dlq = consume("us-east-1.orders.errors", 2)
    h.eq(sorted(decode(v, by_fp)[0]["after"]["pk"]["S"] for _, v, _ in dlq), ["b", "c"],
         "A: the changes that did not fit are on the dead-letter topic")
    h.check(all(b"column total" in hd.get("tributary.error", b"") for _, _, hd in dlq),
            "A: with the error header")
    plain = [m for m in consume("us-east-1.plain", 1) if m[1] is not None]
    h.check(plain and plain[0][1][2:10] == bytes.fromhex("%016x" % int(
        next(k for k, v in by_fp.items() if v.strip() == ENVELOPE.strip()), 16))[::-1],
        "A: a table without columns keeps the shipped envelope's fingerprint")
    h.eq(srv.metrics().get('tributary_sink_broken{sink="kafka"}'), 0.0, "A: the sink goes on")
    h.eq(srv.metrics().get("tributary_kafka_projection_errors_total"), 2.0,
         "A: /metrics counts the changes whose projection failed")
    srv.stop()

    # ---- B. stop ----
    srv = server("strict", "stop")
    srv.start()
    ddb = client(srv)
    create(ddb, "strict")
    ddb.put_item(TableName="strict", Item={"pk": {"S": "ok"}, "total": {"N": "1"}})
    ddb.put_item(TableName="strict", Item={"pk": {"S": "bad"}, "total": {"N": "0.5"}})
    ddb.put_item(TableName="strict", Item={"pk": {"S": "later"}, "total": {"N": "2"}})
    deadline = time.time() + 20
    while time.time() < deadline and srv.metrics().get('tributary_sink_broken{sink="kafka"}') != 1.0:
        time.sleep(0.2)
    h.eq(srv.metrics().get('tributary_sink_broken{sink="kafka"}'), 1.0, "B: the sink stopped")
    log = open(srv.log_path).read()
    h.check("kafka.on_error: stop" in log and "table strict, LSN" in log and "column total" in log,
            "B: the log names the change and the column")
    got = [decode(v, schemas())[0]["after"]["pk"]["S"] for _, v, _ in consume("us-east-1.strict", 3, secs=4) if v]
    h.check("bad" not in got and "later" not in got, "B: nothing from the refused change on: %r" % got)
    srv.stop()

    # ---- C. a schema registry ----
    reg = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=reg.serve_forever, daemon=True).start()
    srv = server("reg", "dead_letter", "  schema_registry: http://127.0.0.1:%d\n" % reg.server_address[1])
    srv.start()
    ddb = client(srv)
    create(ddb, "reg")
    ddb.put_item(TableName="reg", Item={"pk": {"S": "r1"}, "total": {"N": "5"}, "name": {"S": "n"}})
    msgs = [m for m in consume("us-east-1.reg", 1) if m[1] is not None]
    text = REGISTERED.get("us-east-1.reg-value", "")
    h.check(text and json.loads(text)["fields"][-1]["name"] == "columns",
            "C: the projected schema is registered under us-east-1.reg-value: %r" % sorted(REGISTERED))
    if msgs and text:
        val = msgs[0][1]
        sid = 200 + sorted(REGISTERED).index("us-east-1.reg-value")
        h.eq(val[:5], b"\x00" + struct.pack(">I", sid), "C: Confluent framing with the value schema's id")
        env = avro.io.DatumReader(avro.schema.parse(text)).read(avro.io.BinaryDecoder(io.BytesIO(val[5:])))
        h.eq((env["columns"]["total"], env["columns"]["name"]), (5, "n"), "C: the columns decode with it")
    else:
        h.check(False, "C: a message on us-east-1.reg")
    reg.shutdown()
except Exception:
    import traceback
    traceback.print_exc()
    h.check(False, "the test ran to the end")
finally:
    if srv:
        srv.stop()
        if h.failed:
            print(open(srv.log_path).read()[-5000:])
    mock.stdin.close()
    mock.wait(timeout=10)
sys.exit(h.done())
