#!/usr/bin/env bash
# The DynamoDB API through the real AWS CLI (`aws dynamodb ...`) against
# `tributary serve` on loopback, including SigV4 with configured keys.
set -u
T="${TRB_BIN:?}"
TMP="${TRB_TEST_TMP:-/tmp}"; mkdir -p "$TMP"
D=$(mktemp -d "$TMP/awscli-XXXXXX")
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
passes=0; fails=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
export AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=${1:-local} AWS_SECRET_ACCESS_KEY=local AWS_PAGER="" \
       AWS_MAX_ATTEMPTS=1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

start() { # start CONFIG
  : >"$D/log"
  "$T" --data-dir "$D/data" ${1:+--config "$1"} serve --listen 127.0.0.1:0 >"$D/log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do
    PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$D/log" | head -1)
    [[ -n "$PORT" ]] && break; sleep 0.05
  done
  [[ -n "$PORT" ]] || { echo "server did not start: $(cat "$D/log")"; exit 1; }
  EP="--endpoint-url http://127.0.0.1:$PORT"
}
stop() { kill -TERM "$PID"; wait "$PID"; local rc=$?; PID=; return $rc; }

start
aws dynamodb create-table $EP --table-name music \
  --attribute-definitions AttributeName=Artist,AttributeType=S AttributeName=Song,AttributeType=S \
  --key-schema AttributeName=Artist,KeyType=HASH AttributeName=Song,KeyType=RANGE \
  --billing-mode PAY_PER_REQUEST >"$D/out" && ok || bad "create-table: $(cat "$D/out")"
aws dynamodb wait table-exists $EP --table-name music && ok || bad "wait table-exists"
for i in 1 2 3 4 5; do
  aws dynamodb put-item $EP --table-name music \
    --item "{\"Artist\":{\"S\":\"A\"},\"Song\":{\"S\":\"s$i\"},\"Plays\":{\"N\":\"$i\"}}" || bad "put $i"
