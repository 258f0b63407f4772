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
        """GET /metrics as {series (with its labels): value}, after checking
        that it is Prometheus' text format (check_metrics_text)."""
        import urllib.request
        text = urllib.request.urlopen(self.url + "/metrics", timeout=10).read().decode()
        check_metrics_text(text)
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def sink_caught_up(self, sink, seconds, every=0.5):
        """Waits up to `seconds` for the sink's checkpoint to reach the WAL's
        newest LSN; the metrics at the end (whether it did or not)."""
        key = 'tributary_sink_checkpoint_lsn{sink="%s"}' % sink
        deadline = time.time() + seconds
        while True:
            m = self.metrics()
            if m.get(key, 0) >= m["tributary_wal_last_lsn"] or time.time() >= deadline:
                return m
            time.sleep(every)


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


def check_metrics_text(text):
    """Raises AssertionError unless text follows the Prometheus text format's
    rules that parsers enforce: each family's HELP and TYPE once, before its
    samples, and all of a family's samples in one group; every sample of a
    declared family; well-formed names, labels and values."""
    import re
    name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    sample = re.compile(r"^(%s)(\{(%s=\"(?:[^\"\\\n]|\\.)*\",?)*\})? (\S+)$" % (name_re, r"[a-zA-Z_][a-zA-Z0-9_]*"))
    typed, helped, done, current = {}, set(), set(), None
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % name_re, line)
        if m:
            kind, fam = m.group(1), m.group(2)
            if fam in done or (kind == "TYPE" and fam in typed) or (kind == "HELP" and fam in helped):
                raise AssertionError("metrics line %d: %s for %s again: %r" % (n, kind, fam, line))
            if kind == "TYPE":
                if m.group(3) not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise AssertionError("metrics line %d: bad TYPE %r" % (n, line))
                typed[fam] = m.group(3)
            else:
                helped.add(fam)
            if current and current != fam:
                done.add(current)
            current = fam
            continue
        if line.startswith("#"):
            continue
        m = sample.match(line)
        if not m:
            raise AssertionError("metrics line %d is not a sample: %r" % (n, line))
        base = m.group(1)
        fam = base if base in typed else re.sub(r"_(bucket|sum|count)$", "", base)
        if fam not in typed:
            raise AssertionError("metrics line %d: %s has no TYPE line before it" % (n, base))
        if fam in done or (current and fam != current):
            raise AssertionError("metrics line %d: %s is apart from the rest of its family" % (n, base))
        current = fam
        float(m.group(4))  # raises ValueError on a bad value
