#!/usr/bin/env bash
# The demo, on the embedded default (SQLite under ./data): builds prefsync,
# the Dotdigital connector and a mock Dotdigital; starts `prefsync serve` and
# the mock on loopback; creates a Dotdigital integration in Didomi's integration
# format; sends sample Didomi events (a plain event, a webhook envelope, and
# NDJSON with one late, older event); runs an activation of a CSV user model
# twice (the second sends only what changed); and shows what reached the mock.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
echo "==> building prefsync, the Dotdigital connector (wasm32-wasip2) and the mock"
# Components need no debug info; it would multiply their size.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --quiet --release --target wasm32-wasip2 -p prefsync-dotdigital
# The mock from its own crate: prefsync-tests' build script would build every
# test guest and run npm, none of which the demo uses.
cargo build --quiet --release -p prefsync --bin prefsync -p prefsync-mocks --bin prefsync-mocks

# Where cargo put them: CARGO_TARGET_DIR when set, ./target otherwise.
target_dir=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_for_line() { # file pattern
    for _ in $(seq 300); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    exit 1
}

# Both stop by themselves after 5 minutes at the latest.
"$target_dir"/release/prefsync-mocks dotdigital --seconds 300 >"$work/mock.log" 2>&1 &
pids+=($!)
wait_for_line "$work/mock.log" "listening on"
mock_url=$(sed -n 's/.*listening on //p' "$work/mock.log")

# The embedded default (SQLite), in a data directory of the demo's own that
# starts empty each time, plus what a local demo needs: a free port, and
# connectors allowed to reach the loopback mock over plain http, and the
# directory CSV models may be read from.
rm -rf data/demo
cat >"$work/prefsync.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[storage]
data_dir = "data/demo"
[activations]
source_dir = "$work"
[connectors]
dir = "$target_dir/wasm32-wasip2/release"
[egress]
allow_loopback = true
allow_http = true
TOML
PREFSYNC_LOG=${PREFSYNC_LOG:-warn} timeout 300 "$target_dir"/release/prefsync serve --config "$work/prefsync.toml" >"$work/serve.log" 2>&1 &
pids+=($!)
wait_for_line "$work/serve.log" "prefsync listening on"
api=$(sed -n 's/^prefsync listening on //p' "$work/serve.log")
token=$(cat data/demo/admin-token)
echo "==> prefsync at $api (SQLite and admin token in ./data/demo); mock Dotdigital at $mock_url"

call() { # method path [file] [content-type]
    local args=(-sS -X "$1" -H "Authorization: Bearer $token" "$api$2")
    if [ $# -ge 3 ]; then args+=(-H "Content-Type: ${4:-application/json}" --data-binary "@$3"); fi
    curl "${args[@]}"
    echo
}

sed "s#http://127.0.0.1:18081#$mock_url#; s#\"type_id\"#\"id\": \"demo-dotdigital\", \"type_id\"#" \
    examples/dotdigital/integration.json >"$work/integration.json"
echo; echo "==> PUT the Dotdigital integration (Didomi's integration format; the password never comes back)"
if curl -sf -o /dev/null -H "Authorization: Bearer $token" "$api/v1/integrations/demo-dotdigital"; then
    call PUT /v1/integrations/demo-dotdigital "$work/integration.json"
else
    call POST /v1/integrations "$work/integration.json"
fi

echo; echo "==> POST Didomi events: an event, a webhook envelope, then NDJSON with a late older event"
call POST /v1/events examples/events/ann-subscribes.json
call POST /v1/events examples/events/bob-webhook.json
sleep 1
call POST /v1/events examples/events/later.ndjson application/x-ndjson

echo; echo "==> waiting for the deliveries"
for _ in $(seq 100); do
    pending=$(call GET "/v1/deliveries?status=pending"; call GET "/v1/deliveries?status=in_flight")
    [ "$pending" = $'[]\n[]' ] && break
    sleep 0.1
done

echo; echo "==> ann's delivery history (audit)"
call GET /v1/users/ann@example.com/history >"$work/history.json"
python3 - "$work/history.json" <<'PY'
import json, sys
history = json.load(open(sys.argv[1]))
for e in reversed(history["events"]):
    print(f"  event   {e['event_id']:<14} {e['status']}")
for a in history["attempts"]:
    print(f"  attempt state v{a['state_version']} {a['outcome']:<18} http {a['http_statuses']}"
          f" by {a['connector_type']} {a['connector_version']} in {a['duration_ms']} ms")
PY
echo; echo "==> an activation: a CSV user model synced into Dotdigital (reverse ETL)"
cp examples/activation/users.csv "$work/users.csv"
# Its "path" is relative to [activations] source_dir.
call POST /v1/activations examples/activation/dotdigital-users.json >/dev/null
run_activation() {
    call POST /v1/activations/demo-users/run >/dev/null
    for _ in $(seq 100); do
        call GET /v1/activations/demo-users/runs | grep -q '"status":"running"' || break
        sleep 0.1
    done
}
run_activation
echo "  (run 1: Cid is new to Dotdigital, Ann and Bob exist from the events above; then Cid is renamed and Dee added)"
sed -i 's/^cid@example.com,Cid,/cid@example.com,Cyd,/' "$work/users.csv"
echo "dee@example.com,Dee,silver" >>"$work/users.csv"
run_activation
call GET /v1/activations/demo-users/runs >"$work/runs.json"
python3 - "$work/runs.json" <<'PY'
import json, sys
for run in reversed(json.load(open(sys.argv[1]))):
    s = run["summary"]
    print(f"  run {run['id']} {run['status']:<9} read {s['rows_read']}, inserted {s['inserted']},"
          f" updated {s['updated']}, unchanged {s['unchanged']}, failed {s['failed']}")
PY

echo; echo "==> the mock Dotdigital now holds"
kill -INT "${pids[0]}"
wait "${pids[0]}" || true
grep -v "listening on" "$work/mock.log"
