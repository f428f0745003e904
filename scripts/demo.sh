#!/usr/bin/env bash
# Quick start, first command: install the crawler and crawl the built-in simulator with crawl.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh test
spotify-crawler crawl -c crawl.toml --sim "$@"
echo "output in out/: $(wc -l out/*.jsonl | tail -n 1 | awk '{print $1}') lines; summary: out/stats.json"
