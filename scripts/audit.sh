#!/usr/bin/env bash
# `make audit`: known vulnerabilities in the locked dependencies, with pip-audit in its own
# tool environment (.tools/audit). pip-audit skips any package it cannot look up and still
# says "No known vulnerabilities found"; --strict turns a skip into a failure, and this
# script reports such a run as NOT RUN (exit 3) rather than as clean.
set -uo pipefail
cd "$(dirname "$0")/.."
tools=.tools/audit
if [ ! -x "$tools/bin/pip-audit" ]; then
  python=$(scripts/find-python.sh) || { echo "audit: no Python >= 3.11 found" >&2; exit 2; }
  "$python" -m venv "$tools" && "$tools/bin/python" -m pip install --quiet \
    --disable-pip-version-check "pip-audit>=2.7" 2> >(grep -v "is ignored" >&2) \
    || { echo "audit: cannot install pip-audit" >&2; exit 2; }
fi
log=$(mktemp)
"$tools/bin/pip-audit" --strict --progress-spinner off --disable-pip --no-deps \
  -r requirements-dev.lock >"$log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
  cat "$log"; echo "audit: clean (every locked package checked)"; rm -f "$log"; exit 0
fi
if grep -qiE "vulnerabilit(y|ies) in|Found [0-9]+ known" "$log"; then
  cat "$log"; echo "audit: vulnerable packages found" >&2; rm -f "$log"; exit 1
fi
echo "audit: NOT RUN: no vulnerability database was reachable from this machine" >&2
grep -iE "error|skip|could not|connection" "$log" | head -3 >&2
rm -f "$log"
exit 3
