#!/usr/bin/env bash
# Runs one benchmark; each prints one JSON line with its figures and a same-run baseline.
#   bench/run.sh ingest [--postgres URL] [--seconds N] [--connections N]   (needs wrk: installs it)
#   bench/run.sh cluster --postgres URL [--nats URL] [--seconds N] [--connections N]   (needs wrk; NATS with JetStream)
#   bench/run.sh plans [--postgres URL] [--seconds N] [--connections N]    (needs wrk: installs it)
#   bench/run.sh sustained [--postgres URL] [--rate EVENTS_PER_S] [--seconds N]
#   bench/run.sh delivery [--postgres URL] [--requests N] [--batch N]
#   bench/run.sh vendors [--events N] [--warehouse URL]   (GA4, Meta, TikTok, LinkedIn and Google Ads fakes, and a PostgreSQL warehouse, against the plain webhook)
#   bench/run.sh profiles [--people N] [--events N] [--clients N] [--rate LOOKUPS_PER_S] [--mixed-seconds N] [--mixed-rate EVENTS_PER_S]
#   bench/run.sh console [--people N] [--events N] [--times N]
#   bench/run.sh erasure [--postgres URL] [--people N] [--events N]
#   bench/run.sh log-size [--postgres URL] [--events N] [--users N]
#   bench/run.sh audience-sync [--load EVENTS_PER_S] [--samples N]
#   bench/run.sh scan [--crawl PAGES [--blacklight]]   (needs Debian's chromium: scripts/install-chromium.sh;
#                                                       --blacklight also installs The Markup's Blacklight from npm)
#   bench/run.sh soak [--postgres URL] [--minutes N] [--rate EVENTS_PER_S]   (an hour by default; needs chromium)
#   bench/run.sh attribution | linkage-febrl | linkage-1m
set -euo pipefail
cd "$(dirname "$0")/.."
bench="${1:-}"
shift || true
case "$bench" in
  scan|soak)
    bash scripts/install-chromium.sh >&2
    case " $* " in *" --blacklight "*) sh bench/blacklight/install.sh ;; esac
    cargo build --release --locked -p sightline -p sightline-bench
    exec target/release/sightline-bench "$bench" "$@" ;;
  ingest|plans|cluster)
    command -v wrk >/dev/null || apt-get install -y wrk >&2
    cargo build --release --locked -p sightline -p sightline-bench
    exec target/release/sightline-bench "$bench" "$@" ;;
  sustained|delivery|profiles|console|audience-sync|log-size|vendors|erasure)
    cargo build --release --locked -p sightline -p sightline-bench
    exec target/release/sightline-bench "$bench" "$@" ;;
  attribution)
    bash crates/attribution/bench/install.sh >&2
    exec cargo run --release --locked -p sightline-attribution --example bench_paths ;;
  linkage-febrl)
    bash crates/linkage/bench/install.sh >&2
    exec cargo run --release --locked -p sightline-linkage --example bench_febrl ;;
  linkage-1m)
    exec cargo run --release --locked -p sightline-linkage --example bench_dedupe_1m ;;
  *)
    echo "usage: bench/run.sh ingest|plans|cluster|sustained|delivery|vendors|profiles|console|audience-sync|log-size|erasure|scan|attribution|linkage-febrl|linkage-1m [args]" >&2
    exit 2 ;;
esac
