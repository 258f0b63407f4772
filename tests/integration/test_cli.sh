#!/usr/bin/env bash
# The CLI end to end: the README tour, bad input (one-line error, non-zero
# exit, data untouched), --help everywhere, wal dump/verify.
set -u
T="${TRB_BIN:?TRB_BIN must point at the tributary binary}"
TMP="${TRB_TEST_TMP:-/tmp}"
mkdir -p "$TMP"
D=$(mktemp -d "$TMP/cli-XXXXXX")
trap 'rm -rf "$D"' EXIT
fails=0; passes=0
ok()   { passes=$((passes+1)); }
bad()  { echo "FAIL: $*"; fails=$((fails+1)); }
t()    { "$T" --data-dir "$D/data" "$@"; }

# expect CODE CMD... : exit status equals CODE
expect() { local want=$1; shift; "$@" >"$D/out" 2>"$D/err"; local got=$?
  if [[ $got == "$want" ]]; then ok; else bad "exit $got (want $want): $(echo "$*" | cut -c1-200) :: $(head -c 300 "$D/err")"; fi; }
# out_is TEXT : stdout of the last expect equals TEXT
out_is() { if [[ "$(cat "$D/out")" == "$1" ]]; then ok; else bad "stdout '$(cat "$D/out")' != '$1'"; fi; }
err_has() { if grep -q -- "$1" "$D/err"; then ok; else bad "stderr lacks '$1': $(cat "$D/err")"; fi; }
one_line_err() { if [[ $(wc -l <"$D/err") -eq 1 ]]; then ok; else bad "error is not one line: $(cat "$D/err")"; fi; }

expect 0 t table create orders --partition-key customer:S --sort-key order:N
expect 0 t put orders '{"customer":{"S":"ann"},"order":{"N":"1"},"total":{"N":"19.90"}}'
expect 0 t put orders '{"customer":{"S":"ann"},"order":{"N":"2"},"total":{"N":"5"}}'
expect 0 t put orders '{"customer":{"S":"bob"},"order":{"N":"1"},"tags":{"SS":["gift"]}}'
expect 0 t get orders '{"customer":{"S":"ann"},"order":{"N":"1"}}'
out_is '{"customer":{"S":"ann"},"order":{"N":"1"},"total":{"N":"19.9"}}'
expect 0 t update orders '{"customer":{"S":"ann"},"order":{"N":"1"}}' --set 'status={"S":"shipped"}' --return UPDATED_NEW
out_is '{"status":{"S":"shipped"}}'
expect 0 t query orders --partition '{"S":"ann"}' --sort '>=' '{"N":"2"}'
out_is '{"customer":{"S":"ann"},"order":{"N":"2"},"total":{"N":"5"}}'
expect 0 t query orders --partition '{"S":"ann"}' --desc --limit 1
out_is '{"customer":{"S":"ann"},"order":{"N":"2"},"total":{"N":"5"}}'
err_has 'LastEvaluatedKey: {"customer":{"S":"ann"},"order":{"N":"2"}}'
expect 0 t query orders --partition '{"S":"ann"}' --desc --limit 1 --start-key '{"customer":{"S":"ann"},"order":{"N":"2"}}'
out_is '{"customer":{"S":"ann"},"order":{"N":"1"},"total":{"N":"19.9"},"status":{"S":"shipped"}}'
# two halves of a parallel scan hold every item once
t scan orders --segment 0 --total-segments 2 >"$D/s0"; t scan orders --segment 1 --total-segments 2 >"$D/s1"
if [[ $(cat "$D/s0" "$D/s1" | sort | uniq | wc -l) -eq 3 && $(cat "$D/s0" "$D/s1" | wc -l) -eq 3 ]]; then ok; else bad "scan segments"; fi
expect 1 t put orders '{"customer":{"S":"ann"},"order":{"N":"1"}}' --if-not-exists customer
err_has ConditionalCheckFailedException; one_line_err
expect 0 t delete orders '{"customer":{"S":"bob"},"order":{"N":"1"}}' --return ALL_OLD
out_is '{"customer":{"S":"bob"},"order":{"N":"1"},"tags":{"SS":["gift"]}}'
expect 0 t table describe orders
if grep -q '"ItemCount": 2' "$D/out"; then ok; else bad "describe ItemCount: $(cat "$D/out")"; fi
expect 0 t table list
out_is orders
# the global options also among a command's arguments (`tributary serve --config F`)
expect 0 "$T" table list --data-dir "$D/data"
out_is orders
expect 0 "$T" table list --data-dir="$D/data"
out_is orders
printf 'wal: {commit_delay_us: 300}\n' >"$D/good.yaml"
expect 0 "$T" config show --config "$D/good.yaml"
if grep -q '^  commit_delay_us: 300$' "$D/out"; then ok; else bad "config show --config after the command"; fi
expect 2 "$T" table list --data-dir
err_has '--data-dir needs a value'; one_line_err

