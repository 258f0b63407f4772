"""Malformed and hostile requests against `tributary serve`: each gets
DynamoDB's error shape with the right type and status, x-amz-crc32 on every
answer, nothing reaches the data, and the server keeps answering."""
import http.client
import json
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from trbserver import Harness, Server  # noqa: E402

h = Harness("api_badinput")
srv = Server().start()


def call(target, body, ctype="application/x-amz-json-1.0", method="POST", raw=False):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    headers = {"Content-Type": ctype}
    if target is not None:
        headers["X-Amz-Target"] = target
    data = body if isinstance(body, (bytes, bytearray)) else body.encode()
    conn.request(method, "/", body=data, headers=headers)
    r = conn.getresponse()
    payload = r.read()
    crc = r.getheader("x-amz-crc32")
    h.check(crc is not None and int(crc) == zlib.crc32(payload),
            "x-amz-crc32 on %s %s" % (target, r.status))
    h.check(bool(r.getheader("x-amzn-RequestId")), "request id on %s" % target)
    conn.close()
    if raw:
        return r.status, payload
    try:
        return r.status, json.loads(payload)
    except ValueError:
        return r.status, {"__raw": payload.decode(errors="replace")}


def err(resp):
    status, body = resp
    t = body.get("__type", "")
    return status, t.split("#")[-1]


DDB = "DynamoDB_20120810."

