#pragma once
// An invariant a harness checks beyond what the sanitizers see. A broken one aborts, which
// libFuzzer records as a crash with its reproducer like any sanitizer report.
#include <cstdio>
#include <cstdlib>

namespace mts::fuzzing {

[[noreturn]] inline void invariant_broken(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n", file, line, what);
  std::abort();
}

} // namespace mts::fuzzing

#define FUZZ_CHECK(condition, what) \
  ((condition) ? (void)0 : ::mts::fuzzing::invariant_broken(what, __FILE__, __LINE__))
