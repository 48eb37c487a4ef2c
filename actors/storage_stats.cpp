#include "actors/storage_stats.hpp"

namespace mts {

void storage_stats::record_space(const storage_space& space) {
  std::lock_guard<std::mutex> lock(mutex_);
  data_.space = space;
}

void storage_stats::record_pass(std::int64_t tests, std::int64_t transcripts, std::int64_t batches, unix_seconds at) {
  std::lock_guard<std::mutex> lock(mutex_);
  data_.purged_tests += tests;
  data_.purged_transcripts += transcripts;
  data_.purged_batches += batches;
  data_.last_purge = at;
}

void storage_stats::record_conversion(const conversion_progress& progress) {
  std::lock_guard<std::mutex> lock(mutex_);
  data_.conversion = progress;
}

storage_stats::snapshot storage_stats::get() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return data_;
}

} // namespace mts
