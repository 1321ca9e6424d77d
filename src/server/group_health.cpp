#include "server/group_health.h"

#include <chrono>

namespace dsi::server {

GroupFailure GroupFailure::now(std::string error, std::string group) {
  GroupFailure f;
  f.error = std::move(error);
  f.group = std::move(group);
  f.unix_time = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return f;
}

GroupFailure GroupFailure::from(const CollectiveTimeout& e) {
  GroupFailure f = now(e.what(), e.group);
  f.collective = e.collective;
  f.rank = e.rank;
  f.group_size = e.size;
  f.timeout_s = e.timeout_s;
  return f;
}

Json GroupFailure::to_json() const {
  Json failed = {{"collective", collective}, {"group", group}, {"group_size", group_size}, {"timeout_s", timeout_s},
                 {"step", step}};
  // A timeout carries where it happened; an error thrown by older code may not.
  if (rank >= 0) failed["rank"] = rank;
  else failed["rank"] = nullptr;
  return Json{{"status", "unhealthy"},
              {"error", error},
              {"failed", std::move(failed)},
              {"since", unix_time},
              {"exit_in_s", exit_in_s}};
}

void GroupHealth::fail(GroupFailure f) {
  std::lock_guard lock(mutex_);
  if (!failure_) failure_ = std::make_shared<const GroupFailure>(std::move(f));
}

std::shared_ptr<const GroupFailure> GroupHealth::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

}  // namespace dsi::server
