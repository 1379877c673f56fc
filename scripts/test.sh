#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then runs every test on
# both storage backends (PostgreSQL at SIGHTLINE_TEST_DATABASE_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SIGHTLINE_TEST_DATABASE_URL="${SIGHTLINE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo test --workspace --locked "$@"
