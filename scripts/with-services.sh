#!/usr/bin/env bash
# Runs a command with the development services up (Kafka on 19092, PostgreSQL on 55432, kcat
# installed), and stops afterwards the services this script started — also when the command fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export FINSENT_HOME="${FINSENT_HOME:-$PWD/.finsent-test}"
export FINSENT_TEST_KAFKA=127.0.0.1:19092
export FINSENT_TEST_PG_PORT=55432
finsent=.venv/bin/finsent

if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q kcat >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }
  else
    echo "services: kcat is missing; the interoperability test will be skipped (apt-get install kcat)"
  fi
fi

# Headless Chromium for the dashboard test and `finsent report` (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || true
  fi
  command -v chromium >/dev/null 2>&1 || echo "services: chromium is missing; the dashboard and report tests will be skipped"
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
"$@"
