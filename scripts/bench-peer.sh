#!/usr/bin/env bash
# The peer benchmark (tests/benches/peer.rs): the same events through
# prefsync serve, Segment's actions engine running its Dotdigital action, a
# plain keep-alive Node client, and wrk, against one loopback mock
# Dotdigital, interleaved round by round. Builds the release binary, installs
# the pinned npm packages (tests/benches/peer/package-lock.json, install
# scripts off) and wrk when missing, then prints the Markdown tables
# BENCHMARKS.md quotes. Loopback only: the Node sides run under a guard that
# refuses every other host before a socket exists.
#
#   ./scripts/bench-peer.sh
#   PREFSYNC_BENCH_ROUNDS=3 PREFSYNC_BENCH_USERS=2000 ./scripts/bench-peer.sh
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
command -v node >/dev/null || { echo "bench-peer: Node.js 20+ is needed (apt-get install nodejs npm)" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get install -y wrk >/dev/null
    else
        echo "bench-peer: wrk is needed: apt-get install wrk" >&2
        exit 1
    fi
fi
(cd tests/benches/peer && npm ci --no-audit --no-fund --loglevel=error)
cargo build --release -p prefsync --bin prefsync
PREFSYNC_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/prefsync" cargo bench -p prefsync-tests --bench peer
