# Sourced by scripts/start and scripts/test: make .venv and install into it exactly what the lock
# file pins (hashes checked, nothing else downloaded), then the project itself (editable).
# Re-installs only when the lock or pyproject.toml changed, so a second run starts at once.
set -euo pipefail

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Samtale needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

ensure_venv() {  # $1: which lock, "runtime" (scripts/start) or "test" (scripts/test, .ci/run)
  local which=${1:-runtime}
  [ "$which" = "[test]" ] && which=test  # the old spelling of the argument
  set -- "$which"
  local lock=requirements/$1.txt stamp=.venv/.installed want
  # The test lock holds everything the runtime lock does: a test install serves both.
  want="$(sha256sum "$lock" pyproject.toml | cut -d' ' -f1 | tr '\n' ' ')"
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  if [ -f "$stamp" ] && grep -qxF "$1 $want" "$stamp"; then
    return 0
  fi
  if [ "$1" = runtime ] && [ -f "$stamp" ] && grep -qxF \
      "test $(sha256sum requirements/test.txt pyproject.toml | cut -d' ' -f1 | tr '\n' ' ')" "$stamp"; then
    return 0
  fi
  echo "Installing Samtale and its locked dependencies ($lock) into .venv ..." >&2
  if ! { .venv/bin/python -m pip install --require-hashes --no-deps -r "$lock" &&
         .venv/bin/python -m pip install --no-deps --no-build-isolation -e .; } \
       > .venv/pip.log 2>&1; then
    tail -n 40 .venv/pip.log >&2
    echo "Installing Samtale failed (end of the log above; all of it in .venv/pip.log)." >&2
    exit 1
  fi
  echo "$1 $want" > "$stamp"
}
