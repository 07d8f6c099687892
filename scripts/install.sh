#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the project: with its test tools and every model
# family by default, or what AIRPARADIS_EXTRAS names.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# urllib3-future (brought by grafana-client's niquests) replaces urllib3 in place at every
# start unless built with URLLIB3_NO_OVERRIDE; requests (MLflow, schemathesis) needs the real
# urllib3, so the fork is built from source beside it.
export URLLIB3_NO_OVERRIDE=1 PIP_NO_BINARY=urllib3-future
# AIRPARADIS_EXTRAS: the optional parts (default: everything; empty: serving the simple model
# only, as `make install-serve` does).
EXTRAS="${AIRPARADIS_EXTRAS-dev,lstm,transformer}"
.venv/bin/python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
echo "installed: $(.venv/bin/airparadis --help >/dev/null && echo 'airparadis command ready in .venv/bin')"
