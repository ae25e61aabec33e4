#!/usr/bin/env bash
# Refreshes the console's screenshots the README shows (docs/console/*.png):
# runs the console's browser tests (tests/it/console.rs) with
# PREFSYNC_CONSOLE_SCREENSHOTS=docs/console, so every page they visit is
# saved there (1280×800, and the overview at 390 px wide). Needs headless
# Chromium and chromedriver (scripts/chromium.sh installs them as root).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/chromium.sh
rustup target add wasm32-wasip2
mkdir -p docs/console
PREFSYNC_CONSOLE_SCREENSHOTS=docs/console \
  cargo test -p prefsync-tests --test it -- console:: "$@"
ls -l docs/console/*.png
