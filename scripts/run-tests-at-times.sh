#!/usr/bin/env bash
# Runs the whole test suite (ctest: unit, actor, end-to-end) once at each of several faked wall
# clock times, to show that no test depends on the time of day or the date. A developer tool;
# not part of .ci/run.
#
#   scripts/run-tests-at-times.sh                      # the four times below
#   scripts/run-tests-at-times.sh "@2027-06-30 23:59:30" -- -R e2e.test_api_methods
#
# Arguments before "--" replace the list of start times (libfaketime's "@YYYY-MM-DD hh:mm:ss");
# arguments after "--" go to ctest. The default times:
#   00:30 UTC and 05:59 UTC      inside the product's default overnight window (00:00-06:00),
#                                the second one closing a minute into the run;
#   23:59:30 UTC on 31 December  the run crosses midnight and the turn of the year;
#   23:59:30 UTC on 28 February of a leap year: it crosses into 29 February.
#
# How the clock is faked (libfaketime from Debian's faketime package; this script installs it
# if it is missing, as scripts/setup.sh does for the build's packages):
# - "@YYYY-MM-DD hh:mm:ss" (start at): the wall clock starts at that time and then advances
#   normally. FAKETIME_DONT_RESET=1: every process started during the run (ctest, python,
#   mts, mts-sim, mts_tests) continues the same clock through the faketime wrapper's shared
#   memory instead of starting again at the start time, so the test processes and the servers
#   they start agree on "now". Every one of them inherits LD_PRELOAD and FAKETIME from ctest,
#   so all of them see the faked time; certificates are made in process by the server (OpenSSL
#   library), so they carry faked times too, and the clients check them against faked times.
# - FAKETIME_DONT_FAKE_MONOTONIC=1: only the wall clock is faked. A faked CLOCK_MONOTONIC
#   makes timed waits on condition variables (C++ std::condition_variable::wait_for, used by
#   CAF's timers; Python's Condition.wait/lock timeouts) hang, because libfaketime shifts
#   clock_gettime but not the kernel's deadline; the product's timers, timeouts and sleeps
#   run on the monotonic clock and must keep real time.
# - libfaketime 0.9.10 still rewrites absolute CLOCK_MONOTONIC deadlines as faked wall-clock
#   times: Python's time.sleep (clock_nanosleep, TIMER_ABSTIME) fails with EINVAL and the
#   epoll reactor's monotonic timerfd (mts, mts-sim) never fires. faketime_real_monotonic.c,
#   compiled here into build/ and preloaded in front of libfaketime, passes those calls to the
#   kernel unchanged; calls on the wall clock still go through libfaketime.
# - FAKETIME_NO_CACHE is not set: it only matters when the fake time specification changes
#   during a run (a .faketimerc or a timestamp file), and here it never does.
set -euo pipefail
cd "$(dirname "$0")/.."

times=()
while (($#)) && [ "$1" != "--" ]; do times+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
((${#times[@]})) || times=("@2027-03-15 00:30:00" "@2027-03-15 05:59:00"
                           "@2026-12-31 23:59:30" "@2028-02-28 23:59:30")

if ! dpkg-query -W -f='${Status}' faketime 2>/dev/null | grep -q "install ok installed"; then
  echo "run-tests-at-times: installing faketime"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends faketime
fi

# Build with the real clock (file times matter to the build), then fake it for the tests only.
./scripts/setup.sh
shim="$PWD/build/faketime_real_monotonic.so"
g++ -x c -shared -fPIC -O2 -o "$shim" scripts/faketime_real_monotonic.c -ldl

cd build
summary=()
failed=0
for t in "${times[@]}"; do
  echo "=== ctest at faked time $t UTC"
  started=$(date +%s)
  rc=0
  # faketime sets LD_PRELOAD to libfaketime; the shim goes in front of it.
  TZ=UTC FAKETIME_DONT_RESET=1 FAKETIME_DONT_FAKE_MONOTONIC=1 \
    faketime -f "$t" bash -c 'date -u "+faked clock now: %F %T UTC"
                              LD_PRELOAD="$0:$LD_PRELOAD" exec ctest --output-on-failure -j "$(nproc)" "$@"' \
    "$shim" "$@" || rc=$?
  secs=$(($(date +%s) - started))
  result=$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (ctest exit $rc)")
  ((rc == 0)) || failed=1
  summary+=("$(printf '%-24s %-24s %dm%02ds' "$t" "$result" $((secs / 60)) $((secs % 60)))")
done

echo "=== summary (start time, result, duration)"
printf '%s\n' "${summary[@]}"
exit "$failed"
