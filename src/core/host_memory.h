#pragma once
// The host's memory, for error messages that say what a too-large allocation could have had.
#include <cstdint>
#include <string>

namespace dsi {

struct HostMemory {
  int64_t total_bytes = -1;      // physical memory (sysconf); -1: unknown
  int64_t available_bytes = -1;  // MemAvailable of /proc/meminfo; -1: unknown
};

HostMemory host_memory();

// "125.7 GiB physical, 98.2 GiB available" (or "unknown" for what the system does not say).
std::string host_memory_summary();

}  // namespace dsi
