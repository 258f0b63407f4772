#!/usr/bin/env bash
# bench_http.sh -- PutItem and GetItem over HTTP: tributary (durable, WAL
# sync=always) vs dynalite (the npm DynamoDB emulator, in memory) vs a bare
# libmicrohttpd server (the HTTP layer's ceiling) vs the same bare server
# made durable (the durable write's ceiling: each PutItem body appended to
# a file and fdatasync'ed, one sync per group of waiting requests, before
# its answer; no JSON, no store), all under the same wrk load on loopback:
# 32 connections, 2 threads. One `name=value` line per
# figure on stdout; progress and diagnostics on stderr.
#
#   bash bench/bench_http.sh [SECONDS]      (run after scripts/build.sh release)
#
# Needs wrk (apt-get install wrk), curl, python3, and Node.js >= 20 for
# dynalite. dynalite is installed with npm, pinned, into $TRB_BENCH_CACHE
# (default /opt/trb-bench, outside the repository) the first time it is
# missing; nothing is installed inside the repository.
#
# Environment:
#   TRB_BENCH_BUILD       directory holding tributary and bench_mhd_bare
#                         (default ./build)
#   TRB_BENCH_CACHE       where dynalite is installed (default /opt/trb-bench)
#   TRB_BENCH_SERVE_ARGS  extra arguments for `tributary serve`, e.g.
#                         "--threads 32" (default: none, the server's default)
#   TRB_BENCH_ROUNDS      rounds (default 3; see below)
#   TRB_BENCH_DATA        parent directory of tributary's data directory
#                         (default /tmp; must be a real disk, not tmpfs, for
#                         the durable figures to mean anything)
#
# Rounds: the four servers run side by side (idle while another is
# loaded), and each round loads them in turn, SECONDS each: bare, bare
# durable (PutItem), tributary PutItem and GetItem, dynalite PutItem and
# GetItem. tributary_put_vs_bare_durable is how close PutItem comes to the
# durable ceiling, bare_durable_put_vs_dynalite how far above dynalite
# that ceiling is on this machine. The host's speed
# drifts by tens of percent from one minute to the next here, so a ratio is
# taken within a round (loads a few seconds apart), and the figures without
# a prefix are the medians over the rounds (counts of bad answers: the
# sums); round K's own lines carry the prefix rK_, and *_vs_*_runs lists
# each round's ratio. PutItem keys are new in every round (inserts, never
# replacements).
# After the rounds, bench_put --ceiling-only prints the disk's own
# fdatasync rate and p50/p99 on the data directory's disk
# (ceiling_fdatasync_*): the floor under PutItem's latency.
# Every response is checked: *_non200 counts responses whose status is not
# 200 (GetItem's in Lua, with its body; PutItem's and the bare server's by
# wrk itself, which counts statuses above 399), *_sock_errors counts connect/read/write errors and timeouts, and
# *_get_missing counts GetItem answers with a 200 but no Item (the keys read
# all exist). All of them should be 0; the script exits 1 if one is not.
# Other work on the two cores makes every figure lower and noisier:
# cpu_idle_before_pct is how idle the machine was just before the run, and
# for each load *_other_cpu_pct is the share of all CPUs that processes
# other than the server and wrk took during it (should be near 0);
# *_server_cpu_us_per_req and *_wrk_cpu_us_per_req are the CPU time the
# server (all its threads, user+system) and wrk spent per request, which
# move much less with such noise than the rates do. (Kernel threads doing
# the server's disk writeback count as other, a few percent for PutItem.)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${TRB_BENCH_ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench_http: TRB_BENCH_ROUNDS must be a positive number" >&2; exit 2; }
B=${TRB_BENCH_BUILD:-./build}
CACHE=${TRB_BENCH_CACHE:-/opt/trb-bench}
DYNALITE_VERSION=4.0.0 # needs Node >= 20
SERVE_ARGS=${TRB_BENCH_SERVE_ARGS:-}
P_BARE=18001 P_TRB=18002 P_DYN=18003 P_DUR=18004

