#!/usr/bin/env bash
# Runs bench_pg (bench/bench_pg.c) against a throwaway PostgreSQL server:
#
#   bash scripts/build.sh release && bash bench/bench_pg.sh [bench_pg options]
#   BUILD=/tmp/build-bench bash bench/bench_pg.sh --records 50000
#
# BUILD is the build directory holding bench_pg (default: build, what
# `scripts/build.sh release` builds into). The server is the newest
# /usr/lib/postgresql/*/bin: initdb into a temporary directory, listening on
# 127.0.0.1 (a free port) and a Unix socket there, fsync and
# synchronous_commit on, shared_buffers 256MB; as root it runs as the
# postgres user. It is stopped and its directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bench="${BUILD:-build}/bench_pg"
[ -x "$bench" ] || { echo "bench_pg.sh: no $bench (build it first)" >&2; exit 2; }

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || { echo "bench_pg.sh: no PostgreSQL server" >&2; exit 2; }

tmp=$(mktemp -d /tmp/bench-pg.XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then
  as=(runuser -u postgres --)
  chown postgres: "$tmp"
  chmod 755 "$tmp"
fi
cleanup() {
  "${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
"${as[@]}" "$bin/initdb" -D "$tmp/data" -A trust -U postgres --no-sync -E UTF8 --locale=C \
  >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
cat >>"$tmp/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
fsync = on
synchronous_commit = on
shared_buffers = 256MB
EOF
"${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w -t 60 start >/dev/null ||
  { tail -n 40 "$tmp/pg.log" >&2; exit 1; }
echo "pg_bin=$bin"
"$bench" --conninfo "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$@"
