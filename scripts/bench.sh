#!/usr/bin/env bash
# `make bench`: the benchmarks in bench/, with the development services up.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/with-services.sh .venv/bin/python bench/pipeline_overhead.py "$@"
