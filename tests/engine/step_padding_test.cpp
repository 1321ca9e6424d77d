// A decode step padded to a CUDA graph's batch size (engine/step_padding.h), run on the CPU
// reference: the real rows' logits equal the unpadded step's, and the padding rows store no
// key (the next step, unpadded, equals a run that never saw padding). Bound 1e-5: the CPU's
// products may group a different row count differently, float32 rounding only (logits ~1-5,
// ulp <= 4.8e-7).
#include "engine/step_padding.h"

#include <gtest/gtest.h>

#include <cmath>

#include "../common/test_paths.h"
#include "core/threads.h"
#include "engine/model_loader.h"
#include "engine/model_runner.h"

namespace dsi {
namespace {

TEST(StepPadding, GraphBatchSizes) {
  EXPECT_EQ(graph_batch_size(1, 256), 1);
  EXPECT_EQ(graph_batch_size(3, 256), 4);
  EXPECT_EQ(graph_batch_size(5, 256), 8);
  EXPECT_EQ(graph_batch_size(9, 256), 16);
  EXPECT_EQ(graph_batch_size(57, 256), 64);
  EXPECT_EQ(graph_batch_size(57, 60), 60);  // the workspace's limit, never below n
  EXPECT_EQ(graph_batch_size(512, 1024), 512);
  EXPECT_EQ(graph_batch_size(513, 1024), 0);
}

ForwardBatch decode_batch(const std::vector<int32_t>& tokens, const std::vector<int32_t>& n_cached,
                          const std::vector<std::vector<int32_t>>& tables, int block_size) {
  ForwardBatch b;
  for (size_t s = 0; s < tokens.size(); ++s) {
    const int32_t pos = n_cached[s];
    b.token_ids.push_back(tokens[s]);
    b.positions.push_back(pos);
    b.kv_slots.push_back(int64_t(tables[s][size_t(pos / block_size)]) * block_size + pos % block_size);
    b.logit_rows.push_back(int32_t(s));
    b.sequences.push_back({int32_t(s), 1, pos, tables[s]});
  }
  return b;
}

TEST(StepPadding, KeysOnlyDecodeSteps) {
  const std::vector<std::vector<int32_t>> tables{{0}, {1}, {2}};
  ForwardBatch padded;
  ForwardBatch b = decode_batch({5, 6, 7}, {3, 9, 4}, tables, 16);
  const auto key = decode_graph_key(b, 64, padded);
  ASSERT_TRUE(key);
  EXPECT_EQ(*key & 0xffffffff, 4u);  // padded to 4 rows
  EXPECT_EQ(*key >> 32, 4u);         // context 10 -> bucket 16 = 2^4
  ASSERT_EQ(padded.n_tokens(), 4);
  EXPECT_EQ(padded.kv_slots[3], kNoKvSlot);
  EXPECT_EQ(padded.sequences[3].n_cached, 4);
  EXPECT_EQ(padded.logit_rows.size(), 4u);
  // A step of the graph's size is keyed as it is.
  b = decode_batch({5, 6, 7, 8}, {3, 9, 4, 1}, {{0}, {1}, {2}, {3}}, 16);
  ASSERT_TRUE(decode_graph_key(b, 64, padded));
  EXPECT_TRUE(padded.token_ids.empty());
  // Prefill rows, or a sequence without a logit row, run eagerly.
  b.sequences[0].n_tokens = 2;
  EXPECT_FALSE(decode_graph_key(b, 64, padded));
  b = decode_batch({5, 6}, {3, 9}, {{0}, {1}}, 16);
  b.logit_rows.pop_back();
  EXPECT_FALSE(decode_graph_key(b, 64, padded));
}

TEST(StepPadding, PaddedStepLeavesRealRowsAndCacheAsTheyWere) {
  set_num_threads(0);
  const LoadedModel m = load_model({test::data_path("tiny-v2-lite"), "auto", 0});
  RunnerOptions o;
  o.block_size = 16;
  o.kv_cache_bytes = int64_t(64) << 20;
  o.prefix_caching = false;
  o.backend.device = DeviceKind::device_cpu;
  const int64_t vocab = m.config.vocab_size;
  // Two runners fed the same prompts; one has its second step padded, then both run a third
  // step unpadded: equal logits there mean the padding rows wrote nothing into the cache.
  std::vector<std::vector<float>> third(2);
  for (int padded_run = 0; padded_run < 2; ++padded_run) {
    ModelRunner r(m.config, m.weights, o);
    const std::vector<std::vector<int32_t>> prompts{{3, 14, 15, 92, 65}, {35, 89}, {79, 32, 38, 46, 26, 43, 38}};
    std::vector<std::vector<int32_t>> tables;
    std::vector<int32_t> n_cached, next;
    for (const auto& p : prompts) {
      tables.push_back({*r.blocks().allocate()});
      ForwardBatch b;
      for (size_t i = 0; i < p.size(); ++i) {
        b.token_ids.push_back(p[i]);
        b.positions.push_back(int32_t(i));
        b.kv_slots.push_back(int64_t(tables.back()[0]) * 16 + int64_t(i));
      }
      b.sequences.push_back({0, int32_t(p.size()), 0, tables.back()});
      b.logit_rows = {int32_t(p.size()) - 1};
      std::vector<float> logits(static_cast<size_t>(vocab));
      r.forward(b, logits);
      n_cached.push_back(int32_t(p.size()));
      next.push_back(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    }
    for (int step = 0; step < 2; ++step) {
      const ForwardBatch b = decode_batch(next, n_cached, tables, 16);
      std::vector<float> logits(3 * size_t(vocab));
      if (padded_run && step == 0) {
        ForwardBatch padded;
        ASSERT_TRUE(decode_graph_key(b, 64, padded));
        ASSERT_EQ(padded.n_tokens(), 4);
        std::vector<float> all(4 * size_t(vocab));
        r.forward(padded, all);
        logits.assign(all.begin(), all.begin() + 3 * vocab);
        // The padding row repeats the last sequence: its logits are that row's.
        for (int64_t j = 0; j < vocab; ++j)
          EXPECT_NEAR(all[size_t(3 * vocab + j)], all[size_t(2 * vocab + j)], 1e-5) << j;
      } else {
        r.forward(b, logits);
      }
      if (step == 1) third[size_t(padded_run)] = logits;
      for (size_t s = 0; s < 3; ++s) {
        ++n_cached[s];
        auto row = logits.begin() + std::ptrdiff_t(s) * vocab;
        next[s] = int32_t(std::max_element(row, row + vocab) - row);
      }
    }
  }
  double worst = 0;
  for (size_t j = 0; j < third[0].size(); ++j) worst = std::max(worst, double(std::fabs(third[0][j] - third[1][j])));
  EXPECT_LE(worst, 1e-5);
  std::printf("padded vs unpadded, the step after: max |logit diff| %.3g\n", worst);
}

}  // namespace
}  // namespace dsi
