#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: the real Segment SDKs the
# end-to-end tests drive (from npm and PyPI), Debian's Chromium for the journey scanner,
# and a running local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "setup: Segment SDKs for the end-to-end tests"
(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
python3 -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
python3 -c "import segment.analytics" # fail here, clearly, if the install did not take

echo "setup: axe-core for the console's browser tests"
(cd tests/console && npm ci --no-audit --no-fund --loglevel=error)

echo "setup: Chromium for the journey scanner and the console's tests"
scripts/install-chromium.sh

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting the local PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
