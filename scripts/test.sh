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
log=$(mktemp) simlog=$(mktemp) soaklog=$(mktemp)
trap 'rm -f "$log" "$simlog" "$soaklog"' EXIT
status=0 simstatus=0 soakstatus=0
if [ "$#" -eq 0 ]; then
    # The simulations (2,000 randomized seeds and the scenarios) are CPU-bound, and the chaos soak
    # and the other integration tests mostly wait on real agents' timers: side by side, the whole
    # run takes about the longest of the three instead of their sum. The simulations run at the lowest
    # priority, so the agents' timers win. They run from the test bundle itself: a second
    # `swift test` would wait for the first one's lock on .build.
    bundle="$(swift build "${build[@]}" --show-bin-path)/RoleMeshPackageTests.xctest"
    # The bundle takes test names, not a module: every test of RoleMeshSimulationTests, by name.
    simtests=$("$bundle" --list-tests | grep "^RoleMeshSimulationTests\." | paste -sd, -)
    [ -n "$simtests" ] || { echo "no simulation tests found in $bundle" >&2; exit 1; }
    nice -n 19 "$bundle" "$simtests" > "$simlog" 2>&1 &
    simpid=$!
    "$bundle" RoleMeshIntegrationTests.SoakIntegrationTests > "$soaklog" 2>&1 &
    soakpid=$!
    swift test "${build[@]}" --skip-build --skip RoleMeshSimulationTests --skip SoakIntegrationTests 2>&1 | tee "$log" || status=$?
    wait "$simpid" || simstatus=$?
    wait "$soakpid" || soakstatus=$?
    echo "==> the simulation tests (run beside the others):"
    cat "$simlog"
    echo "==> the chaos soak (run beside the others):"
    cat "$soaklog"
else
    swift test "${build[@]}" --skip-build "$@" 2>&1 | tee "$log" || status=$?
fi
# One closing line over both runners (XCTest and Swift Testing) and both runs. XCTest's last
# summary is its run's: "Executed N tests, with [S tests skipped and ]F failures".
run=0 skip=0 fail=0
for f in "$log" "$simlog" "$soaklog"; do
    [ -s "$f" ] || continue
    xc=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with " "$f" | tail -1 || true)
    xc_run=$(echo "$xc" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/;t;s/.*/0/')
    xc_skip=$(echo "$xc" | sed -E 's/.*with ([0-9]+) tests? skipped.*/\1/;t;s/.*/0/')
    xc_fail=$(echo "$xc" | sed -E 's/.* ([0-9]+) failures?.*/\1/;t;s/.*/0/')
    st=$(grep -E "Test run with [0-9]+ tests?" "$f" | tail -1 || true)
    st_run=$(echo "$st" | sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/;t;s/.*/0/')
    st_fail=$(echo "$st" | grep -oE "with [0-9]+ issues?" | grep -oE "[0-9]+" || echo 0)
    run=$((run + xc_run + st_run)) skip=$((skip + xc_skip)) fail=$((fail + xc_fail + st_fail))
done
[ "$simstatus" -ne 0 ] && [ "$status" -eq 0 ] && status=$simstatus
[ "$soakstatus" -ne 0 ] && [ "$status" -eq 0 ] && status=$soakstatus
[ "$status" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1
echo "$((run - skip - fail)) passed, $fail failed, $skip skipped"
exit "$status"
