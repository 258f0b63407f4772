"""The Avro schemas and the C encoder, checked by another implementation
(python3-avro):

- schemas/tributary-envelope.avsc and schemas/tributary-key.avsc parse, with
  the names, fields and field order the README documents, and one identical
  io.tributary.AttributeValue in both;
- the CRC-64-AVRO fingerprints of python3-avro's Parsing Canonical Form
  equal the numbers written below, which are the ones the C side has
  (TRB_AVRO_*_FINGERPRINT in transform/avro_envelope.h, and the unit test);
- payloads the C encoder wrote (single-object framed: C3 01, fingerprint)
  decode with python3-avro's DatumReader to exactly what went in (the
  engine's own DynamoDB JSON of each item, number text for number text),
  and python3-avro writes the same bytes back.

The payloads come from the cmocka test tests/unit/test_avro_envelope.c,
which writes them when TRB_AVRO_SAMPLES names a directory: this test runs
that binary (beside $TRB_BIN in the build directory) itself, so it depends
on no test order and on no server.
"""
import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile

try:
    import avro.io
    import avro.schema
except ImportError:
    # python3-avro is Debian's, installed for /usr/bin/python3; a python3
    # first on PATH (a virtualenv, pyenv) may not see it.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("TRB_AVRO_REEXEC"):
        os.environ["TRB_AVRO_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("python3-avro is not installed (scripts/install-deps.sh --test)")
    print("avro_schema: 0 passed, 1 failed")
    sys.exit(1)

sys.path.insert(0, os.path.dirname(__file__))
from trbserver import Harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VALUE_FP = 0xDD7E9C5AA49C0756
KEY_FP = 0xB59374152DE4D7D5
AV_FIELDS = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"]

h = Harness("avro_schema")


def crc64_avro(data):
    """The Avro spec's fingerprint: CRC-64-AVRO (Rabin), table driven."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def load(name):
    with open(os.path.join(ROOT, "schemas", name)) as f:
        text = f.read()
    return text, avro.schema.parse(text)


# ---- the schemas ----

h.eq(crc64_avro(b'"null"'), 7195948357588979594, "CRC-64-AVRO of the spec's vector")

env_text, env = load("tributary-envelope.avsc")
key_text, key = load("tributary-key.avsc")
h.eq(env.fullname, "io.tributary.Envelope", "value schema name")
h.eq(key.fullname, "io.tributary.Key", "key schema name")
h.eq([f.name for f in env.fields], ["before", "after", "source", "op", "ts_ms", "eventName", "userIdentity"],
     "envelope fields")
source = env.fields_dict["source"].type
h.eq(source.fullname, "io.tributary.Source", "source record name")
h.eq([f.name for f in source.fields],
     ["table", "region", "shard_id", "sequence_number", "lsn", "txn_id", "commit_us", "ts_ms"],
     "source fields")
h.eq([f.name for f in key.fields], ["attributes"], "key fields")


def av_of(union_or_map):
    t = union_or_map
    if t.type == "union":
        h.eq([b.type for b in t.schemas][0], "null", "optional image: null first")
        t = t.schemas[1]
    h.eq(t.type, "map", "an item is a map")
    return t.values


av_env = av_of(env.fields_dict["before"].type)
av_env2 = av_of(env.fields_dict["after"].type)
av_key = av_of(key.fields_dict["attributes"].type)
h.eq(av_env.fullname, "io.tributary.AttributeValue", "AttributeValue name")
h.check(av_env is av_env2, "before and after share one AttributeValue")
h.eq([f.name for f in av_env.fields], AV_FIELDS, "AttributeValue fields (trb_type order)")
h.eq(av_env.canonical_form, av_key.canonical_form, "one AttributeValue in both schemas")
for f in av_env.fields:
    h.eq(f.type.type, "union", "AttributeValue.%s is optional" % f.name)
    h.eq(f.type.schemas[0].type, "null", "AttributeValue.%s: null first" % f.name)
    h.check(f.has_default and f.default is None, "AttributeValue.%s defaults to null" % f.name)
want_types = {"S": "string", "N": "string", "B": "bytes", "BOOL": "boolean", "NULL": "boolean",
              "M": "map", "L": "array", "SS": "array", "NS": "array", "BS": "array"}
for f in av_env.fields:
    h.eq(f.type.schemas[1].type, want_types[f.name], "AttributeValue.%s type" % f.name)
items = {f.name: f.type.schemas[1] for f in av_env.fields}
h.eq(items["SS"].items.type, "string", "SS items")
h.eq(items["NS"].items.type, "string", "NS items (decimal text, never double)")
h.eq(items["BS"].items.type, "bytes", "BS items")
h.eq(items["L"].items.fullname, "io.tributary.AttributeValue", "L is recursive")
h.eq(items["M"].values.fullname, "io.tributary.AttributeValue", "M is recursive")

h.eq(crc64_avro(env.canonical_form.encode()), VALUE_FP, "value fingerprint")
h.eq(crc64_avro(key.canonical_form.encode()), KEY_FP, "key fingerprint")
with open(os.path.join(ROOT, "transform", "avro_envelope.h")) as f:
    hdr = f.read()
for name, want in (("VALUE", VALUE_FP), ("KEY", KEY_FP)):
    m = re.search(r"TRB_AVRO_%s_FINGERPRINT UINT64_C\((0x[0-9a-fA-F]+)\)" % name, hdr)
    h.check(m is not None, "avro_envelope.h defines TRB_AVRO_%s_FINGERPRINT" % name)
    if m:
        h.eq(int(m.group(1), 16), want, "avro_envelope.h's %s fingerprint" % name)

# ---- payloads from the C encoder ----


def find_unit_test():
    cands = []
    if os.environ.get("TRB_BIN"):
        cands.append(os.path.join(os.path.dirname(os.environ["TRB_BIN"]), "test_avro_envelope"))
    cands += [os.path.join(ROOT, d, "test_avro_envelope") for d in ("build", "build-asan")]
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    return None


def to_ddb(av):
    """A decoded io.tributary.AttributeValue as DynamoDB JSON (the engine's
    spelling: B and BS as base64)."""
    set_fields = [k for k in AV_FIELDS if av[k] is not None]
    h.eq(len(set_fields), 1, "exactly one AttributeValue field is set")
    t = set_fields[0]
    v = av[t]
    if t in ("S", "N", "BOOL", "NULL", "SS", "NS"):
        return {t: v}
    if t == "B":
        return {t: base64.b64encode(v).decode()}
    if t == "BS":
        return {t: [base64.b64encode(x).decode() for x in v]}
    if t == "M":
        return {t: item_to_ddb(v)}
    return {t: [to_ddb(x) for x in v]}


def item_to_ddb(m):
    return None if m is None else {k: to_ddb(v) for k, v in m.items()}


def decode(path, schema, fp):
    with open(path, "rb") as f:
        data = f.read()
    h.eq(data[:2], b"\xc3\x01", "%s: single-object marker" % os.path.basename(path))
    h.eq(int.from_bytes(data[2:10], "little"), fp, "%s: fingerprint" % os.path.basename(path))
    bio = io.BytesIO(data[10:])
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(bio))
    h.eq(bio.tell(), len(data) - 10, "%s: the datum is the whole rest" % os.path.basename(path))
    out = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(out))
    h.check(out.getvalue() == data[10:],
            "%s: python3-avro writes the same bytes back" % os.path.basename(path))
    return datum


binary = find_unit_test()
h.check(binary is not None, "the unit test binary test_avro_envelope is built")
if binary:
    base = os.environ.get("TRB_TEST_TMP", "/tmp")
    os.makedirs(base, exist_ok=True)
    samples = tempfile.mkdtemp(prefix="avro-samples-", dir=base)
    env_vars = dict(os.environ, TRB_AVRO_SAMPLES=samples)
    p = subprocess.run([binary], env=env_vars, cwd=samples, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    h.check(p.returncode == 0, "test_avro_envelope passes (it writes the samples):\n" +
            p.stdout.decode(errors="replace")[-3000:])

    names = {"insert": "c", "modify": "u", "remove": "d", "read": "r"}
    for name, op in names.items():
        path = os.path.join(samples, name + ".avro")
        if not os.path.exists(path):
            h.check(False, "sample %s written" % name)
            continue
        with open(os.path.join(samples, name + ".json")) as f:
            want = json.load(f)
        d = decode(path, env, VALUE_FP)
        h.eq(d["op"], op, "%s: op" % name)
        h.eq(d["op"], want["op"], "%s: op as written" % name)
        h.eq(d["eventName"], "INSERT" if want["kind"] == "READ" else want["kind"],
             "%s: eventName" % name)
        h.eq(d["ts_ms"], want["ts_ms"], "%s: ts_ms" % name)
        h.eq(d["userIdentity"], None, "%s: userIdentity (a client's change)" % name)
        h.eq(item_to_ddb(d["before"]), want["before"], "%s: before" % name)
        h.eq(item_to_ddb(d["after"]), want["after"], "%s: after" % name)
        s = d["source"]
        for k in ("table", "region", "shard_id", "lsn", "txn_id", "commit_us", "ts_ms"):
            h.eq(s[k], want[k], "%s: source.%s" % (name, k))
        h.eq(s["sequence_number"], "1%020d" % want["lsn"], "%s: source.sequence_number" % name)
        if d["after"] is not None:
            # every type survived, exactly: numbers as text, binary as bytes
            a = d["after"]
            h.eq(a["n38"]["N"], "12345678901234567890123456789012345678", "%s: 38 digits" % name)
            h.eq(a["bin"]["B"], b"\x00\x01\x00\x02\x00\x00", "%s: binary with zeros" % name)
            h.eq(a["nul"]["S"], "a\x00b", "%s: NUL inside a string" % name)
            h.eq(a["ebin"]["B"], b"", "%s: empty binary" % name)
            h.eq(a["estr"]["S"], "", "%s: empty string" % name)
            h.eq(a["z"]["NULL"], True, "%s: NULL" % name)
            h.check(a["ss"]["SS"] is not None and a["ss"]["L"] is None,
                    "%s: a set is not a list" % name)

    path = os.path.join(samples, "key.avro")
    if os.path.exists(path):
        with open(os.path.join(samples, "key.json")) as f:
            want = json.load(f)
        d = decode(path, key, KEY_FP)
        h.eq(list(d["attributes"].keys()), sorted(want["attributes"].keys()),
             "key entries sorted by name")
        h.eq(item_to_ddb(d["attributes"]), want["attributes"], "key attributes")
    else:
        h.check(False, "sample key written")

sys.exit(h.done())
