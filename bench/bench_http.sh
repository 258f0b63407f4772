#!/usr/bin/env bash
# bench_http.sh -- PutItem and GetItem over HTTP: tributary (durable) vs
# dynalite (the npm DynamoDB emulator, in memory) vs a bare libmicrohttpd
# server (the HTTP layer's ceiling), all under the same wrk load on
# loopback: 32 connections, 2 threads. One `name=value` line per figure.
#
#   bash bench/bench_http.sh [SECONDS]      (run after scripts/build.sh release)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
B=./build
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
W=$(mktemp -d /tmp/trb-bench-http-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# wrk scripts: unique keys for PutItem; GetItem over keys that exist. Both
# carry an Authorization header (dynalite insists on one; neither server
# here verifies it).
cat >"$W/put.lua" <<'LUA'
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
request = function()
  n = n + 1
  local body = string.format('{"TableName":"bench","Item":{"id":{"S":"t%d-%d"},"n":{"N":"%d"},"pad":{"S":"%s"}}}',
    tid, n, n, string.rep("x", 150))
  return wrk.format("POST", "/", {["Authorization"]="AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000", ["X-Amz-Date"]="20260101T000000Z", ["Content-Type"]="application/x-amz-json-1.0",
    ["X-Amz-Target"]="DynamoDB_20120810.PutItem"}, body)
end
LUA
cat >"$W/get.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"TableName":"bench","Key":{"id":{"S":"seed-%d"}}}', n % 1000)
  return wrk.format("POST", "/", {["Authorization"]="AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000", ["X-Amz-Date"]="20260101T000000Z", ["Content-Type"]="application/x-amz-json-1.0",
    ["X-Amz-Target"]="DynamoDB_20120810.GetItem"}, body)
end
LUA
cat >"$W/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.0f %.0f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), summary.errors.status, summary.errors.connect))
end
LUA
cat "$W/report.lua" >>"$W/put.lua"; cat "$W/report.lua" >>"$W/get.lua"

call() { # call PORT TARGET BODY
  curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/" -H 'Content-Type: application/x-amz-json-1.0' \
    -H "X-Amz-Target: DynamoDB_20120810.$2" -H 'X-Amz-Date: 20260101T000000Z' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000' \
    -d "$3"
}
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }
prepare() { # prepare PORT: table + 1000 seed items
  call "$1" CreateTable '{"TableName":"bench","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}' >/dev/null
  sleep 1
  for i in $(seq 0 999); do call "$1" PutItem "{\"TableName\":\"bench\",\"Item\":{\"id\":{\"S\":\"seed-$i\"},\"pad\":{\"S\":\"$(printf 'x%.0s' {1..150})\"}}}" >/dev/null; done
}
load() { # load PORT SCRIPT -> "rate p50us p99us errors"
  wrk -t2 -c32 -d"${SECS}s" -s "$W/$2" "http://127.0.0.1:$1/" | sed -n 's/^RESULT //p'
}
emit() { # emit NAME "rate p50 p99 errs connerrs"
  set -- "$1" $2
  echo "$1_req_per_s=$2"; echo "$1_p50_us=$3"; echo "$1_p99_us=$4"; echo "$1_errors=$(( $5 + $6 ))"
}

# 1. the ceiling: bare libmicrohttpd
$B/bench_mhd_bare 18001 2 & PIDS+=($!)
wait_port 18001
R=$(load 18001 get.lua); emit bare_mhd "$R"; BARE=${R%% *}

# 2. tributary
$B/tributary --data-dir "$W/data" serve --listen 127.0.0.1:18002 2>"$W/trb.log" & PIDS+=($!)
wait_port 18002; prepare 18002
R=$(load 18002 put.lua); emit tributary_put "$R"; TPUT=${R%% *}
R=$(load 18002 get.lua); emit tributary_get "$R"; TGET=${R%% *}

# 3. dynalite (npm), if it can be installed
DYN=""
if [[ -d "$W/dyn" ]] || { mkdir -p "$W/dyn" && (cd "$W/dyn" && npm install --silent --no-audit --no-fund dynalite@4 >/dev/null 2>&1); }; then
  node "$W/dyn/node_modules/dynalite/cli.js" --port 18003 >/dev/null 2>&1 & PIDS+=($!)
  if wait_port 18003; then
    prepare 18003
    R=$(load 18003 put.lua); emit dynalite_put "$R"; DPUT=${R%% *}
    R=$(load 18003 get.lua); emit dynalite_get "$R"; DGET=${R%% *}
    DYN=1
  fi
fi
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
if [[ -n "$DYN" ]]; then
  echo "put_vs_dynalite=$(ratio "$TPUT" "$DPUT")"
  echo "get_vs_dynalite=$(ratio "$TGET" "$DGET")"
else
  echo "dynalite=unavailable"
fi
echo "get_vs_bare_mhd=$(ratio "$TGET" "$BARE")"
