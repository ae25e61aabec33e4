#!/usr/bin/env bash
# Runs every fuzz target for a fixed count of mutated inputs (default 50000
# each: about a minute on two shared cores in the dev profile), after
# replaying the committed corpus. Exits non-zero on any finding; findings are
# saved under fuzz/findings/<target>/. See fuzz/README.md.
#
#   ./scripts/fuzz.sh [RUNS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50000}"
seed="${2:-1}"
# Built with the feature resolution of `cargo test --workspace` (which
# scripts/test.sh has just run): with `-p prefsync-fuzz` alone, wasmtime and
# much else would be compiled a second time (about 6 minutes on two cores).
cargo build --quiet --workspace --tests --bin prefsync-fuzz
exec "${CARGO_TARGET_DIR:-target}/debug/prefsync-fuzz" all --runs "$runs" --seed "$seed"
