#pragma once
// Whether the ranks of a parallel server still form a working group, for GET /health and the
// API: healthy until a collective times out (a rank died or hangs); from then until the
// process exits, /health answers 503 with a JSON body naming the failed collective, its
// group and the rank that saw it, and new generation requests get 503 with the same reason
// (docs/multi-rank.md "Failures and shutdown"). Thread-safe: set once by the engine thread,
// read by the I/O threads.
#include <memory>
#include <mutex>
#include <string>

#include "core/json.h"
#include "parallel/communicator.h"

namespace dsi::server {

struct GroupFailure {
  std::string error;       // the CollectiveTimeout's message
  std::string collective;  // "all_reduce", "broadcast", ...
  std::string group;       // "world", "tp"
  int rank = -1;           // the rank that waited, in the group's numbering
  int group_size = 0;
  double timeout_s = 0;
  int64_t step = 0;        // engine steps completed before the failing one
  double unix_time = 0;    // when it was seen
  int exit_in_s = 0;       // when the process exits (seconds after unix_time)

  // A failure seen now: `error` on `group`, no collective (the launcher ending the job).
  static GroupFailure now(std::string error, std::string group);
  static GroupFailure from(const CollectiveTimeout& e);
  Json to_json() const;
};

class GroupHealth {
 public:
  // The first failure is kept; later ones (a second group timing out) change nothing.
  void fail(GroupFailure f);
  // Null while the group is healthy.
  std::shared_ptr<const GroupFailure> failure() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const GroupFailure> failure_;
};

}  // namespace dsi::server
