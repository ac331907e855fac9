#!/usr/bin/env bash
# Runs every test: unit, simulation (300 nodes in virtual time; 1,000 with ROLEMESH_SCALE=1) and integration tests that
# start real agents on 127.0.0.x. Release mode: the simulations are CPU-bound.
#
# `scripts/test.sh --tsan [swift test options]`: the same suite built with ThreadSanitizer (in
# .build/tsan, beside the normal build). The agents the integration tests start are that build
# too, and a race reported in one makes it exit 66, so the test that started it fails.
# scripts/tsan.supp says what TSan cannot check here, and why.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=(-c release)
if [ "${1:-}" = "--tsan" ]; then
    shift
    build=(-c release --sanitize=thread --scratch-path .build/tsan)
    export TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$PWD/scripts/tsan.supp ${TSAN_OPTIONS:-}"
fi
swift build "${build[@]}" --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test "${build[@]}" --skip-build "$@" 2>&1 | tee "$log" || status=$?
# One closing line over both runners (XCTest and Swift Testing). XCTest's last summary is the
# whole run's: "Executed N tests, with [S tests skipped and ]F failures".
xc=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with " "$log" | tail -1 || true)
xc_run=$(echo "$xc" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/;t;s/.*/0/')
xc_skip=$(echo "$xc" | sed -E 's/.*with ([0-9]+) tests? skipped.*/\1/;t;s/.*/0/')
xc_fail=$(echo "$xc" | sed -E 's/.* ([0-9]+) failures?.*/\1/;t;s/.*/0/')
st=$(grep -E "Test run with [0-9]+ tests?" "$log" | tail -1 || true)
st_run=$(echo "$st" | sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/;t;s/.*/0/')
st_fail=$(echo "$st" | grep -oE "with [0-9]+ issues?" | grep -oE "[0-9]+" || echo 0)
[ "$status" -ne 0 ] && [ "$((xc_fail + st_fail))" -eq 0 ] && xc_fail=1
echo "$((xc_run + st_run - xc_skip - xc_fail - st_fail)) passed, $((xc_fail + st_fail)) failed, $xc_skip skipped"
exit "$status"
