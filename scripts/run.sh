#!/usr/bin/env bash
# The README's run command: installs, builds, and runs the main job.
# Until the HTTP server lands this is a short CLI session against a fresh
# data directory: create a table, write, read, query, and dump the WAL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
T=./build/tributary
DATA="${TRIBUTARY_DATA_DIR:-$(mktemp -d /tmp/tributary-demo-XXXXXX)}"
set -x
$T --data-dir "$DATA" table create orders --partition-key customer:S --sort-key order:N
$T --data-dir "$DATA" put orders '{"customer":{"S":"ann"},"order":{"N":"1"},"total":{"N":"19.90"}}'
$T --data-dir "$DATA" put orders '{"customer":{"S":"ann"},"order":{"N":"2"},"total":{"N":"5"},"tags":{"SS":["gift","express"]}}'
$T --data-dir "$DATA" update orders '{"customer":{"S":"ann"},"order":{"N":"1"}}' --set 'status={"S":"shipped"}' --return ALL_NEW
$T --data-dir "$DATA" get orders '{"customer":{"S":"ann"},"order":{"N":"2"}}'
$T --data-dir "$DATA" query orders --partition '{"S":"ann"}' --desc
$T --data-dir "$DATA" wal dump
$T --data-dir "$DATA" wal verify
