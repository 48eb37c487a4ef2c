#pragma once
// The open-file limit of the process. Every meter link is a socket (and every simulated meter
// a listening socket plus one per session), so a thousand concurrent sessions need more
// descriptors than the usual default soft limit of 1024. Both binaries raise the soft limit to
// the hard limit at start-up: the hard limit is the administrator's ceiling, the soft one
// only a default. (cpp-httplib is built with poll(), so descriptors above 1024 are safe.)
#include <cstdint>

namespace mts::io {

struct open_file_limit {
  std::uint64_t before = 0; // the soft limit found
  std::uint64_t now = 0;    // the soft limit after raising (RLIM_INFINITY: UINT64_MAX)
};

// Raises RLIMIT_NOFILE's soft limit to its hard limit. Never throws; if the call fails the
// limit is left as it was (now == before).
open_file_limit raise_open_file_limit();

} // namespace mts::io
