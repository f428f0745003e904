#!/usr/bin/env bash
# Quick start, second command: install the test dependencies and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh test
exec python -m pytest "$@"
