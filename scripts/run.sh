#!/usr/bin/env bash
# The demo, on the embedded defaults: builds the Dotdigital connector and
# prefsync, starts a mock Dotdigital on loopback, shows what the connector
# declares, and delivers sample consent records through the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
echo "==> building the Dotdigital connector (wasm32-wasip2) and prefsync"
# Components need no debug info; it would multiply their size.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --quiet --release --target wasm32-wasip2 -p prefsync-dotdigital
cargo build --quiet --release -p prefsync --bin prefsync -p prefsync-tests --bin prefsync-mocks

wasm=target/wasm32-wasip2/release/prefsync_dotdigital.wasm
work=$(mktemp -d)
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The mock stops by itself after 120 s at the latest.
target/release/prefsync-mocks dotdigital --seconds 120 >"$work/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 50); do
    grep -q "listening on" "$work/mock.log" 2>/dev/null && break
    sleep 0.1
done
mock_url=$(sed -n 's/.*listening on //p' "$work/mock.log")
echo "==> mock Dotdigital at $mock_url"
sed "s#http://127.0.0.1:18081#$mock_url#" examples/dotdigital/integration.json >"$work/integration.json"

echo; echo "==> prefsync plugin inspect $wasm"
target/release/prefsync plugin inspect "$wasm" | sed -n '1,9p'

echo; echo "==> delivering sample records (loopback and http allowed for the mock only)"
target/release/prefsync plugin test "$wasm" --config "$work/integration.json" \
    --allow-loopback --allow-http \
    --record examples/dotdigital/ann.json \
    --record examples/dotdigital/ann-unsubscribes.json \
    --record examples/dotdigital/bob-no-choice.json

echo; echo "==> the mock now holds these contacts"
kill -INT "$mock_pid"
wait "$mock_pid" || true
grep -v "listening on" "$work/mock.log"
