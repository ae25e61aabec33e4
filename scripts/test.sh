#!/usr/bin/env bash
# The test suite: installs the wasm target the guest components need,
# starts a throwaway PostgreSQL server (scripts/postgres.sh; unless
# PREFSYNC_TEST_POSTGRES already names one) for the PostgreSQL store's tests,
# runs every test of the workspace (tests/build.rs builds the guests from
# source), then the serve-level tests once more with every server on
# PostgreSQL, then every fuzz target for a short fixed count, stops the
# server, and ends with one summary line over all of it. The console's
# browser tests need headless Chromium and chromedriver: scripts/chromium.sh
# installs them from the distribution's packages when missing, and the run
# fails, saying why, when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
./scripts/chromium.sh
log=$(mktemp)
pg_dir=""
cleanup() {
  rm -f "$log"
  if [[ -n "$pg_dir" ]]; then ./scripts/postgres.sh stop "$pg_dir"; fi
}
trap cleanup EXIT
if [[ -z "${PREFSYNC_TEST_POSTGRES:-}" ]]; then
  pg_dir=$(mktemp -d /tmp/prefsync-pg.XXXXXX)
  PREFSYNC_TEST_POSTGRES=$(./scripts/postgres.sh start "$pg_dir")
  export PREFSYNC_TEST_POSTGRES
fi
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# The same serve-level tests again with every server on PostgreSQL: same API,
# same behaviour on both stores.
if [[ $# -eq 0 ]]; then
  PREFSYNC_TEST_SERVE_STORE=postgres cargo test -p prefsync-tests --test it -- \
    serve:: activations:: webhooks:: webhook:: webhook_js:: actito:: selligent:: dotdigital_ wit_frozen:: wit_next_major:: trust_ \
    2>&1 | tee -a "$log" || status=$?
fi
# Every fuzz target for a short fixed count (fuzz/README.md): a finding
# fails the run.
if [[ $# -eq 0 ]]; then
  ./scripts/fuzz.sh 20000 2>&1 | tee -a "$log" || status=$?
fi
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
