#!/usr/bin/env bash
# Headless Chromium and its WebDriver server for the console's browser tests
# (tests/it/console.rs), from the distribution's packages: when
# /usr/bin/chromium or /usr/bin/chromedriver is missing, installs Debian's
# `chromium` and `chromium-driver` (root only; otherwise it says what to
# install). Exits non-zero, saying why, when they cannot be had: the browser
# tests are part of the suite, and skipping them is not passing.
set -euo pipefail

have() {
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]
}

if have; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Chromium is not installed (/usr/bin/chromium, /usr/bin/chromedriver): the console's browser tests need it;" >&2
  echo "install it as root with: apt-get install chromium chromium-driver" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "Chromium is not installed and there is no apt-get to install it with: install the packages" >&2
  echo "that provide /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium chromium-driver)" >&2
  exit 1
fi
echo "installing Chromium from the distribution's packages…" >&2
# Without the recommended desktop packages (printing, notifications …), but
# with a font, so screenshots show text.
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    chromium chromium-driver fonts-liberation >&2
}
# A stale package index is the usual reason the first attempt fails.
if ! install; then
  echo "retrying after apt-get update…" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || true
  install || true
fi
if ! have; then
  echo "installing chromium and chromium-driver failed (see apt-get's output above):" >&2
  echo "the console's browser tests cannot run without /usr/bin/chromium and /usr/bin/chromedriver" >&2
  exit 1
fi
