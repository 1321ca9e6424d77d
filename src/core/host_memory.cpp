#include "core/host_memory.h"

#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace dsi {

HostMemory host_memory() {
  HostMemory m;
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) m.total_bytes = int64_t(pages) * page_size;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string name, unit;
    int64_t kib = 0;
    if (fields >> name >> kib >> unit && name == "MemAvailable:" && unit == "kB") m.available_bytes = kib * 1024;
  }
  return m;
}

std::string host_memory_summary() {
  auto gib = [](int64_t bytes) {
    return bytes < 0 ? std::string("unknown") : fmt::format("{:.1f} GiB", double(bytes) / double(int64_t(1) << 30));
  };
  HostMemory m = host_memory();
  return fmt::format("{} physical, {} available", gib(m.total_bytes), gib(m.available_bytes));
}

}  // namespace dsi
