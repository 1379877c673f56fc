#!/usr/bin/env bash
# API fuzzing against a running server on SQLite: schemathesis generates requests from the
# served OpenAPI document (/api/v1/openapi.json) for every route, with the admin token, with
# each lesser role's token, and (for /v1/*) with a source's write key. It fails on any 5xx,
# on an answer whose status, content type or body the document does not describe, and when
# the server is no longer up at the end. Bounded to a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -r .ci/requirements-schemathesis.txt 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
cargo build --locked -p sightline
bin=${CARGO_TARGET_DIR:-target}/debug/sightline

data=$(mktemp -d)
port=${SCHEMATHESIS_PORT:-18931}
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
write_key=$("$bin" source add web --data "$data" --json | field write_key)
"$bin" serve --data "$data" --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 60); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 1
done

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
  # The journey import takes a TOML body, which schemathesis cannot generate.
  st run "$base/api/v1/openapi.json" --checks "$checks" --phases examples,coverage,fuzzing \
    --exclude-path /api/v1/journeys/import --max-failures 20 --no-color "$@"
}

echo "schemathesis: the admin API as admin"
admin=$("$bin" token create --role admin --data "$data" --json | field token)
run -H "Authorization: Bearer $admin" --exclude-path-regex '^/v1/' --max-examples 30
for role in marketing security analyst privacy metrics; do
  echo "schemathesis: the admin API as $role"
  token=$("$bin" token create --role "$role" --data "$data" --json | field token)
  run -H "Authorization: Bearer $token" --exclude-path-regex '^/v1/' --max-examples 5
done
echo "schemathesis: the tracking API with a write key"
run --auth "$write_key:" --include-path-regex '^/v1/' --max-examples 30

curl -sf "$base/healthz" >/dev/null || {
  echo "schemathesis: the server is down after the run" >&2
  cat "$data/serve.log" >&2
  exit 1
}

# Nothing accepted is lost: every event the collector counted as accepted is in the log.
accepted=$(curl -sf -H "Authorization: Bearer $admin" "$base/metrics" | python3 -c '
import sys
print(int(sum(float(line.rsplit(" ", 1)[1]) for line in sys.stdin
              if line.startswith("sightline_events_accepted_total"))))')
logged=$(python3 - "$base" "$admin" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1:]
after, count = 0, 0
while True:
    request = urllib.request.Request(f"{base}/api/v1/events?after={after}&limit=1000",
                                     headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(request))
    if not page["events"]:
        break
    count += sum(1 for e in page["events"] if e.get("type") in
                 ("track", "identify", "page", "screen", "group", "alias"))
    after = page["next_after"]
print(count)
PY
)
if [ "$logged" -lt "$accepted" ]; then
  echo "schemathesis: $accepted events accepted but $logged in the log" >&2
  exit 1
fi
echo "schemathesis: no failures, the server is up, all $accepted accepted events are in the log"
