#!/usr/bin/env bash
# The README's run command: installs, builds, and runs the main job: the
# DynamoDB-compatible server with the embedded engine, on 127.0.0.1:8000
# (override with TRIBUTARY_LISTEN), data in ./tributary-data (override with
# TRIBUTARY_DATA_DIR), and its default sinks: the audit file sink in
# ./tributary-audit and the Kafka sink into an embedded Kafka (librdkafka's
# mock cluster, address in the log) (config/default.yaml; another file with
# TRIBUTARY_CONFIG). Ctrl-C or SIGTERM stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
exec ./build/tributary --config "${TRIBUTARY_CONFIG:-config/default.yaml}" \
  --data-dir "${TRIBUTARY_DATA_DIR:-./tributary-data}" \
  serve --listen "${TRIBUTARY_LISTEN:-127.0.0.1:8000}"
