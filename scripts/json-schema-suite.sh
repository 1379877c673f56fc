#!/usr/bin/env bash
# Fetches the official JSON Schema Test Suite (json-schema-org/JSON-Schema-Test-Suite),
# draft 2020-12 cases, into target/json-schema-suite for the tracking plans' conformance
# test (crates/plans/tests/json_schema_suite.rs). The suite comes inside the sdist of
# Python's jsonschema on PyPI, which vendors it; a pinned version keeps the cases fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.23.0
dest="${CARGO_TARGET_DIR:-target}/json-schema-suite"
[ -f "$dest/$version/draft2020-12/type.json" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  --dest "$work" "jsonschema==$version" 2>&1 | grep -v "Running pip as the 'root' user" || true
tar -xzf "$work/jsonschema-$version.tar.gz" -C "$work" "jsonschema-$version/json/tests/draft2020-12"
mkdir -p "$dest/$version"
rm -rf "$dest/$version/draft2020-12"
mv "$work/jsonschema-$version/json/tests/draft2020-12" "$dest/$version/"
echo "setup: JSON Schema Test Suite (draft 2020-12) in $dest/$version" >&2