say() { echo "bench_http: $*" >&2; }
die() { say "$*"; exit 1; }
for t in wrk curl python3; do
  command -v "$t" >/dev/null || die "$t missing (wrk: apt-get install wrk)"
done
[[ -x $B/tributary && -x $B/bench_mhd_bare ]] || die "build first: bash scripts/build.sh release"
for p in $P_BARE $P_TRB $P_DYN $P_DUR; do
  ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/" || die "port $p is already in use"
done

W=$(mktemp -d /tmp/trb-bench-http-XXXXXX)
D=$(mktemp -d "${TRB_BENCH_DATA:-/tmp}/trb-bench-http-data-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W" "$D"
}
trap cleanup EXIT
stop() { # stop PID: SIGTERM, wait for it to exit
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local p keep=()
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# ---- wrk scripts ----
# Both carry SigV4-shaped headers (dynalite refuses a request without an
# Authorization header; neither server here verifies the signature).
# Items are about 200 bytes of DynamoDB item size, as in bench_put: id S
# (14 bytes), n N, pad S (170 bytes). Keys are unique across both wrk
# threads: setup() hands each thread its own number through a global
# (thread:set sets a global, so request() must read a global, not a local).
cat >"$W/common.lua" <<'LUA'
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
local hdr = {
  ["Authorization"] = "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000",
  ["X-Amz-Date"] = "20260101T000000Z",
  ["Content-Type"] = "application/x-amz-json-1.0",
}
function dynamo(op, body)
  hdr["X-Amz-Target"] = "DynamoDB_20120810." .. op
  return wrk.format("POST", "/", hdr, body)
end
non200 = 0
missing = 0
first_bad = ""
function check(status, body, want_item)
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad == "" then first_bad = status .. " " .. string.sub(body or "", 1, 300) end
  elseif want_item and not string.find(body, '"Item"', 1, true) then
    missing = missing + 1
    if first_bad == "" then first_bad = "200 without Item: " .. string.sub(body or "", 1, 300) end
  end
end
function done(summary, latency, requests)
  local bad, miss, first = 0, 0, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    miss = miss + t:get("missing")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  -- wrk itself counts answers with a status above 399 (errors.status); a
  -- script without response() (PutItem, bare) relies on that count alone
  if bad < e.status then bad = e.status end
  io.write(string.format("RESULT %.0f %.0f %.0f %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, bad, miss, e.connect + e.read + e.write + e.timeout))
  if first ~= "" then io.write("FIRST_BAD " .. first .. "\n") end
end
LUA
{ cat "$W/common.lua"; cat <<'LUA'
-- each round's keys are new: round K numbers its items from K x 10^9
local n = tonumber(os.getenv("TRB_BENCH_ROUND") or "1") * 1000000000
local pad = string.rep("x", 170)
request = function()
  n = n + 1
  return dynamo("PutItem", string.format(
    '{"TableName":"bench","Item":{"id":{"S":"t%d-%011d"},"n":{"N":"%d"},"pad":{"S":"%s"}}}',
    tid, n, n, pad))
end
-- no response(): wrk counts failed statuses itself (see done()), and a Lua
-- call per answer would cost wrk, on the same two cores, 5-8 us a request
LUA
} >"$W/put.lua"
{ cat "$W/common.lua"; cat <<'LUA'
local n = 0
request = function()
  n = n + 1
  return dynamo("GetItem", string.format('{"TableName":"bench","Key":{"id":{"S":"seed-%d"}}}',
    (n * 7 + tid) % 1000))
end
response = function(status, headers, body) check(status, body, true) end
LUA
} >"$W/get.lua"
# The bare server answers {} to everything: the same requests, and like
# PutItem only the status checked, by wrk itself.
grep -v '^response = ' "$W/get.lua" >"$W/bare.lua"

# ---- helpers ----
AUTH='Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000'
call() { # call PORT TARGET BODY -> "STATUS BODY"
  curl -s -w ' %{http_code}' -X POST "http://127.0.0.1:$1/" -H 'Content-Type: application/x-amz-json-1.0' \
    -H "X-Amz-Target: DynamoDB_20120810.$2" -H 'X-Amz-Date: 20260101T000000Z' -H "$AUTH" -d "$3"
}
must() { # must PORT TARGET BODY: fail unless the answer is a 200
  local r; r=$(call "$@")
  [[ ${r##* } == 200 ]] || die "$2 on port $1 answered ${r##* }: ${r% *}"
}
wait_port() { # wait_port PORT PID
  for _ in $(seq 400); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
prepare() { # prepare PORT: table bench (ACTIVE) + 1000 seed items seed-0..seed-999
  must "$1" CreateTable '{"TableName":"bench","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}'
  for _ in $(seq 100); do
    [[ $(call "$1" DescribeTable '{"TableName":"bench"}') == *'"TableStatus":"ACTIVE"'* ]] && break
    sleep 0.1
  done
  local pad; pad=$(printf 'x%.0s' {1..170})
  # one python3 process, 1000 requests on one keep-alive connection
  python3 - "$1" "$pad" <<'PY'
import http.client, json, sys
port, pad = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
h = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.PutItem",
     "X-Amz-Date": "20260101T000000Z",
     "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000"}
for i in range(1000):
    body = json.dumps({"TableName": "bench", "Item": {"id": {"S": "seed-%d" % i}, "n": {"N": str(i)}, "pad": {"S": pad}}})
    c.request("POST", "/", body, h)
    r = c.getresponse(); data = r.read()
    if r.status != 200:
        sys.exit("seed PutItem %d answered %d: %s" % (i, r.status, data[:300]))
PY
  [[ $(call "$1" GetItem '{"TableName":"bench","Key":{"id":{"S":"seed-999"}}}') == *'"Item"'*' 200' ]] ||
    die "port $1: seed item seed-999 cannot be read back"
}
cpu_snap() { # cpu_snap PID -> "PROC_TICKS BUSY_TICKS ALL_TICKS" (the process, all CPUs)
  local st c
  st=$(<"/proc/$1/stat"); st=${st##*) }
  read -r -a c < <(grep '^cpu ' /proc/stat)
  set -- $st
  echo "$(( ${12} + ${13} )) $(( c[1] + c[2] + c[3] + c[6] + c[7] + c[8] )) $(( c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7] + c[8] ))"
}
load() { # load PORT SCRIPT NAME SERVER_PID: runs wrk, prints the figures, sets RATE
  local out s0 s1
  s0=$(cpu_snap "$4")
  # `times` after wrk: its second line is the CPU time of the subshell's
  # children, i.e. wrk's
  out=$(wrk -t2 -c32 -d"${SECS}s" -s "$W/$2" "http://127.0.0.1:$1/" && times) || die "wrk failed: $out"
  s1=$(cpu_snap "$4")
  local r; r=$(sed -n 's/^RESULT //p' <<<"$out")
  [[ -n $r ]] || die "no RESULT from wrk: $out"
  local wrk_cpu; wrk_cpu=$(tail -1 <<<"$out")
  # server CPU per request, wrk CPU per request, and the share of all CPUs
  # that everything else on the machine took during the run
  local cpu; cpu=$(python3 - "$s0" "$s1" "$wrk_cpu" "$(getconf CLK_TCK)" "$(sed -n 's/^RESULT //p' <<<"$out" | cut -d' ' -f4)" <<'PY'
import re, sys
a = [int(x) for x in sys.argv[1].split()]; b = [int(x) for x in sys.argv[2].split()]
hz, reqs = float(sys.argv[4]), max(int(sys.argv[5]), 1)
wrk = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", sys.argv[3]))
srv = (b[0] - a[0]) / hz
busy, total = (b[1] - a[1]) / hz, (b[2] - a[2]) / hz
other = max(busy - srv - wrk, 0.0) / total * 100 if total else 0
print("%.1f %.1f %.0f" % (srv * 1e6 / reqs, wrk * 1e6 / reqs, other))
PY
)
  set -- "$3" $r $cpu
  {
    echo "$1_req_per_s=$2"
    echo "$1_p50_us=$3"
    echo "$1_p99_us=$4"
    echo "$1_requests=$5"
    echo "$1_non200=$6"
    [[ $1 == *_get ]] && echo "${1%_get}_get_missing=$7"
    echo "$1_sock_errors=$8"
    echo "$1_server_cpu_us_per_req=$9"
    echo "$1_wrk_cpu_us_per_req=${10}"
    echo "$1_other_cpu_pct=${11}"
  } | tee -a "$W/figs"
  if (( $6 + $7 + $8 )); then
    say "$1: $6 non-200, $7 GetItem without Item, $8 socket errors; first: $(sed -n 's/^FIRST_BAD //p' <<<"$out")"
    BAD=1
  fi
  (( ${11} < 10 )) || say "warning: $1: other processes took ${11}% of the CPUs during the run"
  RATE=$2
}
BAD=0
idle_pct() { # CPU idle over the next second, in percent (all CPUs)
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat); sleep 1; read -r -a b < <(grep '^cpu ' /proc/stat)
  local tot=0 i
  for i in 1 2 3 4 5 6 7 8; do tot=$(( tot + b[i] - a[i] )); done
  echo $(( tot ? 100 * (b[4] - a[4]) / tot : 0 ))
}
# Everything here shares the machine's cores with whatever else runs: say
# how idle it was, as a figure, so a disturbed run can be told apart.
IDLE=$(idle_pct)
echo "cpu_idle_before_pct=$IDLE"
(( IDLE >= 90 )) || say "warning: the machine is busy ($IDLE% idle) -- figures will be low and noisy"

# ---- the three servers, side by side ----
say "bare libmicrohttpd on :$P_BARE"
$B/bench_mhd_bare $P_BARE 2 & BPID=$!; PIDS+=($BPID)
wait_port $P_BARE $BPID || die "bench_mhd_bare did not start"
say "bare libmicrohttpd, durable (each body fdatasync'ed before its answer), on :$P_DUR"
mkdir -p "$D/dur"
$B/bench_mhd_bare $P_DUR 2 --durable "$D/dur/bodies" & UPID=$!; PIDS+=($UPID)
wait_port $P_DUR $UPID || die "bench_mhd_bare --durable did not start"

say "tributary serve on :$P_TRB (data in $D, serve args: ${SERVE_ARGS:-none})"
# shellcheck disable=SC2086
$B/tributary --data-dir "$D/trb" serve --listen 127.0.0.1:$P_TRB $SERVE_ARGS 2>"$W/trb.log" & TPID=$!
PIDS+=($TPID)
wait_port $P_TRB $TPID || die "tributary did not start: $(cat "$W/trb.log")"
prepare $P_TRB

DYNJS=$CACHE/node_modules/dynalite/cli.js
DYN=""
if ! command -v node >/dev/null; then
  say "node missing: apt-get install nodejs npm"
elif (( $(node -p 'process.versions.node.split(".")[0]') < 20 )); then
  say "dynalite $DYNALITE_VERSION needs Node >= 20, found $(node --version)"
else
  if [[ ! -f $DYNJS ]] || [[ $(node -p "require('$CACHE/node_modules/dynalite/package.json').version") != "$DYNALITE_VERSION" ]]; then
    say "installing dynalite@$DYNALITE_VERSION into $CACHE with npm"
    mkdir -p "$CACHE"
    (cd "$CACHE" && npm install --no-audit --no-fund --no-save --loglevel=error "dynalite@$DYNALITE_VERSION" >&2) ||
      say "npm install dynalite failed"
  fi
  [[ -f $DYNJS ]] && DYN=1
fi
if [[ -n $DYN ]]; then
  say "dynalite $DYNALITE_VERSION on :$P_DYN"
  node "$DYNJS" --host 127.0.0.1 --port $P_DYN --createTableMs 0 >"$W/dyn.log" 2>&1 & DPID=$!
  PIDS+=($DPID)
  wait_port $P_DYN $DPID || die "dynalite did not start: $(cat "$W/dyn.log")"
  prepare $P_DYN
fi

# ---- the rounds ----
for r in $(seq "$ROUNDS"); do
  say "round $r of $ROUNDS"
  export TRB_BENCH_ROUND=$r
  load $P_BARE bare.lua "r${r}_bare_mhd" $BPID
  load $P_DUR put.lua "r${r}_bare_durable_put" $UPID
  load $P_TRB put.lua "r${r}_tributary_put" $TPID
  load $P_TRB get.lua "r${r}_tributary_get" $TPID
  if [[ -n $DYN ]]; then
    load $P_DYN put.lua "r${r}_dynalite_put" $DPID
    load $P_DYN get.lua "r${r}_dynalite_get" $DPID
  fi
done
stop $BPID
stop $UPID
stop $TPID
[[ -n $DYN ]] && stop $DPID
if grep -q -i -E 'warn|error' "$W/trb.log"; then say "tributary log:"; grep -i -E 'warn|error' "$W/trb.log" | head -20 >&2; fi

# The medians (sums for the counts of bad answers) under the names without
# a prefix, and the ratios, each round's own and their median.
python3 - "$W/figs" "$ROUNDS" <<'PY'
import re, statistics, sys
figs, rounds = {}, int(sys.argv[2])
for line in open(sys.argv[1]):
    m = re.match(r"r(\d+)_(\w+)=(.*)", line.strip())
    if m:
        figs.setdefault(m.group(2), {})[int(m.group(1))] = float(m.group(3))
def fmt(v):
    return ("%d" % v) if v == int(v) else ("%.1f" % v)
for name, per in figs.items():
    vals = [per[r] for r in sorted(per)]
    bad = name.endswith(("_non200", "_sock_errors", "_get_missing"))
    print("%s=%s" % (name, fmt(sum(vals) if bad else statistics.median(vals))))
def ratio(name, a, b):
    ra, rb = figs.get(a + "_req_per_s", {}), figs.get(b + "_req_per_s", {})
    rs = [ra[r] / rb[r] for r in sorted(ra) if rb.get(r)]
    if rs:
        print("%s=%.2f" % (name, statistics.median(rs)))
        print("%s_runs=%s" % (name, ",".join("%.2f" % x for x in rs)))
ratio("tributary_put_vs_dynalite", "tributary_put", "dynalite_put")
ratio("tributary_get_vs_dynalite", "tributary_get", "dynalite_get")
ratio("tributary_get_vs_bare", "tributary_get", "bare_mhd")
ratio("tributary_put_vs_bare_durable", "tributary_put", "bare_durable_put")
ratio("bare_durable_put_vs_dynalite", "bare_durable_put", "dynalite_put")
PY
[[ -n $DYN ]] || echo "dynalite=unavailable"

# The disk's own fdatasync rate and latency, on the data directory's disk,
# after the servers stopped (so their writes do not disturb it): every
# PutItem waits for at least one, so the PutItem p99 cannot be much below
# ceiling_fdatasync_p99_us (a disk whose syncs stall shows it here).
if [[ -x $B/bench_put ]]; then
  mkdir -p "$D/fsync"
  $B/bench_put --ceiling-only --seconds 3 --dir "$D/fsync" || say "bench_put --ceiling-only failed"
fi
if (( BAD )); then say "some requests did not get a 200 (see above)"; exit 1; fi
