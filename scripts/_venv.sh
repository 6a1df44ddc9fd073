# Sourced by scripts/start and scripts/test: make .venv and install the project into it.
# Re-installs only when pyproject.toml changed, so a second run starts at once.
set -euo pipefail

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Samtale needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

ensure_venv() {  # $1: the extras to install, e.g. "" or "[test]"
  local extras=$1 stamp=.venv/.installed
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
    echo "Installing Samtale$extras into .venv ..." >&2
    if ! .venv/bin/python -m pip install --quiet -e ".$extras" > .venv/pip.log 2>&1; then
      cat .venv/pip.log >&2
      echo "Installing Samtale failed (log above, also in .venv/pip.log)." >&2
      exit 1
    fi
    # A test install includes the plain one: remember both.
    { echo "$want"; [ -n "$extras" ] && echo "$(sha256sum pyproject.toml | cut -d' ' -f1)"; } > "$stamp"
  fi
}
