#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/*.cpp, with AddressSanitizer and UndefinedBehavior-
# Sanitizer; clang++-14, -DMTS_FUZZ=ON) in build-fuzz/ and runs each one for SECONDS (default
# 600: well over 10 million executions of the fast harnesses), at most FUZZ_JOBS at a time
# (default 2). Then prints, per harness, the executions, the coverage libFuzzer reached (cov:
# edges, ft: features) and the outcome; exits 1 if any harness found something.
#
#   scripts/fuzz.sh                # every harness, 600 s each
#   scripts/fuzz.sh 5              # the seeds, then 5 s each
#   scripts/fuzz.sh --smoke        # .ci/run: the seeds, then 10,000 inputs each from a fixed
#                                  # random seed, so that the run is the same on every machine
#   scripts/fuzz.sh --runs 10000000 json   # until 10 million inputs (docs/testing.md's goal)
#   scripts/fuzz.sh 300 json dlms_apdu
#   FUZZ_TIMEOUT=60 scripts/fuzz.sh --runs 10000000 config   # a long run on a busy machine
#
# Each harness starts from its seed corpus, fuzz/corpus/<name>/ (kept in the repository, never
# written here), and its dictionary fuzz/<name>.dict when there is one; the inputs it finds
# go to build-fuzz/corpus/<name>/, so a later run continues from them. A finding is written to
# build-fuzz/findings/<name>/ (crash-*, leak-*, timeout-*, oom-*) and its log to
# build-fuzz/logs/<name>.log. Reproduce one with `build-fuzz/bin/fuzz_<name> FILE`; it then
# becomes a regression test in tests/unit before it is fixed (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
limit=(-max_total_time="$seconds")
if [ "$seconds" = "--smoke" ]; then
  limit=(-runs=10000 -seed=1)
elif [ "$seconds" = "--runs" ]; then
  shift
  limit=(-runs="${1:?--runs needs a number}")
fi
(($#)) && shift
./scripts/setup.sh --packages-only

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DMTS_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)"

harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  for f in fuzz/*.cpp; do harnesses+=("$(basename "$f" .cpp)"); done
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/scripts/sanitizer.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

run_one() {
  local name=$1
  local seeds="fuzz/corpus/$name" work="build-fuzz/corpus/$name" found="build-fuzz/findings/$name"
  mkdir -p "$seeds" "$work" "$found"
  local dict=()
  [ -f "fuzz/$name.dict" ] && dict=("-dict=fuzz/$name.dict")
  # -timeout: one input running 10 s is a hang (a driver that never finishes is a finding).
  # FUZZ_TIMEOUT raises it for long runs on a machine also busy with builds, where a process
  # at low priority can be starved that long (an input that reproduces in milliseconds).
  # shellcheck disable=SC2086 # limit_args: the options of the mode, word by word
  "build-fuzz/bin/fuzz_$name" "$work" "$seeds" "${dict[@]}" $limit_args -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$found/" \
    >"build-fuzz/logs/$name.log" 2>&1
}
export -f run_one
export limit_args="${limit[*]}"
mkdir -p build-fuzz/logs
# Findings of this run are the files newer than this mark (earlier ones are kept).
touch build-fuzz/logs/.run-started
started=$(date +%s)
rc=0
printf '%s\n' "${harnesses[@]}" | xargs -P "${FUZZ_JOBS:-2}" -I{} bash -c "run_one {}" || rc=$?

printf '%-22s %14s %8s %8s  %s\n' harness executions cov ft outcome
for name in "${harnesses[@]}"; do
  log="build-fuzz/logs/$name.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  outcome="ok"
  if grep -qE '^(==[0-9]+==ERROR|SUMMARY: |fuzz invariant broken|ALARM: working on the last Unit)' "$log" ||
     [ -n "$(find "build-fuzz/findings/$name" -type f -newer build-fuzz/logs/.run-started)" ]; then
    outcome="FINDING: see $log and build-fuzz/findings/$name/"
    rc=1
  fi
  printf '%-22s %14s %8s %8s  %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$outcome"
done
echo "fuzz: $((($(date +%s) - started))) s for ${#harnesses[@]} harnesses ($limit_args each)"
exit "$rc"
