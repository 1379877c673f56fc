#!/bin/sh
# Installs what `cargo run --release --example bench_paths` needs beside Rust:
# ChannelAttribution (builds its C++ core, needs g++) and the libraries it imports.
set -eu
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install "ChannelAttribution==2.2.5" pandas matplotlib
"$PYTHON" -c "import ChannelAttribution" >/dev/null
echo "ChannelAttribution is ready for examples/bench_paths.rs"
