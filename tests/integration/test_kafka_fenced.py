"""A fatal producer error stops the Kafka sink with a clear message and
skips nothing: the broker answers the sink's transaction with
INVALID_PRODUCER_EPOCH, as it does when another producer with the same
transactional id has fenced it (librdkafka's mock cluster does not enforce
fencing itself, so the test has it answer so); the sink is marked broken
(the metric and the log say so), its checkpoint stays at what it had
delivered, and after a restart it delivers every change it had not, once."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from trbserver import Harness, Server  # noqa: E402

h = Harness("kafka_fenced")
base = os.environ.get("TRB_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
work = tempfile.mkdtemp(prefix="kfence-", dir=base)
mock = subprocess.Popen([os.environ["TRB_BIN"], "kafka-mock", "--brokers", "3"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True, bufsize=1)
BOOT = mock.stdout.readline().split()[1]
cfg = os.path.join(work, "tributary.yaml")
with open(cfg, "w") as f:
    f.write("kafka:\n  brokers: %s\n  format: json\n  transactional_id: trb-fence-test\n" % BOOT)
srv = Server(config=cfg, data_dir=os.path.join(work, "data"))
TOPIC = "us-east-1.fenced"




def wait(cond, secs, what):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.25)
    h.check(False, "timed out: " + what)
    return False


def lsns():
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "chk%f" % time.time(), "auto.offset.reset": "earliest"})
    parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    his = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(TOPIC, p, 0) for p in parts])
    got = []
    end = time.time() + 15
    while time.time() < end:
        m = c.poll(0.2)
        if m is None:
            pos = {tp.partition: tp.offset for tp in c.position([TopicPartition(TOPIC, p) for p in parts])}
            if all(pos[p] >= his[p] for p in parts):
                break
            continue
        if not m.error() and m.value() is not None:
            got.append(int(dict(m.headers())["lsn"]))
    c.close()
    return got


try:
    srv.start()
    ddb = boto3.client("dynamodb", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="l",
                       aws_secret_access_key="l", config=botocore.config.Config(retries={"max_attempts": 1}))
    ddb.create_table(TableName="fenced", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    for i in range(20):
        ddb.put_item(TableName="fenced", Item={"pk": {"S": "a%d" % i}})
    wait(lambda: srv.metrics().get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= srv.metrics()["tributary_wal_last_lsn"],
         30, "the sink delivers the first writes")
    # The broker says the producer is fenced.
    mock.stdin.write("errors endtxn 1 INVALID_PRODUCER_EPOCH\n")
    mock.stdin.flush()
    h.eq(mock.stdout.readline().strip(), "ok", "the mock takes the error injection")
    for i in range(20):
        ddb.put_item(TableName="fenced", Item={"pk": {"S": "b%d" % i}})
    wait(lambda: srv.metrics().get('tributary_sink_broken{sink="kafka"}') == 1.0, 60, "the fenced sink is marked broken")
    log = open(srv.log_path).read()
    h.check("fenced" in log and "the sink stops" in log, "the log says the producer was fenced and the sink stopped")
    ck = srv.metrics()['tributary_sink_checkpoint_lsn{sink="kafka"}']
    h.check(ck < srv.metrics()["tributary_wal_last_lsn"], "the checkpoint stays at what was delivered")
    h.eq(srv.stop(), 0, "clean stop")
    srv.start()
    wait(lambda: srv.metrics().get('tributary_sink_checkpoint_lsn{sink="kafka"}', 0) >= srv.metrics()["tributary_wal_last_lsn"],
         60, "after a restart the sink delivers the rest")
    got = lsns()
    h.eq(len(got), len(set(got)), "no change twice")
    h.eq(len(got), 40, "every change once (the 20 before and the 20 after the fencing)")
    h.eq(srv.stop(), 0, "clean stop")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
    try:
        mock.stdin.write("quit\n")
        mock.stdin.flush()
        mock.wait(timeout=10)
    except Exception:  # noqa: BLE001
        mock.kill()
sys.exit(h.done())
