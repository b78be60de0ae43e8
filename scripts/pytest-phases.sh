#!/usr/bin/env bash
# The suite in two phases (run by scripts/test.sh inside scripts/with-services.sh):
#
# 1. every test not marked `exclusive`, on FINSENT_TEST_WORKERS pytest-xdist workers (2 here):
#    most of the suite waits on a broker, a database, a worker process or a rate-limited
#    producer, and two at a time cut its wall time on this 2-core machine from about 27 to 21.
#    Each test file runs on one worker (--dist loadfile), so a module fixture (a trained model, a
#    scrape run) is built once: xdist's `loadgroup` did not group with pytest 9 (the module's
#    tests ran on both workers, each training the fixture's model). Files are handed out in
#    collection order (--no-loadscope-reorder, not biggest first) and the conftest collects the
#    `heavy` tests first, so the longest files start first and the two workers finish together.
# 2. the `exclusive` tests, alone: they stop the broker or PostgreSQL every other test uses, and
#    run in phase 1 they would fail whatever ran beside them.
#
# Arguments (a test path, -k, -x ...) go to both phases; a phase they select nothing from is
# not a failure (pytest's exit code 5).
set -uo pipefail
cd "$(dirname "$0")/.."
workers=${FINSENT_TEST_WORKERS:-2}
common=(-q -p no:cacheprovider -W ignore::DeprecationWarning --durations=15)

phase() {
  .venv/bin/python -m pytest "${common[@]}" "$@"
  local rc=$?
  [ "$rc" = 5 ] && return 0
  return "$rc"
}

echo "== pytest, phase 1: $workers workers"
if [ "$workers" -gt 1 ]; then
  # One torch thread per process (the tests' own training and the CLIs and workers they start):
  # two workers each training with a thread per core ran four busy threads on two cores.
  (
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    export FINSENT_INFERENCE_CPU_THREADS=${FINSENT_INFERENCE_CPU_THREADS:-1}
    phase -n "$workers" --dist loadfile --no-loadscope-reorder -m "not exclusive" "$@"
  ) || exit $?
else
  phase -m "not exclusive" "$@" || exit $?
fi
echo "== pytest, phase 2: the tests that stop a shared service, alone"
phase -m exclusive "$@"
