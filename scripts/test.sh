#!/usr/bin/env bash
# Runs the test suite: unit, component, integration (real servers) and e2e; not the slow tier.
# Extra arguments go to pytest (e.g. -m "" to run everything, or a path).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -m "not slow" -p no:cacheprovider "$@"
