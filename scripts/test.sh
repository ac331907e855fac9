#!/usr/bin/env bash
# Runs every test: unit, simulation (1,000 nodes in virtual time) and integration tests that
# start real agents on 127.0.0.x. Release mode: the simulations are CPU-bound.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --build-tests
exec swift test -c release --skip-build "$@"
