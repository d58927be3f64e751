#!/usr/bin/env bash
# `make browser`: headless Chromium for the report's screenshot test
# (tests/integration/demo/test_report_screenshot.py) and `mls-sync report --out FILE.png`.
# Found: says which. Missing and apt-get usable (root, or sudo without a password): installs
# Debian's `chromium`. Otherwise says NOT INSTALLED and why, and exits 0 so the tiers still
# run: the screenshot test then fails, naming this target (MLS_SYNC_SKIP_BROWSER=<reason>
# skips it on purpose instead).
set -uo pipefail

find_browser() {
  for name in "${MLS_SYNC_CHROMIUM:-}" chromium chromium-browser google-chrome google-chrome-stable; do
    [ -n "$name" ] && command -v "$name" 2>/dev/null && return 0
  done
  return 1
}

say_found() {
  echo "browser: $("$1" --version 2>/dev/null | grep -v '^/' | head -1) ($1)"
}

if found=$(find_browser); then
  say_found "$found"
  exit 0
fi

why=""
if ! command -v apt-get >/dev/null 2>&1; then
  why="no apt-get on this machine: install Chromium yourself (or set MLS_SYNC_CHROMIUM)"
else
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    why="apt-get needs root: run sudo apt-get install chromium"
  fi
  if [ -z "$why" ]; then
    echo "browser: installing Debian's chromium with apt-get"
    log=$(mktemp)
    if ! apt-cache policy chromium 2>/dev/null | grep -q "Candidate: [0-9]"; then
      "${sudo[@]}" apt-get update -qq >"$log" 2>&1
    fi
    if DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends chromium >>"$log" 2>&1 && found=$(find_browser); then
      rm -f "$log"
      say_found "$found"
      exit 0
    fi
    why="apt-get install chromium failed: $(tail -n 2 "$log" | tr '\n' ' ')"
    rm -f "$log"
  fi
fi
echo "browser: NOT INSTALLED: $why" >&2
echo "browser: the report screenshot test will FAIL without it" \
  "(MLS_SYNC_SKIP_BROWSER=<reason> skips it on purpose)" >&2
exit 0
