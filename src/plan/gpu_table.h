#pragma once
// The GPUs `dsinfer plan` knows, read from assets/gpus.json (linked into the binary). Each
// figure is a datasheet number; docs/plan.md lists the sources. Immutable after loading, so
// any thread may read it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace dsi::plan {

enum class LinkType { nvlink, pcie };
std::string_view link_type_name(LinkType t);

struct GpuSpec {
  std::string name;
  std::vector<std::string> aliases;
  std::string arch;          // hopper, ampere, ada, volta; "custom" for COUNTxMEMGB
  double memory_gib = 0;     // datasheet capacity, read as GiB
  double hbm_gbs = 0;        // memory bandwidth, GB/s; 0: unknown (speed estimates are skipped)
  double bf16_tflops = 0;    // dense tensor-core peak, no sparsity (fp16 where bf16 is missing)
  double fp8_tflops = 0;     // 0: no FP8 tensor cores, FP8 weights must be dequantised
  bool bf16 = true;          // native bf16 support (V100 has fp16 only)
  LinkType link = LinkType::pcie;
  double link_gbs = 0;       // GPU-to-GPU bandwidth inside a node, both directions together
  std::string source;

  bool has_fp8() const { return fp8_tflops > 0; }
  bool is_custom() const { return arch == "custom"; }
  uint64_t memory_bytes() const;
  // Bandwidth one GPU can send with, in bytes/s: half of the bidirectional datasheet figure.
  double link_send_bytes_per_s() const { return link_gbs * 1e9 / 2; }
};

class GpuTable {
 public:
  static const GpuTable& builtin();  // assets/gpus.json; parsed once
  static GpuTable from_json(const Json& j, std::string_view what);

  // Case-insensitive match on name or alias; nullptr when unknown.
  const GpuSpec* find(std::string_view name) const;
  const std::vector<GpuSpec>& gpus() const { return gpus_; }

 private:
  std::vector<GpuSpec> gpus_;
};

}  // namespace dsi::plan
