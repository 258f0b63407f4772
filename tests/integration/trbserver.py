"""Starts `tributary serve` on a free loopback port with a fresh data
directory, for the integration tests; stops it (SIGTERM) at exit."""
import os
import re
import signal
import subprocess
import tempfile
import time


class Server:
    def __init__(self, data_dir=None, config=None, extra=()):
        self.bin = os.environ["TRB_BIN"]
        base = os.environ.get("TRB_TEST_TMP", "/tmp")
        os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="srv-", dir=base)
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.config = config
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.tmp, "server.log")

    def start(self, listen="127.0.0.1:0"):
        args = [self.bin, "--data-dir", self.data_dir]
        if self.config:
            args += ["--config", self.config]
        args += ["serve", "--listen", listen] + self.extra
        self.log = open(self.log_path, "ab")
        start_at = self.log.tell()  # a restart appends: read only this run's lines
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + open(self.log_path).read())
            with open(self.log_path) as f:
                f.seek(start_at)
                m = re.search(r"listening on http://[^ ]*:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            time.sleep(0.02)
        raise RuntimeError("server did not start: " + open(self.log_path).read())

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def metrics(self):
        """GET /metrics as {series (with its labels): value}."""
        import urllib.request
        out = {}
        for line in urllib.request.urlopen(self.url + "/metrics", timeout=10).read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        self.stop(signal.SIGKILL)


def stream_shards(ddb, strm, table):
    """(stream ARN, every shard of the table's latest stream), over
    DescribeStream's pages."""
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards, start = [], None
    while True:
        kw = {"StreamArn": arn}
        if start:
            kw["ExclusiveStartShardId"] = start
        d = strm.describe_stream(**kw)["StreamDescription"]
        shards += d["Shards"]
        start = d.get("LastEvaluatedShardId")
        if not start:
            break
    return arn, shards


def stream_records(ddb, strm, table):
    """(every record the table's latest stream holds, by SequenceNumber;
    its shards), each shard read from TRIM_HORIZON with GetRecords."""
    arn, shards = stream_shards(ddb, strm, table)
    out = {}
    for s in shards:
        it = strm.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"],
                                     ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = strm.get_records(ShardIterator=it, Limit=1000)
            for rec in r["Records"]:
                out[rec["dynamodb"]["SequenceNumber"]] = rec
            if not r["Records"]:
                break
            it = r.get("NextShardIterator")
    return out, shards


def raw_call(port, target, body):
    """One JSON request without an SDK (for members an older botocore does
    not know yet): (status, decoded body)."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/", body=json.dumps(body), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else {}


class Harness:
    """Counts checks; prints 'N passed, M failed' at the end."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, flush=True)

    def eq(self, got, want, what):
        self.check(got == want, "%s: got %r, want %r" % (what, got, want))

    def raises(self, fn, code, what):
        import botocore.exceptions
        try:
            fn()
        except botocore.exceptions.ClientError as e:
            got = e.response["Error"]["Code"]
            self.check(got == code, "%s: error %s (%s), want %s" %
                       (what, got, e.response["Error"].get("Message"), code))
            return e
        self.check(False, "%s: no error, want %s" % (what, code))
        return None

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        return 0 if self.failed == 0 else 1
