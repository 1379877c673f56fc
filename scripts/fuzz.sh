#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of outside input (fuzz/, cargo fuzz + libFuzzer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Installs cargo-fuzz when it is missing, builds the targets once (nightly, release with
# debug assertions and overflow checks, no sanitizer: see below), then runs each target
# for SECONDS_PER_TARGET (default 60) on its corpus in fuzz/corpus/TARGET. New inputs the
# fuzzer finds go to a scratch directory (fuzz/scratch/TARGET), not into the repo, unless
# FUZZ_KEEP=1 (then into fuzz/corpus/TARGET: minimise with `cargo +nightly fuzz cmin`
# before committing). Every target is run; the script fails at the end if any crashed,
# timed out or ran out of memory, and prints the command that reproduces it. Without
# targets it runs them all (`cargo +nightly fuzz list`).
#
# Why no sanitizer (-s none): the targets run safe Rust, where out-of-bounds reads and
# overflows already panic (debug assertions are on) and a panic is a crash to libFuzzer;
# AddressSanitizer would find nothing more there, and costs a slower build of every
# dependency and about half the executions per second.
#
# Environment: FUZZ_KEEP=1 (keep new corpus entries), FUZZ_JOBS (cargo build jobs),
# FUZZ_TIMEOUT (seconds one input may take before it counts as a hang; default 10),
# FUZZ_RSS_MB (memory limit; default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzz="$root/fuzz"

seconds=${1:-60}
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

# The version this script was written against; newer ones work too.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
if ! rustc +nightly --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi

cd "$fuzz"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# fuzz/Cargo.lock is kept in the repo: refuse to build from anything else (cargo fuzz has
# no --locked of its own).
cargo +nightly metadata --locked --format-version 1 >/dev/null

# The same flags for the build and for every run (a run with other flags would rebuild).
flags=(-s none --target-dir "$fuzz/target")
jobs=()
if [[ -n "${FUZZ_JOBS:-}" ]]; then jobs=(--jobs "$FUZZ_JOBS"); fi
build_start=$SECONDS
if [[ $# -eq 0 ]]; then
    cargo +nightly fuzz build "${flags[@]}" "${jobs[@]}"
else
    for target in "${targets[@]}"; do
        cargo +nightly fuzz build "${flags[@]}" "${jobs[@]}" "$target"
    done
fi
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - build_start)) s"

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin="$fuzz/target/$host/release"
failed=()
for target in "${targets[@]}"; do
    corpus="$fuzz/corpus/$target"
    scratch="$fuzz/scratch/$target"
    artifacts="$fuzz/artifacts/$target"
    mkdir -p "$corpus" "$scratch" "$artifacts"
    # libFuzzer writes new inputs to the first directory and reads all of them.
    dirs=("$scratch" "$corpus")
    if [[ "${FUZZ_KEEP:-0}" == 1 ]]; then dirs=("$corpus"); fi
    log="$fuzz/scratch/$target.log"
    if "$bin/$target" "${dirs[@]}" \
        -max_total_time="$seconds" \
        -timeout="${FUZZ_TIMEOUT:-10}" \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -artifact_prefix="$artifacts/" \
        -print_final_stats=1 >"$log" 2>&1; then
        stats=$(grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" |
            sed 's/^stat:://; s/: */=/' | tr '\n' ' ')
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
        echo "fuzz: $target ok (${seconds} s, $cov, ${stats% })"
    else
        failed+=("$target")
        echo "fuzz: $target FAILED; from its log ($log):"
        # The panic and its message (not the backtrace), then libFuzzer's summary of what
        # failed (crash, timeout, out of memory) and the input.
        sed -n '/panicked at/,/^stack backtrace/p' "$log" | grep -v '^stack backtrace' | head -20
        grep -E '^(==[0-9]+== ERROR|SUMMARY|artifact_prefix|Base64)' "$log" | cut -c1-400
        artifact=$(ls -t "$artifacts"/* 2>/dev/null | head -1 || true)
        if [[ -n "$artifact" ]]; then
            echo "fuzz: reproduce with: (cd fuzz && cargo +nightly fuzz run -s none $target ${artifact#"$fuzz/"})"
            echo "fuzz: print the input with: (cd fuzz && cargo +nightly fuzz fmt -s none $target ${artifact#"$fuzz/"})"
        fi
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s each without a crash"
