#!/usr/bin/env bash
# Builds the unit and actor tests (mts_tests) with AddressSanitizer and
# UndefinedBehaviorSanitizer (-DMTS_SANITIZE=ON, g++) in build-asan/ and runs all of them.
# Any report fails the run: UB ends the test process (halt_on_error=1, scripts/ubsan.supp names
# the one third-party report it silences), and so does every ASan error. The end-to-end tests
# are not run here (./scripts/run-tests.sh runs them).
#
#   scripts/sanitize.sh              # every test
#   scripts/sanitize.sh "[dlms]"     # Catch2 arguments go to mts_tests
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --packages-only

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMTS_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$(nproc)" --target mts_tests

# detect_leaks: every leak is a finding too. The suppression files (sanitizer.supp for leaks,
# ubsan.supp for UB) name each third-party report they silence, and why; none of ours.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$PWD/scripts/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/scripts/sanitizer.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
exec build-asan/bin/mts_tests "$@"
