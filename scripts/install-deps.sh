#!/usr/bin/env bash
# Installs the Debian 12 packages tributary needs to build, run and test.
# Idempotent: does nothing when everything is already installed.
#   scripts/install-deps.sh          build + run
#   scripts/install-deps.sh --test   also what the test suite uses
set -euo pipefail

# cmocka is in the base list: the build configures the tests too.
pkgs=(build-essential cmake pkg-config
      librocksdb-dev libjansson-dev libyajl-dev libyaml-dev libssl-dev libxxhash-dev libcmocka-dev
      libmicrohttpd-dev libjemalloc-dev zlib1g-dev libcurl4-openssl-dev libavro-dev librdkafka-dev libpq-dev)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(python3 python3-boto3 python3-botocore awscli kcat python3-confluent-kafka python3-avro
        postgresql python3-psycopg2)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
