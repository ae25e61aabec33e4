#!/usr/bin/env bash
# The test suite: installs the wasm target the guest components need, then
# runs every test of the workspace (tests/build.rs builds the guests from
# source) and ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
