#pragma once
// What service-status and the logs say about the database's storage: its size, what the
// retention purge removed since the server started, and how far the conversion of rows from
// before the compact encoding has come. The RETENTION and CONVERTER actors record; the HTTP
// front end reads without waiting on any actor (like writer_health).
#include "common/model.hpp"

#include <mutex>
#include <optional>

namespace mts {

class storage_stats {
public:
  struct snapshot {
    std::optional<storage_space> space; // nothing before the first measurement
    std::int64_t purged_tests = 0;      // since the server started
    std::int64_t purged_transcripts = 0;
    std::int64_t purged_batches = 0;
    std::optional<unix_seconds> last_purge; // when the last complete pass ended
    conversion_progress conversion;         // complete() when there is nothing to convert
  };

  void record_space(const storage_space& space);
  // A purge pass ended (wholly): what it deleted, and when.
  void record_pass(std::int64_t tests, std::int64_t transcripts, std::int64_t batches, unix_seconds at);
  void record_conversion(const conversion_progress& progress);

  snapshot get() const;

private:
  mutable std::mutex mutex_;
  snapshot data_;
};

} // namespace mts
