#!/usr/bin/env bash
# `make test`: lint and types, then the whole suite with Kafka and PostgreSQL started (and stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
echo "== mypy"
.venv/bin/python -m mypy pipeline models connectors alerts
mkdir -p test-artifacts
exec bash scripts/with-services.sh bash scripts/pytest-phases.sh "$@"
