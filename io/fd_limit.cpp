#include "io/fd_limit.hpp"

#include <sys/resource.h>

namespace mts::io {

open_file_limit raise_open_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return {};
  open_file_limit out{rl.rlim_cur, rl.rlim_cur};
  if (rl.rlim_cur == rl.rlim_max)
    return out;
  rlimit raised = rl;
  raised.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) == 0)
    out.now = raised.rlim_cur;
  return out;
}

} // namespace mts::io
