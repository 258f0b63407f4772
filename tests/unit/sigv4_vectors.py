#!/usr/bin/env python3
"""
sigv4_vectors.py -- known-answer vectors for api/sigv4.c, computed by
botocore's own signer (botocore.auth.SigV4Auth, Debian python3-botocore).

Run by hand:  python3 tests/unit/sigv4_vectors.py > /tmp/vectors.inc
and paste the output into tests/unit/test_sigv4.c (the `vectors` table).
It is not run by the build: the table in the test is the frozen answer.

Each vector is a request as botocore signs it: the clock is pinned (botocore
reads it through botocore.auth.get_current_datetime), the headers are given
in the order they will be sent on the wire (which is deliberately not
sorted), and the Authorization / X-Amz-Date / Date / X-Amz-Security-Token
headers botocore adds are appended. The C test sends exactly these headers
(plus an unsigned Content-Length) over a socket to the real HTTP server and
checks that trb_sigv4_verify accepts them and that trb_sigv4_signature
recomputes botocore's signature.
"""
import calendar
import datetime
import sys
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def sign(name, when, url, headers, body, region="us-east-1", akid=AKID,
         secret=SECRET, token=None, wire_order=None):
    """headers: list of (name, value) in wire order (duplicates allowed)."""
    req = AWSRequest(method="POST", url=url, data=body)
    for k, v in headers:
        req.headers[k] = v  # HTTPHeaders appends: duplicates are kept
    creds = Credentials(akid, secret, token)
    signer = botocore.auth.SigV4Auth(creds, "dynamodb", region)
    dt = datetime.datetime.strptime(when, "%Y%m%dT%H%M%SZ")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=dt):
        signer.add_auth(req)
    # botocore's final header list: what we gave, in our order, then the
    # headers it added (date, token, authorization).
    given = {k.lower() for k, _ in headers}
    wire = list(headers)
    for k, v in req.headers.items():
        if k.lower() not in given or k.lower() == "date":
            if k.lower() == "date":
                wire = [(a, b) for a, b in wire if a.lower() != "date"]
            wire.append((k, v))
    if wire_order == "reverse":
        wire.reverse()
    auth = req.headers["Authorization"]
    sig = auth.rsplit("Signature=", 1)[1]
    return {
        "name": name,
        "akid": akid,
        "secret": secret,
        "region": region,
        "target": url.split("localhost:8000", 1)[1],
        "headers": wire,
        "body": body if isinstance(body, bytes) else body.encode(),
        "now": calendar.timegm(dt.timetuple()),
        "sig": sig,
    }


def vectors():
    host = ("Host", "localhost:8000")
    ct = ("Content-Type", "application/x-amz-json-1.0")
    put = '{"TableName":"Music","Item":{"Artist":{"S":"No One You Know"}}}'
    out = []
    out.append(sign("put_item", "20150830T123600Z", "http://localhost:8000/",
                    [ct, host, ("X-Amz-Target", "DynamoDB_20120810.PutItem")], put))
    out.append(sign("empty_body", "20150830T123600Z", "http://localhost:8000/",
                    [host, ("X-Amz-Target", "DynamoDB_20120810.ListTables"), ct], ""))
    out.append(sign("region_utf8_reversed", "20240229T235959Z", "http://localhost:8000/",
                    [ct, host, ("X-Amz-Target", "DynamoDB_20120810.GetItem")],
                    '{"TableName":"t","Key":{"k":{"S":"caf\u00e9 \u2603"}}}'.encode(),
                    region="eu-west-3", akid="AKIAOTHERKEY0000", secret="another/secret+key=",
                    wire_order="reverse"))
    out.append(sign("whitespace_and_duplicates", "20150830T123600Z", "http://localhost:8000/",
                    [("X-Custom", "  spaced   out\tvalue  "), host, ct,
                     ("X-Dup", "one"), ("X-Amz-Target", "DynamoDB_20120810.Query"),
                     ("X-Dup", "  two  three ")], '{"TableName":"t"}'))
    out.append(sign("query_string", "20150830T123600Z",
                    "http://localhost:8000/?b=2&a=1&a=0&c=x%20y&d=%2F~",
                    [host, ct, ("X-Amz-Target", "DynamoDB_20120810.Scan")], "{}"))
    # not "/": the server hands it to the reject callback, where the test
    # verifies it too (checks dot-segment removal and double encoding); the
    # body is empty because a refused request's body is not kept
    out.append(sign("odd_path", "20150830T123600Z", "http://localhost:8000/a/./b/../c%20d//e/",
                    [host, ct, ("X-Amz-Target", "DynamoDB_20120810.Scan")], ""))
    body = '{"TableName":"hashed"}'
    import hashlib
    out.append(sign("content_sha256_header", "20150830T123600Z", "http://localhost:8000/",
                    [host, ct, ("X-Amz-Target", "DynamoDB_20120810.DescribeTable"),
                     ("X-Amz-Content-SHA256", hashlib.sha256(body.encode()).hexdigest())], body))
    out.append(sign("unsigned_payload", "20150830T123600Z", "http://localhost:8000/",
                    [host, ct, ("X-Amz-Target", "DynamoDB_20120810.DescribeTable"),
                     ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")], '{"any":"body"}'))
    out.append(sign("date_header", "20150830T123600Z", "http://localhost:8000/",
                    [host, ct, ("Date", "placeholder"),
                     ("X-Amz-Target", "DynamoDB_20120810.DeleteItem")], '{"TableName":"d"}'))
    out.append(sign("session_token_streams", "20211231T000001Z", "http://localhost:8000/",
                    [ct, ("X-Amz-Target", "DynamoDBStreams_20120810.GetRecords"), host],
                    b'{"ShardIterator":"\x00\x01\xff binary \xc3\xa9"}', region="ap-southeast-2",
                    token="FQoGZXIvYXdzEJr//////////wEaDOTOKEN/EXAMPLE=="))
    # a secret longer than an HMAC block (and than the signing-key cache)
    out.append(sign("long_secret", "20150830T123600Z", "http://localhost:8000/",
                    [host, ct, ("X-Amz-Target", "DynamoDB_20120810.GetItem")], '{"k":1}',
                    akid="AKIALONGSECRET", secret="s3cr3t/" * 22))
    return out


def c_str(b):
    """A C string literal for bytes b; octal escapes cannot run into digits."""
    if isinstance(b, str):
        b = b.encode()
    s = []
    for ch in b:
        c = chr(ch)
        if c == '"' or c == "\\":
            s.append("\\" + c)
        elif c in "\r\n\t":
            s.append({"\r": "\\r", "\n": "\\n", "\t": "\\t"}[c])
        elif 32 <= ch < 127:
            s.append(c)
        else:
            s.append("\\%03o" % ch)
    return '"' + "".join(s) + '"'


def main():
    w = sys.stdout.write
    w("/* generated by tests/unit/sigv4_vectors.py with botocore %s */\n" % botocore.__version__)
    for v in vectors():
        hdrs = "".join("%s: %s\r\n" % (k, val) for k, val in v["headers"])
        w("    {%s,\n" % c_str(v["name"]))
        w("     %s, %s, %s,\n" % (c_str(v["akid"]), c_str(v["secret"]), c_str(v["region"])))
        w("     %s,\n" % c_str(v["target"]))
        w("     %s,\n" % c_str(hdrs))
        w("     %s, %d,\n" % (c_str(v["body"]), len(v["body"])))
        w("     %dLL, %s},\n" % (v["now"], c_str(v["sig"])))


if __name__ == "__main__":
    main()
