"""Secondary indexes through boto3 against `tributary serve`: LSIs and GSIs
with KEYS_ONLY / INCLUDE / ALL projections, sparse entries, a random
workload of puts, updates, deletes and transactions after which every index
equals what a full Scan of the table says it must hold (through Query and
Scan paging with boto3's paginators), the same after kill -9 and a restart,
a GSI created later by UpdateTable (backfilled) and deleted again, the
index rules DynamoDB enforces, and GSI read throttling in provisioned
mode."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from trbserver import Harness, Server, raw_call  # noqa: E402

h = Harness("api_indexes")
srv = Server().start()
seed = int(os.environ.get("TRB_TEST_SEED", random.randrange(1 << 30)))
print("TRB_TEST_SEED=%d" % seed, flush=True)
rnd = random.Random(seed)


def client():
    return boto3.client(
        "dynamodb", endpoint_url=srv.url, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
        config=botocore.config.Config(retries={"max_attempts": 1}))


ddb = client()
T = "shop"
KEYS = ("cust", "ord")
# name -> (hash, range, projection, include, local)
INDEXES = {
    "byDate": ("cust", "day", "KEYS_ONLY", None, True),
    "byStatus": ("status", "day", "INCLUDE", ["total"], False),
    "byTotal": ("total", None, "ALL", None, False),
}


def ktype(a):
    return {"cust": "S", "ord": "N", "day": "S", "status": "S", "total": "N", "ref": "B"}[a]


def expected_entries(items, name):
    """The entries index `name` must hold: its projection of every item that
    has all its key attributes."""
    hk, rk, proj, include, _ = INDEXES[name]
    out = {}
    for it in items:
        if hk not in it or (rk and rk not in it):
            continue
        if it[hk] == {"S": ""} or (rk and it[rk] == {"S": ""}):
            continue  # an empty key value written before the index existed: left out
        if proj == "ALL":
            e = dict(it)
        else:
            keep = set(KEYS) | {hk} | ({rk} if rk else set()) | set(include or [])
            e = {k: v for k, v in it.items() if k in keep}
        out[(repr(sorted(e[hk].items())), it["cust"]["S"], it["ord"]["N"])] = e
    return out


def scan_all(**kw):
    items = []
    for page in ddb.get_paginator("scan").paginate(TableName=T, PaginationConfig={"PageSize": 7}, **kw):
        items += page["Items"]
    return items


def num(v):
    return float(v["N"])


def check_indexes(what):
    table = scan_all()
    d = ddb.describe_table(TableName=T)["Table"]
    counts = {x["IndexName"]: x["ItemCount"]
              for x in d.get("LocalSecondaryIndexes", []) + d.get("GlobalSecondaryIndexes", [])}
    for name, (hk, rk, proj, include, local) in INDEXES.items():
        want = expected_entries(table, name)
        got = scan_all(IndexName=name)
        keyed = {}
        for e in got:
            keyed[(repr(sorted(e[hk].items())), e["cust"]["S"], e["ord"]["N"])] = e
        h.eq(len(got), len(keyed), "%s: index %s scan returns each entry once" % (what, name))
        h.check(keyed == want, "%s: index %s holds the projections of the table (%d vs %d entries)"
                % (what, name, len(keyed), len(want)))
        h.eq(counts.get(name), len(want), "%s: ItemCount of %s" % (what, name))
        # Query each index partition in both directions; order by the index sort key.
        parts = {}
        for e in want.values():
            parts.setdefault(repr(e[hk]), e[hk])
        for pv in list(parts.values())[:12]:
            for forward in (True, False):
                seen = []
                for page in ddb.get_paginator("query").paginate(
                        TableName=T, IndexName=name, KeyConditionExpression="#h = :v",
                        ExpressionAttributeNames={"#h": hk}, ExpressionAttributeValues={":v": pv},
                        ScanIndexForward=forward, PaginationConfig={"PageSize": 3}):
                    seen += page["Items"]
                    if "LastEvaluatedKey" in page:
                        lek = set(page["LastEvaluatedKey"])
                        h.check(lek == set(KEYS) | {hk} | ({rk} if rk else set()),
                                "%s: LastEvaluatedKey of %s holds index and table keys (%r)"
                                % (what, name, lek))
                exp = [e for e in want.values() if e[hk] == pv]
                h.eq(len(seen), len(exp), "%s: query %s partition %r count" % (what, name, pv))
                if rk:
                    sk = [s[rk]["S"] if "S" in s[rk] else num(s[rk]) for s in seen]
                    h.check(sk == sorted(sk, reverse=not forward),
                            "%s: query %s in sort-key order (forward=%s)" % (what, name, forward))


try:
    # ---- validation of definitions ----
    base = dict(TableName=T, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "cust", "KeyType": "HASH"},
                           {"AttributeName": "ord", "KeyType": "RANGE"}])

    def ads(*names):
        return [{"AttributeName": a, "AttributeType": ktype(a)} for a in names]

    def idx(name, hk, rk, proj, include=None):
        ks = [{"AttributeName": hk, "KeyType": "HASH"}]
        if rk:
            ks.append({"AttributeName": rk, "KeyType": "RANGE"})
        p = {"ProjectionType": proj}
        if include:
            p["NonKeyAttributes"] = include
        return {"IndexName": name, "KeySchema": ks, "Projection": p}

    h.raises(lambda: ddb.create_table(AttributeDefinitions=ads("cust", "ord"), **base,
                                      GlobalSecondaryIndexes=[idx("gs1", "status", None, "ALL")]),
             "ValidationException", "GSI key not in AttributeDefinitions")
    h.raises(lambda: ddb.create_table(AttributeDefinitions=ads("cust", "ord", "day", "status"), **base,
                                      GlobalSecondaryIndexes=[idx("gs1", "status", None, "ALL")]),
             "ValidationException", "an AttributeDefinition no key uses")
    h.raises(lambda: ddb.create_table(AttributeDefinitions=ads("cust", "ord", "day"), **base,
                                      LocalSecondaryIndexes=[idx("ls1", "day", "ord", "ALL")]),
             "ValidationException", "LSI with another hash key")
    h.raises(lambda: ddb.create_table(AttributeDefinitions=ads("cust", "ord", "status"), **base,
                                      GlobalSecondaryIndexes=[idx("gs1", "status", None, "INCLUDE")]),
             "ValidationException", "INCLUDE without NonKeyAttributes")
    h.raises(lambda: ddb.create_table(AttributeDefinitions=ads("cust", "ord", "status"), **base,
                                      GlobalSecondaryIndexes=[idx("gs1", "status", None, "ALL"),
                                                              idx("gs1", "status", None, "ALL")]),
             "ValidationException", "duplicate index names")
    h.raises(lambda: ddb.create_table(
        TableName="nosk", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=ads("cust", "day"),
        KeySchema=[{"AttributeName": "cust", "KeyType": "HASH"}],
        LocalSecondaryIndexes=[idx("ls1", "cust", "day", "ALL")]),
        "ValidationException", "LSI on a table without a sort key")
    h.raises(lambda: ddb.create_table(
        TableName=T, AttributeDefinitions=ads("cust", "ord", "status"),
        KeySchema=base["KeySchema"], ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
        GlobalSecondaryIndexes=[idx("gs1", "status", None, "ALL")]),
        "ValidationException", "provisioned GSI without throughput")
    h.eq(ddb.list_tables()["TableNames"], [], "no table made by a rejected CreateTable")

    # ---- the table ----
    gsis = []
    lsis = []
    for name, (hk, rk, proj, include, local) in INDEXES.items():
        (lsis if local else gsis).append(idx(name, hk, rk, proj, include))
    d = ddb.create_table(AttributeDefinitions=ads("cust", "ord", "day", "status", "total"), **base,
                         LocalSecondaryIndexes=lsis, GlobalSecondaryIndexes=gsis)["TableDescription"]
    h.eq(sorted(x["IndexName"] for x in d["GlobalSecondaryIndexes"]), ["byStatus", "byTotal"], "GSIs described")
    h.eq([x["IndexName"] for x in d["LocalSecondaryIndexes"]], ["byDate"], "LSI described")
    h.eq(d["GlobalSecondaryIndexes"][0]["IndexArn"],
         "arn:aws:dynamodb:us-east-1:000000000000:table/shop/index/" + d["GlobalSecondaryIndexes"][0]["IndexName"],
         "index ARN")
    h.eq(d["LocalSecondaryIndexes"][0]["Projection"], {"ProjectionType": "KEYS_ONLY"}, "LSI projection")

    # ---- writes the index rules refuse ----
    h.raises(lambda: ddb.put_item(TableName=T, Item={"cust": {"S": "a"}, "ord": {"N": "1"}, "status": {"N": "3"}}),
             "ValidationException", "GSI key of the wrong type")
    h.raises(lambda: ddb.put_item(TableName=T, Item={"cust": {"S": "a"}, "ord": {"N": "1"}, "day": {"S": ""}}),
             "ValidationException", "empty LSI sort key")
    ddb.put_item(TableName=T, Item={"cust": {"S": "a"}, "ord": {"N": "1"}, "status": {"S": "x"}})
    h.raises(lambda: ddb.update_item(TableName=T, Key={"cust": {"S": "a"}, "ord": {"N": "1"}},
                                     UpdateExpression="SET #s = :n", ExpressionAttributeNames={"#s": "status"},
                                     ExpressionAttributeValues={":n": {"N": "1"}}),
             "ValidationException", "update giving a GSI key the wrong type")
    ddb.delete_item(TableName=T, Key={"cust": {"S": "a"}, "ord": {"N": "1"}})

    # ---- a random workload ----
    custs = ["c%02d" % i for i in range(15)]
    statuses = ["open", "paid", "shipped", "lost"]

    def rand_item(c, o):
        it = {"cust": {"S": c}, "ord": {"N": str(o)}, "note": {"S": "n" * rnd.randrange(0, 40)}}
        if rnd.random() < 0.8:
            it["day"] = {"S": "2026-%02d-%02d" % (rnd.randrange(1, 13), rnd.randrange(1, 29))}
        if rnd.random() < 0.7:
            it["status"] = {"S": rnd.choice(statuses)}
        if rnd.random() < 0.6:
            it["total"] = {"N": str(rnd.randrange(0, 20)) + rnd.choice(["", ".5", "e1"])}
        return it

    def key(c, o):
        return {"cust": {"S": c}, "ord": {"N": str(o)}}

    for step in range(500):
        c, o = rnd.choice(custs), rnd.randrange(12)
        r = rnd.random()
        if r < 0.45:
            ddb.put_item(TableName=T, Item=rand_item(c, o))
        elif r < 0.7:
            acts = rnd.choice([
                ("SET #s = :s", {"#s": "status"}, {":s": {"S": rnd.choice(statuses)}}),
                ("REMOVE #s", {"#s": "status"}, None),
                ("SET #t = if_not_exists(#t, :z) + :d", {"#t": "total"}, {":z": {"N": "0"}, ":d": {"N": "1"}}),
                ("SET #d = :d", {"#d": "day"}, {":d": {"S": "2026-06-%02d" % rnd.randrange(1, 29)}}),
                ("REMOVE #d, note", {"#d": "day"}, None),
            ])
            kw = {"UpdateExpression": acts[0], "ExpressionAttributeNames": acts[1]}
            if acts[2]:
                kw["ExpressionAttributeValues"] = acts[2]
            ddb.update_item(TableName=T, Key=key(c, o), **kw)
        elif r < 0.85:
            ddb.delete_item(TableName=T, Key=key(c, o))
        else:
            ks = set()
            while len(ks) < 3:
                ks.add((rnd.choice(custs), rnd.randrange(12)))
            ks = list(ks)
            ddb.transact_write_items(TransactItems=[
                {"Put": {"TableName": T, "Item": rand_item(*ks[0])}},
                {"Delete": {"TableName": T, "Key": key(*ks[1])}},
                {"Update": {"TableName": T, "Key": key(*ks[2]), "UpdateExpression": "SET #s = :s",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":s": {"S": "paid"}}}}])
    check_indexes("after the workload")

    # ---- reading rules ----
    h.raises(lambda: ddb.query(TableName=T, IndexName="byStatus", KeyConditionExpression="#s = :s",
                               ExpressionAttributeNames={"#s": "status"},
                               ExpressionAttributeValues={":s": {"S": "open"}}, ConsistentRead=True),
             "ValidationException", "consistent read on a GSI")
    h.raises(lambda: ddb.query(TableName=T, IndexName="nosuch", KeyConditionExpression="cust = :c",
                               ExpressionAttributeValues={":c": {"S": "c01"}}),
             "ValidationException", "unknown index")
    h.raises(lambda: ddb.query(TableName=T, IndexName="byStatus", KeyConditionExpression="#s = :s",
                               ExpressionAttributeNames={"#s": "status"}, Select="ALL_ATTRIBUTES",
                               ExpressionAttributeValues={":s": {"S": "open"}}),
             "ValidationException", "ALL_ATTRIBUTES on a GSI that does not project all")
    h.raises(lambda: ddb.query(TableName=T, IndexName="byStatus", KeyConditionExpression="#s = :s",
                               ExpressionAttributeNames={"#s": "status"}, ProjectionExpression="note",
                               ExpressionAttributeValues={":s": {"S": "open"}}),
             "ValidationException", "projecting an attribute a GSI does not hold")
    table = {(i["cust"]["S"], i["ord"]["N"]): i for i in scan_all()}
    c0 = next(c for c in custs if any(k[0] == c and "day" in v for k, v in table.items()))
    r = ddb.query(TableName=T, IndexName="byDate", KeyConditionExpression="cust = :c",
                  ExpressionAttributeValues={":c": {"S": c0}}, Select="ALL_ATTRIBUTES", ConsistentRead=True)
    h.check(r["Items"] and all(it == table[(it["cust"]["S"], it["ord"]["N"])] for it in r["Items"]),
            "LSI with ALL_ATTRIBUTES returns the table's whole items")
    r = ddb.query(TableName=T, IndexName="byDate", KeyConditionExpression="cust = :c",
                  ExpressionAttributeValues={":c": {"S": c0}}, ProjectionExpression="note, #d",
                  ExpressionAttributeNames={"#d": "day"})
    h.check(all(set(it) <= {"note", "day"} and "day" in it for it in r["Items"]) and r["Items"],
            "LSI projection beyond KEYS_ONLY fetches from the table")
    r = ddb.query(TableName=T, IndexName="byDate", KeyConditionExpression="cust = :c and #d BETWEEN :a AND :b",
                  ExpressionAttributeNames={"#d": "day"},
                  ExpressionAttributeValues={":c": {"S": c0}, ":a": {"S": "2026-03"}, ":b": {"S": "2026-09"}},
                  ReturnConsumedCapacity="INDEXES")
    want = sorted(v["day"]["S"] for k, v in table.items()
                  if k[0] == c0 and "day" in v and "2026-03" <= v["day"]["S"] <= "2026-09")
    h.eq([it["day"]["S"] for it in r["Items"]], want, "LSI range query")
    h.check("LocalSecondaryIndexes" in r["ConsumedCapacity"], "INDEXES capacity names the LSI")
    cc = r["ConsumedCapacity"]
    h.eq(cc["Table"]["CapacityUnits"] + sum(v["CapacityUnits"] for v in cc["LocalSecondaryIndexes"].values()),
         cc["CapacityUnits"], "an LSI read: the parts add up to the total (the table's part is 0): %r" % cc)
    r = ddb.query(TableName=T, IndexName="byStatus", KeyConditionExpression="#s = :s",
                  ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "paid"}},
                  ReturnConsumedCapacity="INDEXES")
    h.check("byStatus" in r["ConsumedCapacity"].get("GlobalSecondaryIndexes", {}),
            "INDEXES capacity names the GSI: %r" % r["ConsumedCapacity"])
    segs = 0
    for seg in range(3):
        for page in ddb.get_paginator("scan").paginate(TableName=T, IndexName="byTotal", Segment=seg,
                                                       TotalSegments=3, PaginationConfig={"PageSize": 5}):
            segs += len(page["Items"])
    h.eq(segs, len(expected_entries(list(table.values()), "byTotal")), "parallel scan of a GSI")

    # ---- write capacity with INDEXES: each index entry write costs its own units ----
    r = ddb.put_item(TableName=T, ReturnConsumedCapacity="INDEXES",
                     Item={"cust": {"S": "cap"}, "ord": {"N": "1"}, "day": {"S": "2026-01-01"},
                           "status": {"S": "open"}, "total": {"N": "5"}})
    cc = r["ConsumedCapacity"]
    h.eq((cc["CapacityUnits"], cc["Table"]["CapacityUnits"]), (4.0, 1.0), "put: table + 3 index entries")
    h.eq(sorted(cc["GlobalSecondaryIndexes"]), ["byStatus", "byTotal"], "put: GSIs charged")
    h.eq(cc["LocalSecondaryIndexes"]["byDate"]["CapacityUnits"], 1.0, "put: LSI charged")
    r = ddb.update_item(TableName=T, Key={"cust": {"S": "cap"}, "ord": {"N": "1"}}, ReturnConsumedCapacity="INDEXES",
                        UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":s": {"S": "paid"}})
    cc = r["ConsumedCapacity"]
    h.eq(cc["GlobalSecondaryIndexes"]["byStatus"]["CapacityUnits"], 2.0, "index key change: delete + put")
    h.eq(cc["GlobalSecondaryIndexes"]["byTotal"]["CapacityUnits"], 1.0, "ALL projection rewritten")
    h.check("LocalSecondaryIndexes" not in cc, "KEYS_ONLY LSI untouched by a non-key change: %r" % cc)
    r = ddb.update_item(TableName=T, Key={"cust": {"S": "cap"}, "ord": {"N": "1"}}, ReturnConsumedCapacity="TOTAL",
                        UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"S": "hi"}})
    h.eq(r["ConsumedCapacity"]["CapacityUnits"], 2.0, "TOTAL counts the ALL index only")
    r = ddb.transact_write_items(ReturnConsumedCapacity="INDEXES", TransactItems=[
        {"Delete": {"TableName": T, "Key": {"cust": {"S": "cap"}, "ord": {"N": "1"}}}}])
    cc = r["ConsumedCapacity"][0]
    h.eq(cc["CapacityUnits"], 8.0, "transactional delete: (table + 3 entries) x 2")
    r = ddb.batch_write_item(ReturnConsumedCapacity="INDEXES", RequestItems={T: [
        {"PutRequest": {"Item": {"cust": {"S": "cap"}, "ord": {"N": "2"}, "status": {"S": "x"}, "day": {"S": "d"}}}},
        {"PutRequest": {"Item": {"cust": {"S": "cap"}, "ord": {"N": "3"}}}}]})
    cc = r["ConsumedCapacity"][0]
    h.eq((cc["CapacityUnits"], cc["GlobalSecondaryIndexes"]["byStatus"]["CapacityUnits"]), (4.0, 1.0),
         "batch write: two items, two entries of one (byStatus, byDate)")
    for o in (2, 3):
        ddb.delete_item(TableName=T, Key={"cust": {"S": "cap"}, "ord": {"N": str(o)}})

    # ---- kill -9 and restart: the indexes are rebuilt from the WAL with the table ----
    srv.kill9()
    srv.start()
    ddb = client()
    check_indexes("after kill -9")

    # ---- a GSI added later is backfilled; deleting it removes it ----
    ddb.put_item(TableName=T, Item={"cust": {"S": "empty"}, "ord": {"N": "1"}, "note": {"S": ""}})
    d = ddb.update_table(TableName=T, AttributeDefinitions=[{"AttributeName": "note", "AttributeType": "S"}],
                         GlobalSecondaryIndexUpdates=[{"Create": {
                             "IndexName": "byNote", "KeySchema": [{"AttributeName": "note", "KeyType": "HASH"}],
                             "Projection": {"ProjectionType": "KEYS_ONLY"}}}])["TableDescription"]
    h.check(any(x["IndexName"] == "byNote" for x in d["GlobalSecondaryIndexes"]), "new GSI described")
    INDEXES["byNote"] = ("note", None, "KEYS_ONLY", None, False)
    # Items with an empty note were written before the index: the backfill leaves
    # them out (DynamoDB does too); from now on such a write is refused.
    h.check(any(i.get("note") == {"S": ""} for i in scan_all()), "some items have an empty note")
    check_indexes("after backfill")
    h.raises(lambda: ddb.put_item(TableName=T, Item={"cust": {"S": "zz"}, "ord": {"N": "2"}, "note": {"S": ""}}),
             "ValidationException", "empty GSI key refused once the index exists")
    ddb.put_item(TableName=T, Item={"cust": {"S": "zz"}, "ord": {"N": "1"}, "note": {"S": "fresh"}})
    r = ddb.query(TableName=T, IndexName="byNote", KeyConditionExpression="note = :n",
                  ExpressionAttributeValues={":n": {"S": "fresh"}})
    h.eq(r["Items"], [{"cust": {"S": "zz"}, "ord": {"N": "1"}, "note": {"S": "fresh"}}],
         "new GSI maintained after its backfill")
    h.eq(srv.stop(), 0, "clean stop")
    srv.start()
    ddb = client()
    check_indexes("after backfill and restart")
    ddb.update_table(TableName=T, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "byNote"}}])
    del INDEXES["byNote"]
    h.raises(lambda: ddb.query(TableName=T, IndexName="byNote", KeyConditionExpression="note = :n",
                               ExpressionAttributeValues={":n": {"S": "fresh"}}),
             "ValidationException", "deleted GSI is gone")
    h.raises(lambda: ddb.update_table(TableName=T, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "byNote"}}]),
             "ResourceNotFoundException", "deleting a missing GSI")
    check_indexes("after deleting a GSI")

    # ---- GSI read throttling: 1 RCU, 300 s of burst, 0.5 RCU per eventual query ----
    ddb.create_table(TableName="prov", AttributeDefinitions=ads("cust", "status"),
                     KeySchema=[{"AttributeName": "cust", "KeyType": "HASH"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1000},
                     GlobalSecondaryIndexes=[dict(idx("gs1", "status", None, "ALL"),
                                                  ProvisionedThroughput={"ReadCapacityUnits": 1,
                                                                         "WriteCapacityUnits": 1})])
    g = ddb.describe_table(TableName="prov")["Table"]["GlobalSecondaryIndexes"][0]
    h.eq((g["ProvisionedThroughput"]["ReadCapacityUnits"], g["ProvisionedThroughput"]["WriteCapacityUnits"]),
         (1, 1), "GSI throughput described")
    throttled = None
    for i in range(700):
        try:
            ddb.query(TableName="prov", IndexName="gs1", KeyConditionExpression="#s = :s",
                      ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "x"}})
        except ddb.exceptions.ProvisionedThroughputExceededException:
            throttled = i
            break
    h.check(throttled is not None and 590 <= throttled <= 610,
            "GSI with 1 RCU throttles after its burst (at %r)" % throttled)
    ddb.get_item(TableName="prov", Key={"cust": {"S": "a"}})  # the table's own bucket is not the GSI's
    h.check(True, "table reads go on while its GSI is throttled")
    # Writes: items without the GSI key cost the GSI nothing; with it, 1 WCU each.
    for i in range(400):
        ddb.put_item(TableName="prov", Item={"cust": {"S": "n%d" % i}})
    throttled = None
    for i in range(400):
        try:
            ddb.put_item(TableName="prov", Item={"cust": {"S": "g%d" % i}, "status": {"S": "x"}})
        except ddb.exceptions.ProvisionedThroughputExceededException:
            throttled = i
            # ThrottlingReasons is newer than Debian's botocore: raw.
            st_, body = raw_call(srv.port, "DynamoDB_20120810.PutItem", {
                "TableName": "prov", "Item": {"cust": {"S": "g%d" % i}, "status": {"S": "x"}}})
            h.check(st_ == 400 and "IndexWriteProvisionedThroughputExceeded" in json.dumps(body),
                    "throttling reason names the index: %r" % body)
            break
    h.check(throttled is not None and 290 <= throttled <= 310,
            "GSI with 1 WCU throttles writes after its burst (at %r)" % throttled)
    h.eq(ddb.get_item(TableName="prov", Key={"cust": {"S": "g%d" % throttled}}).get("Item"), None,
         "a throttled write wrote nothing")

    # Batches and transactions are admitted against the GSIs too: 25 items a
    # batch, each 1 WCU on the GSI, so the 300 s burst lasts about 12 batches.
    ddb.create_table(TableName="prov2", AttributeDefinitions=ads("cust", "status"),
                     KeySchema=[{"AttributeName": "cust", "KeyType": "HASH"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1000},
                     GlobalSecondaryIndexes=[dict(idx("gs2", "status", None, "ALL"),
                                                  ProvisionedThroughput={"ReadCapacityUnits": 1000,
                                                                         "WriteCapacityUnits": 1})])

    def gsi_item(k):
        return {"PutRequest": {"Item": {"cust": {"S": k}, "status": {"S": "x"}}}}

    def drain(tag):
        """Batches into prov2 until one is throttled; its number."""
        for b in range(30):
            try:
                r = ddb.batch_write_item(RequestItems={
                    "prov2": [gsi_item("%s%d-%d" % (tag, b, j)) for j in range(25)]})
            except ddb.exceptions.ProvisionedThroughputExceededException:
                return b
            h.eq(r["UnprocessedItems"], {}, "batch %d within the GSI's burst fully processed" % b)
        return None
    nb = drain("b")
    h.check(nb is not None and 11 <= nb <= 13,
            "BatchWriteItem throttled by the GSI's 1 WCU after its burst (at batch %r)" % nb)
    st_, body = raw_call(srv.port, "DynamoDB_20120810.BatchWriteItem",
                         {"RequestItems": {"prov2": [gsi_item("raw")]}})
    h.check(st_ == 400 and body.get("__type", "").endswith("ProvisionedThroughputExceededException")
            and "IndexWriteProvisionedThroughputExceeded" in json.dumps(body),
            "a batch throttled by a GSI names the index: %r" % body)
    h.eq(ddb.get_item(TableName="prov2", Key={"cust": {"S": "b%d-0" % nb}}).get("Item"), None,
         "the throttled batch wrote nothing")
    # Two tables, one throttled through its GSI: that table's requests come
    # back unprocessed, the other's are written. (The GSI's bucket refills at
    # 1 WCU/s: drain again if it came back between the calls.)
    mixed = None
    for attempt in range(5):
        if attempt:
            drain("m%d-" % attempt)
        r = ddb.batch_write_item(RequestItems={
            "prov2": [gsi_item("mix%d" % attempt)],
            T: [{"PutRequest": {"Item": {"cust": {"S": "mix%d" % attempt}, "ord": {"N": "1"}}}}]})
        if r["UnprocessedItems"]:
            mixed = (attempt, r["UnprocessedItems"])
            break
    h.check(mixed is not None, "a mixed batch was throttled on prov2 (%r)" % (mixed,))
    if mixed:
        a, un = mixed
        h.eq(un, {"prov2": [gsi_item("mix%d" % a)]}, "the GSI-throttled table's request unprocessed")
        h.check("Item" in ddb.get_item(TableName=T, Key={"cust": {"S": "mix%d" % a},
                                                        "ord": {"N": "1"}}),
                "the other table's request written")
        h.eq(ddb.get_item(TableName="prov2", Key={"cust": {"S": "mix%d" % a}}).get("Item"), None,
             "the unprocessed request wrote nothing")
    ok = False
    for attempt in range(5):
        if attempt:
            drain("t%d-" % attempt)
        try:
            ddb.transact_write_items(TransactItems=[
                {"Put": {"TableName": T, "Item": {"cust": {"S": "tx%d" % attempt}, "ord": {"N": "1"}}}},
                {"Put": {"TableName": "prov2", "Item": {"cust": {"S": "tx%d" % attempt},
                                                        "status": {"S": "x"}}}}])
        except ddb.exceptions.ProvisionedThroughputExceededException:
            ok = True
            h.check("Item" not in ddb.get_item(TableName=T, Key={"cust": {"S": "tx%d" % attempt},
                                                                "ord": {"N": "1"}}),
                    "a transaction throttled by a GSI wrote nothing")
            break
    h.check(ok, "TransactWriteItems throttled by a GSI's empty write bucket")
except Exception as ex:
    import traceback
    traceback.print_exc()
    h.check(False, "exception: %r" % ex)
finally:
    srv.stop()
sys.exit(h.done())