done
out=$(aws dynamodb get-item $EP --table-name music --key '{"Artist":{"S":"A"},"Song":{"S":"s3"}}' --output json)
[[ $(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Item"]["Plays"]["N"])') == 3 ]] && ok || bad "get-item: $out"
n=$(aws dynamodb query $EP --table-name music --key-condition-expression "Artist = :a" \
      --expression-attribute-values '{":a":{"S":"A"}}' --page-size 2 --output json | \
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["Items"]))')
[[ "$n" == 5 ]] && ok || bad "query with CLI pagination returned $n items"
n=$(aws dynamodb scan $EP --table-name music --filter-expression "Plays > :p" \
      --expression-attribute-values '{":p":{"N":"2"}}' --output json | \
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Count"], d["ScannedCount"])')
[[ "$n" == "3 5" ]] && ok || bad "scan filter: $n"
aws dynamodb update-item $EP --table-name music --key '{"Artist":{"S":"A"},"Song":{"S":"s1"}}' \
  --update-expression "SET Plays = Plays + :one" --expression-attribute-values '{":one":{"N":"1"}}' \
  --return-values UPDATED_NEW --output json >"$D/out" && grep -q '"2"' "$D/out" && ok || bad "update-item: $(cat "$D/out")"
if aws dynamodb put-item $EP --table-name music --item '{"Artist":{"S":"A"},"Song":{"S":"s1"}}' \
     --condition-expression "attribute_not_exists(Song)" 2>"$D/err"; then bad "conditional put succeeded"
else grep -q ConditionalCheckFailedException "$D/err" && ok || bad "ccf: $(cat "$D/err")"; fi
# A GSI added by update-table (backfilled from the five songs), queried through the CLI.
aws dynamodb update-table $EP --table-name music \
  --attribute-definitions AttributeName=Plays,AttributeType=N \
  --global-secondary-index-updates '[{"Create":{"IndexName":"byPlays","KeySchema":[{"AttributeName":"Plays","KeyType":"HASH"}],"Projection":{"ProjectionType":"KEYS_ONLY"}}}]' \
  >"$D/out" && ok || bad "update-table create GSI: $(cat "$D/out")"
st=$(aws dynamodb describe-table $EP --table-name music --query 'Table.GlobalSecondaryIndexes[0].[IndexStatus,ItemCount]' --output text)
[[ "$st" == "ACTIVE	5" ]] && ok || bad "GSI status and count: $st"
out=$(aws dynamodb query $EP --table-name music --index-name byPlays --key-condition-expression "Plays = :p" \
      --expression-attribute-values '{":p":{"N":"3"}}' --output json)
[[ $(echo "$out" | python3 -c 'import json,sys; print([i["Song"]["S"] for i in json.load(sys.stdin)["Items"]])') == "['s3']" ]] \
  && ok || bad "query GSI: $out"
# DynamoDB Streams through `aws dynamodbstreams`.
aws dynamodb update-table $EP --table-name music \
  --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES >"$D/out" && ok || bad "enable stream: $(cat "$D/out")"
aws dynamodb put-item $EP --table-name music --item '{"Artist":{"S":"B"},"Song":{"S":"x"},"Plays":{"N":"9"}}' || bad "put after enabling"
aws dynamodb delete-item $EP --table-name music --key '{"Artist":{"S":"B"},"Song":{"S":"x"}}' || bad "delete after enabling"
SARN=$(aws dynamodbstreams list-streams $EP --table-name music --query 'Streams[0].StreamArn' --output text)
[[ "$SARN" == arn:aws:dynamodb:*:table/music/stream/* ]] && ok || bad "list-streams: $SARN"
aws dynamodbstreams describe-stream $EP --stream-arn "$SARN" --output json >"$D/desc" && ok || bad "describe-stream"
python3 - "$D/desc" >"$D/shards" <<'PY' || bad "describe-stream output"
import json, sys
d = json.load(open(sys.argv[1]))["StreamDescription"]
assert d["StreamStatus"] == "ENABLED" and d["StreamViewType"] == "NEW_AND_OLD_IMAGES", d
print("\n".join(s["ShardId"] for s in d["Shards"]))
PY
events=""
while read -r sh; do
  it=$(aws dynamodbstreams get-shard-iterator $EP --stream-arn "$SARN" --shard-id "$sh" \
         --shard-iterator-type TRIM_HORIZON --query ShardIterator --output text)
  aws dynamodbstreams get-records $EP --shard-iterator "$it" --output json >"$D/recs" || bad "get-records"
  events+=$(python3 -c 'import json,sys; print(" ".join(r["eventName"] for r in json.load(open(sys.argv[1]))["Records"]))' "$D/recs")
  events+=" "
done <"$D/shards"
[[ $(echo $events | tr ' ' '\n' | sort | tr '\n' ' ') == "INSERT REMOVE " ]] && ok || bad "stream events: '$events'"
if aws dynamodbstreams get-records $EP --shard-iterator "garbage-iterator-that-is-long-enough" 2>"$D/err"; then
  bad "garbage iterator accepted"; else grep -q ValidationException "$D/err" && ok || bad "garbage iterator: $(cat "$D/err")"; fi
aws dynamodb delete-table $EP --table-name music >/dev/null && ok || bad "delete-table"
stop && ok || bad "stop"

# SigV4 on: the right key works, a wrong secret and an unknown key are refused.
printf 'api:\n  access_key_id: AKIDTRIBUTARY\n  secret_access_key: s3cret\n' >"$D/auth.yaml"
start "$D/auth.yaml"
grep -q "authentication on" "$D/log" && ok || bad "log says authentication on: $(cat "$D/log")"
AWS_ACCESS_KEY_ID=AKIDTRIBUTARY AWS_SECRET_ACCESS_KEY=s3cret aws dynamodb list-tables $EP >/dev/null \
  && ok || bad "signed with the right key"
if AWS_ACCESS_KEY_ID=AKIDTRIBUTARY AWS_SECRET_ACCESS_KEY=wrong aws dynamodb list-tables $EP 2>"$D/err"; then
  bad "wrong secret accepted"; else grep -q InvalidSignatureException "$D/err" && ok || bad "wrong secret: $(cat "$D/err")"; fi
if AWS_ACCESS_KEY_ID=NOSUCHKEY AWS_SECRET_ACCESS_KEY=s3cret aws dynamodb list-tables $EP 2>"$D/err"; then
  bad "unknown key accepted"; else grep -q UnrecognizedClientException "$D/err" && ok || bad "unknown key: $(cat "$D/err")"; fi
# signed for another region than the server's (us-east-1 by default): AWS's refusal
if AWS_ACCESS_KEY_ID=AKIDTRIBUTARY AWS_SECRET_ACCESS_KEY=s3cret aws dynamodb list-tables $EP --region us-west-2 2>"$D/err"; then
  bad "a credential for us-west-2 accepted"
else grep -q InvalidSignatureException "$D/err" && grep -q "Credential should be scoped to a valid region, not 'us-west-2'" "$D/err"   && ok || bad "wrong region: $(cat "$D/err")"; fi
# a session token (signed) with the long-term key: not one this server issued, nothing written
if AWS_ACCESS_KEY_ID=AKIDTRIBUTARY AWS_SECRET_ACCESS_KEY=s3cret AWS_SESSION_TOKEN=FQoGZXIvYXdzEXAMPLETOKEN \
   aws dynamodb create-table $EP --table-name tokened --attribute-definitions AttributeName=k,AttributeType=S \
   --key-schema AttributeName=k,KeyType=HASH --billing-mode PAY_PER_REQUEST >/dev/null 2>"$D/err"; then
  bad "a session token accepted"
else grep -q "UnrecognizedClientException" "$D/err" && grep -q "security token included in the request is invalid" "$D/err" \
  && ok || bad "session token: $(cat "$D/err")"; fi
AWS_ACCESS_KEY_ID=AKIDTRIBUTARY AWS_SECRET_ACCESS_KEY=s3cret aws dynamodb list-tables $EP --output text >"$D/out" \
  && ! grep -q tokened "$D/out" && ok || bad "the refused create-table made a table: $(cat "$D/out")"
stop && ok || bad "stop"
# Without keys the server refuses a non-loopback address.
if "$T" --data-dir "$D/data2" serve --listen 0.0.0.0:0 2>"$D/err"; then bad "listened on 0.0.0.0 without auth"
else grep -q "refusing to listen" "$D/err" && ok || bad "refusal message: $(cat "$D/err")"; fi

echo "awscli: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
