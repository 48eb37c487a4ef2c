#include "persistence/thread_reader.hpp"

#include <map>
#include <memory>

namespace mts {

std::atomic<std::uint64_t> thread_reader::next_serial_{1};

thread_reader::thread_reader(std::string db_path, std::int64_t busy_timeout_ms)
  : db_path_(std::move(db_path)), busy_timeout_ms_(busy_timeout_ms), serial_(next_serial_++) {}

store& thread_reader::local() {
  thread_local std::map<std::uint64_t, std::unique_ptr<store>> stores;
  auto& slot = stores[serial_];
  if (!slot)
    slot = std::make_unique<store>(db_path_, store_mode::read_only, busy_timeout_ms_);
  return *slot;
}

} // namespace mts
