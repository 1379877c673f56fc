#!/bin/sh
# Installs The Markup's Blacklight collector (npm) for `sightline-bench scan --crawl N
# --blacklight`. Puppeteer's own Chromium download is skipped: the collector runs Debian's
# chromium (scripts/install-chromium.sh), and nothing is fetched while it scans.
set -eu
cd "$(dirname "$0")"
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund >&2
node -e "require('@themarkup/blacklight-collector')"
echo "blacklight-collector is ready for sightline-bench scan --crawl N --blacklight" >&2
