#!/usr/bin/env bash
# `make test`: install and start what the suite needs (Kafka, PostgreSQL, kcat), run lint,
# types and the tests, and stop the services it started — also when the tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export FINSENT_HOME="$PWD/.finsent-test"
export FINSENT_TEST_KAFKA=127.0.0.1:19092
export FINSENT_TEST_PG_PORT=55432
finsent=.venv/bin/finsent

if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q kcat >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }
  else
    echo "test: kcat is missing; the interoperability test will be skipped (apt-get install kcat)"
  fi
fi

started=()
cleanup() {
  for service in "${started[@]}"; do
    case $service in
      kafka) "$finsent" --text-logs dev kafka stop --port 19092 || true ;;
      postgres) "$finsent" --text-logs dev postgres stop || true ;;
    esac
  done
}
trap cleanup EXIT

if ! "$finsent" --text-logs dev kafka status --port 19092 >/dev/null 2>&1; then
  "$finsent" --text-logs dev kafka start --port 19092
  started+=(kafka)
fi
if ! "$finsent" --text-logs dev postgres status >/dev/null 2>&1; then
  "$finsent" --text-logs dev postgres start
  started+=(postgres)
fi

echo "== ruff"
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
echo "== mypy"
.venv/bin/python -m mypy pipeline models connectors alerts
echo "== pytest"
mkdir -p test-artifacts
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