# bad input: one-line error, exit 1 (or 2 for usage), data untouched
before=$(t wal dump | wc -l)
expect 1 t put orders '{"customer":{"S":"ann"}'                       ; one_line_err; err_has SerializationException
expect 1 t put orders '{"customer":{"N":"1"},"order":{"N":"1"}}'       ; err_has 'Type mismatch for key customer'
expect 1 t put orders '{"order":{"N":"1"}}'                            ; err_has 'Missing the key customer'
expect 1 t put orders '{"customer":{"S":"a"},"order":{"N":"1e999"}}'   ; err_has 'Number overflow'
expect 1 t put orders '{"customer":{"S":"a"},"order":{"N":"abc"}}'     ; err_has 'cannot be converted to a numeric value'
expect 1 t put orders '{"customer":{"S":"a"},"order":{"N":1}}'         ; one_line_err
expect 1 t put nosuch '{"customer":{"S":"a"}}'                         ; err_has ResourceNotFoundException
expect 1 t get orders '{"customer":{"S":"ann"}}'                       ; err_has 'does not match the schema'
{ printf '{"customer":{"S":"a"},"order":{"N":"1"},"x":{"S":"'; head -c 410000 /dev/zero | tr '\0' x; printf '"}}'; } >"$D/big.json"
expect 1 t put orders "file://$D/big.json"                             ; err_has 'Item size has exceeded'
expect 1 t put orders - <"$D/big.json"                                 ; err_has 'Item size has exceeded'
expect 1 t put orders file:///nonexistent/x.json                       ; err_has 'cannot read'
expect 1 t table create orders --partition-key id:S                    ; err_has ResourceInUseException
expect 2 t table create x1 --partition-key id:Q                        ; one_line_err
expect 2 t nosuchcommand
expect 2 t put orders
after=$(t wal dump | wc -l)
if [[ "$before" == "$after" ]]; then ok; else bad "rejected input reached the WAL ($before -> $after records)"; fi
# file:// and - work for good input too
printf '{"customer":{"S":"file"},"order":{"N":"7"}}' >"$D/ok.json"
expect 0 t put orders "file://$D/ok.json"
expect 0 t delete orders - <"$D/ok.json"

# an option a command does not take is named as such
for c in "get orders {}" "table list" "table describe orders" "wal verify" "config show"; do
  expect 2 "$T" --data-dir "$D/data" $c --bogus
  err_has 'unknown option --bogus'; one_line_err
done

# --help everywhere
for c in "" "table" "put" "get" "delete" "update" "query" "scan" "wal" "config" "config doc" "config show"; do
  expect 0 "$T" $c --help
  if grep -q usage "$D/out"; then ok; else bad "--help for '$c' prints no usage"; fi
done

# wal dump and verify
expect 0 t wal dump
if grep -q 'kind=TABLE_CREATE table=orders' "$D/out" && grep -q 'kind=MODIFY' "$D/out" && grep -q 'kind=REMOVE' "$D/out"; then ok; else bad "wal dump: $(cat "$D/out")"; fi
expect 0 t wal verify
grep -q '^ok: ' "$D/out" && ok || bad "wal verify: $(cat "$D/out")"
# corrupt a byte in the middle of the log: verify names the segment and offset and exits 1
seg=$(ls "$D"/data/wal/*.seg | head -1)
python3 - "$seg" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
# find the second record's payload: flip a byte ~200 bytes in past the header area
i = 300
b[i] ^= 0xFF
open(p, 'wb').write(bytes(b))
PY
expect 1 t wal verify
err_has 'WAL corrupt: segment wal-'
expect 1 t get orders '{"customer":{"S":"ann"},"order":{"N":"1"}}'
err_has 'offset'

# config errors name file and line
printf 'wal:\n  sync: sometimes\n' >"$D/bad.yaml"
expect 1 "$T" --config "$D/bad.yaml" table list
err_has 'bad.yaml:2: wal.sync'
expect 1 "$T" table list --config "$D/bad.yaml"
err_has 'bad.yaml:2: wal.sync'
printf 'streams:\n  tables: "orders:FOO"\n' >"$D/bad2.yaml"
expect 1 "$T" --config "$D/bad2.yaml" config show
err_has "bad2.yaml:2: streams.tables: 'FOO' is not a stream view type"; one_line_err
expect 0 "$T" config doc
if grep -q 'wal.segment_size' "$D/out"; then ok; else bad "config doc"; fi
if grep -A4 '^streams.tables$' "$D/out" | grep -q 'VIEW_TYPE one of'; then ok; else bad "config doc: streams.tables"; fi

echo "cli: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
