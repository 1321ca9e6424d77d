#pragma once
// Reading the GPUs through NVML, loaded with dlopen at run time so dsinfer starts (and says
// "no GPU") on a machine without the NVIDIA driver. Only NVML's stable C ABI is used (its
// _v2/_v3 entry points, as the driver exports them); the types it needs are declared in
// nvml.cpp. A test passes the path of a fake NVML library built by the tests.
#include <string>

#include "topo/topology.h"

namespace dsi::topo {

constexpr const char* kNvmlLibrary = "libnvidia-ml.so.1";

// Never throws for a missing driver or library: the Topology says why it is not available.
Topology read_topology(const std::string& library = kNvmlLibrary);

}  // namespace dsi::topo
