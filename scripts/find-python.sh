#!/usr/bin/env bash
# Prints the interpreter to build .venv with: Python 3.13 (the Lambda runtime) when the
# machine has one, else the newest >= 3.11 with a warning on stderr.
set -u
candidates=(python3.13 /root/.pyenv/versions/3.13*/bin/python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13
            /usr/local/bin/python3.13 /usr/bin/python3.13)
for c in "${candidates[@]}"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
    echo "$p"; exit 0
  fi
done
best=""; best_minor=0
for c in python3.12 python3.11 python3; do
  p=$(command -v "$c" 2>/dev/null) || continue
  minor=$("$p" -c 'import sys; print(sys.version_info[1] if sys.version_info[0] == 3 else 0)' 2>/dev/null) || continue
  if [ "$minor" -ge 11 ] && [ "$minor" -gt "$best_minor" ]; then best=$p; best_minor=$minor; fi
done
if [ -n "$best" ]; then
  echo "warning: Python 3.13 not found; using $best (3.$best_minor)" >&2
  echo "$best"; exit 0
fi
exit 1
