// The attention and MoE kernels' wrappers on any machine, GPU or not (CI has none): a bad
// parameter is a dsi::Error naming the op and the field, raised before anything is launched
// (the pointers here are fake device addresses that a launch would fault on).
#include <gtest/gtest.h>

#include <string>

#include "backend/cuda/grouped_gemm.h"
#include "backend/cuda/mla_attention.h"
#include "backend/cuda/mla_projections.h"
#include "backend/cuda/moe.h"
#include "core/error.h"

namespace dsi::cuda {
namespace {

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void* const kFake = reinterpret_cast<void*>(uintptr_t(1) << 40);
const auto* const kFakeI32 = static_cast<const int32_t*>(kFake);

MlaAttentionParams valid_attention() {
  MlaAttentionParams p;
  p.act_dtype = p.kv_dtype = DType::bf16;
  p.q_full = p.kv_pool = p.o_latent = kFake;
  p.seq_first_row = p.seq_n_tokens = p.seq_n_cached = p.block_table = kFakeI32;
  p.n_seqs = 1;
  p.block_table_ld = 4;
  p.n_tokens = 2;
  p.n_heads = 16;
  p.kv_lora_rank = 512;
  p.rope_dim = 64;
  p.q_ld = 16 * 576;
  p.o_ld = 16 * 512;
  p.kv_ld = 576;
  p.block_size = 64;
  p.softmax_scale = 0.1f;
  return p;
}

TEST(CudaKernelArgs, AttentionNamesTheBadField) {
  auto p = valid_attention();
  p.kv_lora_rank = 1024;
  EXPECT_NE(error_of([&] { mla_attention(p, nullptr); }).find("r = 1024"), std::string::npos);
  p = valid_attention();
  p.kv_dtype = DType::f8_e4m3;
  EXPECT_NE(error_of([&] { mla_attention(p, nullptr); }).find("the cache F8_E4M3"), std::string::npos);
  p = valid_attention();
  p.n_splits = 4;  // no scratch
  EXPECT_NE(error_of([&] { mla_attention(p, nullptr); }).find("4 splits need split_scratch"), std::string::npos);
  p = valid_attention();
  p.q_ld = 100;
  EXPECT_NE(error_of([&] { mla_attention(p, nullptr); }).find("row strides q 100"), std::string::npos);
  // The scratch a split needs, and the split heuristic: no splits when rows fill the GPU,
  // more for few rows and long contexts, at most one wave, never more than the context allows.
  p = valid_attention();
  p.n_splits = 3;
  EXPECT_EQ(mla_attention_scratch_floats(p), 3 * 2 * 16 * (512 + 2));
  EXPECT_EQ(mla_attention_pick_splits(512, 128, 4096, 132), 1);
  EXPECT_EQ(mla_attention_pick_splits(1, 128, 32768, 132), 33);  // 8 CTAs x 33: one wave of 2 CTAs x 132
  EXPECT_EQ(mla_attention_pick_splits(1, 128, 64, 132), 2);      // 64 tokens: at least 32 per split
  EXPECT_EQ(mla_attention_pick_splits(1, 16, 160, 132), 5);      // V2-Lite decode, one CTA per tile
  EXPECT_EQ(mla_attention_pick_splits(64, 16, 160, 132), 4);     // 64 rows: 4 x 64 = 256 CTAs (5: a 2nd wave)
}

TEST(CudaKernelArgs, ProjectionsCheckKvB) {
  MlaAbsorbParams p;
  p.n_tokens = 3;
  p.n_heads = 4;
  p.qk_nope_head_dim = 32;
  p.qk_rope_head_dim = 16;
  p.v_head_dim = 32;
  p.kv_lora_rank = 64;
  p.q = p.q_full = kFake;
  p.q_ld = 4 * 48;
  p.q_full_ld = 4 * 80;
  p.kv_b = {kFake, DType::bf16, 4 * 64, 60, 64};
  EXPECT_NE(error_of([&] { mla_absorb_query(p, nullptr); }).find("kv_b is [256, 60], expected [256, 64]"),
            std::string::npos);
  p.kv_b = {kFake, DType::f8_e4m3, 4 * 64, 64, 64};  // FP8 without scales
  EXPECT_NE(error_of([&] { mla_absorb_query(p, nullptr); }).find("FP8 kv_b needs its block scales"),
            std::string::npos);
}

TEST(CudaKernelArgs, GroupedGemmRejectsWhatItCannotDo) {
  GroupedGemmParams p;
  p.n_groups = 2;
  p.n_cols = 64;
  p.depth = 64;
  p.n_rows = 8;
  p.a = p.y = kFake;
  p.a_ld = p.y_ld = 64;
  p.w.data = kFake;
  p.w.dtype = DType::f8_e4m3;
  EXPECT_NE(error_of([&] { grouped_gemm(p, nullptr); }).find("FP8 w needs its block scales"), std::string::npos);
  p.w.scale = static_cast<const float*>(kFake);
  p.w.block_cols = 32;
  EXPECT_NE(error_of([&] { grouped_gemm(p, nullptr); }).find("32-column scale blocks"), std::string::npos);
  p.w.dtype = DType::i32;
  EXPECT_NE(error_of([&] { grouped_gemm(p, nullptr); }).find("w is I32"), std::string::npos);
}

TEST(CudaKernelArgs, MoeRouteChecksTheRoutingParameters) {
  MoeRouteParams p;
  p.routing = {512, 8, 8, 4, RoutingScore::routing_score_sigmoid, RoutingGroupScore::routing_group_top2_sum, true,
               true, 2.5f};
  p.n_tokens = 4;
  p.logits = static_cast<const float*>(kFake);
  p.logits_ld = 512;
  p.score_bias = static_cast<const float*>(kFake);
  p.expert_ids = static_cast<int32_t*>(kFake);
  p.expert_weights = static_cast<float*>(kFake);
  p.expert_counts = static_cast<int32_t*>(kFake);
  EXPECT_NE(error_of([&] { moe_route(p, nullptr); }).find("512 experts; the kernel takes 1 to 256"),
            std::string::npos);
  p.routing.n_experts = 256;
  p.routing.n_group = 7;
  EXPECT_NE(error_of([&] { moe_route(p, nullptr); }).find("n_group 7"), std::string::npos);
  p.routing.n_group = 8;
  p.score_bias = nullptr;
  EXPECT_NE(error_of([&] { moe_route(p, nullptr); }).find("use_score_bias without a score bias"), std::string::npos);
}

}  // namespace
}  // namespace dsi::cuda
