// Calibration constants: defaults, overrides from JSON, and errors naming the bad key.
#include <gtest/gtest.h>

#include "plan/calibration.h"

namespace dsi::plan {
namespace {

std::string error_of(std::string_view json) {
  try {
    Calibration::from_json(parse_json(json, "cal.json"), "cal.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanCalibration, OverridesOnlyTheKeysGiven) {
  Calibration c = Calibration::from_json(parse_json(R"({"cuda_context_mib": 600, "activation_factor": 2,
                                                         "_comment": "measured on H200"})",
                                                    "cal.json"),
                                         "cal.json");
  EXPECT_EQ(c.cuda_context_mib, 600);
  EXPECT_EQ(c.activation_factor, 2);
  EXPECT_EQ(c.memory_utilization, Calibration{}.memory_utilization);
}

TEST(PlanCalibration, RoundTripsThroughJson) {
  Calibration c;
  c.nccl_per_peer_mib = 48;
  Calibration back = Calibration::from_json(c.to_json(), "x");
  EXPECT_EQ(back.to_json(), c.to_json());
}

TEST(PlanCalibration, FixedOverheadAddsNcclOnlyWithPeers) {
  Calibration c;
  const double mib = double(1 << 20);
  EXPECT_EQ(c.fixed_overhead_bytes(0), uint64_t((600 + 1024 + 256) * mib));
  EXPECT_EQ(c.fixed_overhead_bytes(7), uint64_t((600 + 1024 + 256 + 256 + 32 * 7) * mib));
}

TEST(PlanCalibration, BadValuesNameTheKey) {
  EXPECT_NE(error_of(R"({"cuda_contxt_mib": 1})").find("unknown calibration key 'cuda_contxt_mib'"), std::string::npos);
  EXPECT_NE(error_of(R"({"workspace_mib": -1})").find("workspace_mib"), std::string::npos);
  EXPECT_NE(error_of(R"({"memory_utilization": 1.5})").find("memory_utilization"), std::string::npos);
  EXPECT_NE(error_of(R"({"activation_factor": 0.5})").find("activation_factor"), std::string::npos);
  EXPECT_NE(error_of(R"({"hbm_efficiency": "high"})").find("hbm_efficiency"), std::string::npos);
  EXPECT_NE(error_of(R"([1, 2])").find("JSON object"), std::string::npos);
}

}  // namespace
}  // namespace dsi::plan
