"""What the Kafka tests share: the shipped Avro schemas, single-object
unframing, AttributeValue records back to DynamoDB JSON, and reading every
committed message of a topic with a read_committed consumer
(python3-confluent-kafka)."""
import io
import os
import time

import avro.io
import avro.schema
from confluent_kafka import Consumer, TopicPartition

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
VSCHEMA = avro.schema.parse(open(os.path.join(ROOT, "schemas", "tributary-envelope.avsc")).read())
KSCHEMA = avro.schema.parse(open(os.path.join(ROOT, "schemas", "tributary-key.avsc")).read())


def av_to_ddb(av):
    """An io.tributary.AttributeValue datum as DynamoDB JSON."""
    for t in ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"):
        v = av.get(t)
        if v is not None:
            if t == "M":
                return {"M": {k: av_to_ddb(x) for k, x in v.items()}}
            if t == "L":
                return {"L": [av_to_ddb(x) for x in v]}
            return {t: v}
    raise ValueError(av)


def unframe(b, schema):
    """The datum of a single-object encoded message (C3 01, fingerprint)."""
    assert b[:2] == b"\xc3\x01", b[:2]
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(b[10:])))


def read_topic(boot, topic, seconds=60):
    """Every committed message of topic, up to its high watermarks:
    (partition, offset, key, value, headers), in partition and offset order."""
    c = Consumer({"bootstrap.servers": boot, "group.id": "chk%f" % time.time(),
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10).topics[topic]
    parts = sorted(md.partitions)
    his = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = []
    end = time.time() + seconds
    while time.time() < end:
        m = c.poll(0.2)
        if m is None:
            pos = {tp.partition: tp.offset for tp in c.position([TopicPartition(topic, p) for p in parts])}
            if all(pos[p] >= his[p] for p in parts):
                break
            continue
        if not m.error():
            out.append((m.partition(), m.offset(), m.key(), m.value(), dict(m.headers() or [])))
    c.close()
    return sorted(out, key=lambda x: (x[0], x[1]))