try:
    ok = call(DDB + "CreateTable", json.dumps({
        "TableName": "t01", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}))
    h.eq(ok[0], 200, "create table")
    h.eq(call(DDB + "PutItem", json.dumps({"TableName": "t01", "Item": {"id": {"S": "keep"}}}))[0], 200,
         "put a row")

    cases = [
        ("broken JSON", DDB + "PutItem", '{"TableName": "t01", "Item": {', 400, "SerializationException"),
        ("empty body", DDB + "PutItem", "", 400, "SerializationException"),
        ("JSON array body", DDB + "PutItem", "[1,2]", 400, "SerializationException"),
        ("TableName a number", DDB + "PutItem", '{"TableName": 5, "Item": {"id": {"S": "a"}}}', 400,
         "SerializationException"),
        ("N as a JSON number", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a"}, "n": {"N": 5}}}',
         400, "SerializationException"),
        ("bad base64", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a"}, "b": {"B": "!!!"}}}',
         400, "SerializationException"),
        ("huge number", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a"}, "n": {"N": "1e999"}}}',
         400, "ValidationException"),
        ("39 digits", DDB + "PutItem",
         '{"TableName": "t01", "Item": {"id": {"S": "a"}, "n": {"N": "123456789012345678901234567890123456789"}}}',
         400, "ValidationException"),
        ("NaN", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a"}, "n": {"N": "NaN"}}}', 400,
         "ValidationException"),
        ("empty set", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a"}, "s": {"SS": []}}}', 400,
         "ValidationException"),
        ("two types", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a", "N": "1"}}}', 400,
         "ValidationException"),
        ("missing key", DDB + "PutItem", '{"TableName": "t01", "Item": {"x": {"S": "a"}}}', 400,
         "ValidationException"),
        ("empty key", DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": ""}}}', 400,
         "ValidationException"),
        ("unknown table", DDB + "PutItem", '{"TableName": "nosuch", "Item": {"id": {"S": "a"}}}', 400,
         "ResourceNotFoundException"),
        ("no TableName", DDB + "PutItem", '{"Item": {"id": {"S": "a"}}}', 400, "ValidationException"),
        ("unknown operation", DDB + "DropEverything", "{}", 400, "UnknownOperationException"),
        ("no target", None, "{}", 400, "UnknownOperationException"),
        ("wrong prefix", "Kinesis_20131202.PutRecord", "{}", 400, "UnknownOperationException"),
        ("bad condition syntax", DDB + "PutItem",
         '{"TableName": "t01", "Item": {"id": {"S": "a"}}, "ConditionExpression": "a = = b"}', 400,
         "ValidationException"),
        ("undefined placeholder", DDB + "PutItem",
         '{"TableName": "t01", "Item": {"id": {"S": "a"}}, "ConditionExpression": "a = :nope"}', 400,
         "ValidationException"),
        ("bad ReturnValues", DDB + "PutItem",
         '{"TableName": "t01", "Item": {"id": {"S": "a"}}, "ReturnValues": "EVERYTHING"}', 400,
         "ValidationException"),
        ("bad table name", DDB + "DescribeTable", '{"TableName": "x"}', 400, "ValidationException"),
        ("Limit 0", DDB + "Scan", '{"TableName": "t01", "Limit": 0}', 400, "ValidationException"),
        # a long name of two-byte characters: the message that echoes it is
        # cut at a character, not inside one (the answer was an empty 400)
        ("long non-ASCII TableName", DDB + "GetItem",
         json.dumps({"TableName": "\u00e4" * 240, "Key": {"id": {"S": "a"}}}), 400, "ValidationException"),
        ("long euro TableName", DDB + "PutItem",
         json.dumps({"TableName": "\u20ac" * 200, "Item": {"id": {"S": "a"}}}), 400, "ValidationException"),
    ]
    # an empty body for each operation that waits off the HTTP thread (UBSan:
    # memcpy from a NULL body)
    for op in ("BatchWriteItem", "TransactWriteItems", "CreateTable", "UpdateTable", "DeleteTable",
               "UpdateTimeToLive", "TagResource", "UntagResource"):
        cases.append(("empty body, " + op, DDB + op, "", 400, "SerializationException"))
    for op in ("ListStreams", "DescribeStream", "GetShardIterator", "GetRecords"):
        cases.append(("empty body, " + op, "DynamoDBStreams_20120810." + op, "", 400,
                      "SerializationException"))
    nest = '{"L": [' * 40 + '{"S": "x"}' + ']}' * 40
    cases.append(("nesting 40 deep", DDB + "PutItem",
                  '{"TableName": "t01", "Item": {"id": {"S": "a"}, "d": %s}}' % nest, 400, "ValidationException"))
    big = "x" * 410000
    cases.append(("item over 400 KB", DDB + "PutItem",
                  '{"TableName": "t01", "Item": {"id": {"S": "a"}, "d": {"S": "%s"}}}' % big, 400,
                  "ValidationException"))
    for name, target, body, status, etype in cases:
        got = err(call(target, body))
        h.eq(got, (status, etype), name)
    # spaces around the X-Amz-Target value are not part of it
    h.eq(call("  " + DDB + "ListTables \t", "{}")[0], 200, "X-Amz-Target with spaces around it")
    # a string holding U+0000: refused, with a message that says so (not jansson's flag name)
    r = call(DDB + "PutItem", '{"TableName": "t01", "Item": {"id": {"S": "a"}, "s": {"S": "x\\u0000y"}}}')
    h.eq(err(r), (400, "SerializationException"), "a string with U+0000")
    h.check("U+0000" in r[1].get("Message", r[1].get("message", "")) and
            "JSON_ALLOW_NUL" not in json.dumps(r[1]), "the U+0000 message: %r" % (r[1],))

    # over the 16 MB body cap
    # The server may answer as soon as it sees Content-Length and close the
    # connection while the body is still being sent: read its answer anyway.
    import socket
    big_body = b'{"TableName": "t01", "Item": {"id": {"S": "' + b"x" * (17 << 20) + b'"}}}'
    sk = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    sk.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
               b"X-Amz-Target: DynamoDB_20120810.PutItem\r\nContent-Length: %d\r\n\r\n" % len(big_body))
    try:
        sk.sendall(big_body)
    except OSError:
        pass
    answer = b""
    try:
        while True:
            chunk = sk.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    sk.close()
    h.check(answer.startswith(b"HTTP/1.1 413"), "17 MB body refused with 413: %r" % answer[:80])
    h.check(b"x-amz-crc32" in answer.lower(), "413 carries x-amz-crc32")
    # wrong content type (dynalite/AWS: 404 UnknownOperationException)
    status, _ = call(DDB + "ListTables", "{}", ctype="text/plain", raw=True)
    h.eq(status, 404, "wrong content type")
    # health check
    status, body = call(None, "", method="GET", raw=True)
    h.eq(status, 200, "GET / health")

    # Clients that half-close after a whole request (shutdown(SHUT_WR)):
    # libmicrohttpd takes the end of their input for a hang-up, so the
    # answer is lost, but the write goes through and what its request held
    # is freed (under ASan the clean stop below fails on a leak).
    import socket
    h.eq(call(DDB + "CreateTable", json.dumps({
        "TableName": "t02", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}))[0], 200, "create t02")

    def half_close(op, body):
        sk = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        data = body.encode()
        sk.sendall(("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                    "X-Amz-Target: %s%s\r\nContent-Length: %d\r\n\r\n" % (DDB, op, len(data))).encode()
                   + data)
        sk.shutdown(socket.SHUT_WR)
        try:
            while sk.recv(65536):
                pass
        except OSError:
            pass
        sk.close()

    for i in range(10):
        half_close("PutItem", json.dumps({"TableName": "t02", "Item": {"id": {"S": "p%d" % i}}}))
        half_close("UpdateItem", json.dumps({"TableName": "t02", "Key": {"id": {"S": "u"}},
                                             "UpdateExpression": "ADD n :one",
                                             "ExpressionAttributeValues": {":one": {"N": "1"}}}))
        half_close("TransactWriteItems", json.dumps({"TransactItems": [
            {"Put": {"TableName": "t02", "Item": {"id": {"S": "t%d" % i}}}}]}))
    time.sleep(0.5)
    st, body = call(DDB + "Scan", '{"TableName": "t02", "ConsistentRead": true}')
    ids = sorted(it["id"]["S"] for it in body.get("Items", []))
    h.eq(len(ids), 21, "the half-closed clients' writes went through (%d items)" % len(ids))

    # Nothing was written by any rejected request; the server still answers.
    st, body = call(DDB + "Scan", '{"TableName": "t01"}')
    h.eq(st, 200, "server still answers")
    h.eq(body.get("Items"), [{"id": {"S": "keep"}}], "data unchanged")
    h.eq(srv.stop(), 0, "clean stop")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
sys.exit(h.done())
