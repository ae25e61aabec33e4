#!/usr/bin/env bash
# The test suite: installs the wasm target the guest components need, then
# runs every test of the workspace (build.rs builds the guests from source).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo test --workspace "$@"
