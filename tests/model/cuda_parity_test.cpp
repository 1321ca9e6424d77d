// The CUDA backend against the Hugging Face references of the four fixtures, and against
// itself (FP8 kept vs dequantised, paged decode vs prefill, batched vs alone, the engine's
// device sampler vs its host one). Label `cuda`:
// it needs a GPU (scripts/device/run.sh runs it on the device).
//
// Tolerances, from the dtype:
// - --dtype float32 (strict: no TF32): the CPU's bar, max |logit - reference| < 1e-3 and the
//   24 greedy tokens equal (tie bound 2e-3: two logits each off by < 1e-3 swap only there).
// - bf16 activations (f32 accumulation): every op rounds its output to bf16, relative error
//   u = 2^-8 (bf16's epsilon) each; a logit is a sum of products of a hidden state carrying a
//   few such roundings per layer with lm_head rows rounded once, errors of random sign, so its
//   error is a small multiple of u times the row's logit scale. Bound per row:
//   8 u max(1, max_j |ref_j|) (8 = roughly sqrt(#roundings) for 3 layers x ~20 ops, with 2x
//   headroom). Teacher forcing: where the GPU's top-1 differs from the reference's, the
//   reference's top-2 margin must be below 2 x that bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "../common/fixture_reference.h"
#include "../common/greedy_compare.h"
#include "../common/test_paths.h"
#include "core/aligned_buffer.h"
#include "engine/engine.h"
#include "engine/model_loader.h"
#include "engine/model_runner.h"
#include "model/safetensors.h"

namespace dsi {
namespace {

constexpr double kF32Tolerance = 1e-3;
constexpr double kBf16Eps = 1.0 / 256;  // 2^-8

using test::read_reference;
using test::Reference;

// FP8 routed experts widened to bf16 on the host (code x block scale, rounded once): the
// "dequantise, then bf16" twin of the FP8 path.
void dequantize_experts(ModelWeights& w, std::vector<AlignedBuffer>& keep) {
  for (auto& l : w.layers) {
    if (!l.moe) continue;
    for (auto& e : l.moe->experts)
      for (Weight* m : {&e.gate, &e.up, &e.down}) {
        if (!m->quantized()) continue;
        AlignedBuffer b(size_t(m->rows() * m->cols()) * 2);
        for (int64_t r = 0; r < m->rows(); ++r)
          for (int64_t c = 0; c < m->cols(); ++c) b.as<uint16_t>()[r * m->cols() + c] = f32_to_bf16(m->at(r, c));
        Weight d;
        d.w = Tensor::matrix(b.data(), DType::bf16, m->rows(), m->cols());
        w.n_bytes += uint64_t(b.size()) - uint64_t(m->rows() * m->cols()) - uint64_t(m->scale.numel()) * 4;
        *m = d;
        keep.push_back(std::move(b));
      }
  }
}

ModelRunner make(const std::string& model, const std::string& dtype, int block_size, bool dequantized = false,
                 bool enforce_eager = false) {
  LoadedModel m = load_model({test::data_path(model), "auto", 0});
  static std::vector<AlignedBuffer> keep;  // lives as long as any runner made here
  if (dequantized) dequantize_experts(m.weights, keep);
  RunnerOptions o;
  o.block_size = block_size;
  o.kv_cache_bytes = int64_t(64) << 20;
  o.prefix_caching = false;
  o.max_num_batched_tokens = 4096;
  o.max_num_seqs = 64;
  o.max_logit_rows = 4096;
  o.backend.device = DeviceKind::device_cuda;
  o.backend.dtype = dtype;
  o.backend.kv_cache_dtype = dtype;
  o.backend.enforce_eager = enforce_eager;
  return ModelRunner(std::move(m.config), std::move(m.weights), o);
}

std::vector<int32_t> blocks(ModelRunner& r, int64_t n_tokens) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < (n_tokens + r.block_size() - 1) / r.block_size(); ++i) t.push_back(*r.blocks().allocate());
  return t;
}

// One sequence's share of a batch: `tokens` at positions [n_cached, ...).
void add_sequence(ForwardBatch& b, std::span<const int32_t> tokens, int32_t n_cached, const std::vector<int32_t>& table,
                  int block_size, bool all_logits) {
  const int32_t first = int32_t(b.token_ids.size()), n = int32_t(tokens.size());
  for (int32_t i = 0; i < n; ++i) {
    const int32_t pos = n_cached + i;
    b.token_ids.push_back(tokens[size_t(i)]);
    b.positions.push_back(pos);
    b.kv_slots.push_back(int64_t(table[size_t(pos / block_size)]) * block_size + pos % block_size);
    if (all_logits || i == n - 1) b.logit_rows.push_back(first + i);
  }
  b.sequences.push_back({first, n, n_cached, table});
}

std::vector<float> run(ModelRunner& r, std::span<const int32_t> tokens, int32_t n_cached,
                       const std::vector<int32_t>& table, bool all_logits) {
  ForwardBatch b;
  add_sequence(b, tokens, n_cached, table, r.block_size(), all_logits);
  std::vector<float> logits(b.logit_rows.size() * size_t(r.config().vocab_size));
  r.forward(b, logits);
  return logits;
}

int32_t argmax(std::span<const float> row) { return int32_t(std::max_element(row.begin(), row.end()) - row.begin()); }

double bf16_bound(std::span<const float> ref_row) {
  float m = 1;
  for (float v : ref_row) m = std::max(m, std::fabs(v));
  return 8 * kBf16Eps * m;
}

// Greedy decode of 24 tokens through the paged cache, one token per step.
std::vector<int32_t> decode(ModelRunner& r, const Reference& ref) {
  auto table = blocks(r, int64_t(ref.input_ids.size() + ref.greedy_ids.size()));
  std::reverse(table.begin(), table.end());
  std::vector<int32_t> out, step = ref.input_ids;
  int32_t n_cached = 0;
  while (out.size() < ref.greedy_ids.size()) {
    auto logits = run(r, step, n_cached, table, false);
    n_cached += int32_t(step.size());
    out.push_back(argmax(logits));
    step = {out.back()};
  }
  r.blocks().release(table);
  return out;
}

class CudaParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaParity, Float32LogitsAndGreedyTokens) {
  const auto refs = read_reference(GetParam());
  ModelRunner r = make(GetParam(), "float32", 16);
  const size_t vocab = size_t(r.config().vocab_size);
  for (const auto& ref : refs) {
    auto table = blocks(r, int64_t(ref.input_ids.size()));
    auto logits = run(r, ref.input_ids, 0, table, true);
    r.blocks().release(table);
    ASSERT_EQ(logits.size(), ref.logits.size());
    double max_diff = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << "position " << i / vocab;
      max_diff = std::max(max_diff, double(std::fabs(logits[i] - ref.logits[i])));
    }
    std::printf("[ parity   ] %s f32 prompt %zu: max |diff| %.3g (bound %.0e)\n", GetParam().c_str(),
                ref.input_ids.size(), max_diff, kF32Tolerance);
    EXPECT_LT(max_diff, kF32Tolerance) << GetParam() << " prompt of " << ref.input_ids.size() << " tokens";
    const auto out = decode(r, ref);
    // The reference rows of the continuation: the CPU-exact forced pass is the fixture's own
    // greedy path, so tokens must match exactly unless the reference is within 2e-3 of a tie.
    std::vector<int32_t> forced = ref.input_ids;
    forced.insert(forced.end(), ref.greedy_ids.begin(), ref.greedy_ids.end() - 1);
    auto forced_table = blocks(r, int64_t(forced.size()));
    auto all = run(r, forced, 0, forced_table, true);
    r.blocks().release(forced_table);
    std::span<const float> path(all.data() + (ref.input_ids.size() - 1) * vocab, ref.greedy_ids.size() * vocab);
    auto cmp = test::compare_greedy_tie_aware(path, int64_t(vocab), ref.greedy_ids, out, float(2 * kF32Tolerance));
    EXPECT_TRUE(cmp.ok) << GetParam() << ": " << cmp.message;
  }
}

TEST_P(CudaParity, Bf16LogitsWithinTheDerivedBound) {
  const auto refs = read_reference(GetParam());
  ModelRunner r = make(GetParam(), "bfloat16", 16);
  const size_t vocab = size_t(r.config().vocab_size);
  for (const auto& ref : refs) {
    auto table = blocks(r, int64_t(ref.input_ids.size()));
    auto logits = run(r, ref.input_ids, 0, table, true);
    r.blocks().release(table);
    double worst_ratio = 0;
    int flips = 0;
    for (size_t p = 0; p < ref.input_ids.size(); ++p) {
      std::span<const float> got(logits.data() + p * vocab, vocab), want(ref.logits.data() + p * vocab, vocab);
      const double bound = bf16_bound(want);
      double diff = 0;
      for (size_t j = 0; j < vocab; ++j) {
        ASSERT_TRUE(std::isfinite(got[j])) << "position " << p;
        diff = std::max(diff, double(std::fabs(got[j] - want[j])));
      }
      worst_ratio = std::max(worst_ratio, diff / bound);
      EXPECT_LE(diff, bound) << GetParam() << " position " << p;
      // Teacher forcing: a differing top-1 only where the reference is within 2 x bound of a tie.
      const int32_t g = argmax(got), w = argmax(want);
      if (g != w) {
        ++flips;
        EXPECT_LT(want[size_t(w)] - want[size_t(g)], 2 * bound) << GetParam() << " position " << p;
      }
    }
    std::printf("[ parity   ] %s bf16 prompt %zu: max |diff| / bound %.3f, top-1 flips %d\n", GetParam().c_str(),
                ref.input_ids.size(), worst_ratio, flips);
  }
}

TEST_P(CudaParity, PagedDecodeEqualsPrefill) {
  const auto refs = read_reference(GetParam());
  const auto& ref = refs.back();
  ModelRunner r = make(GetParam(), "bfloat16", 16);
  const size_t vocab = size_t(r.config().vocab_size);
  // Prefill the first half, then decode the rest token by token; each decode row against the
  // same position of one prefill pass over the whole prompt.
  auto one_shot_table = blocks(r, int64_t(ref.input_ids.size()));
  const auto one_shot = run(r, ref.input_ids, 0, one_shot_table, true);
  r.blocks().release(one_shot_table);
  auto table = blocks(r, int64_t(ref.input_ids.size()));
  const size_t half = ref.input_ids.size() / 2;
  run(r, std::span(ref.input_ids).first(half), 0, table, false);
  double worst_ratio = 0;
  for (size_t p = half; p < ref.input_ids.size(); ++p) {
    const auto row = run(r, std::span(ref.input_ids).subspan(p, 1), int32_t(p), table, false);
    std::span<const float> want(one_shot.data() + p * vocab, vocab);
    const double bound = bf16_bound(want);
    double diff = 0;
    for (size_t j = 0; j < vocab; ++j) diff = std::max(diff, double(std::fabs(row[j] - want[j])));
    worst_ratio = std::max(worst_ratio, diff / bound);
    EXPECT_LE(diff, bound) << "position " << p;
  }
  r.blocks().release(table);
  std::printf("[ parity   ] %s decode vs prefill: max |diff| / bound %.3f\n", GetParam().c_str(), worst_ratio);
}

// A prompt prefilled in two chunks (as the scheduler's chunked prefill and a prefix-cache hit
// do): the second chunk's 80 new tokens attend to 70 cached ones, which takes the prefill
// attention by products (mla_prefill.h) with a cached prefix; its rows against one pass.
TEST_P(CudaParity, ChunkedPrefillEqualsOnePass) {
  const auto refs = read_reference(GetParam());
  const auto& ref = refs.back();
  ASSERT_GE(ref.input_ids.size(), 150u);
  ModelRunner r = make(GetParam(), "bfloat16", 16);
  const size_t vocab = size_t(r.config().vocab_size), split = 70, n = 150;
  const auto ids = std::span(ref.input_ids).first(n);
  auto one_shot_table = blocks(r, int64_t(n));
  const auto one_shot = run(r, ids, 0, one_shot_table, true);
  r.blocks().release(one_shot_table);
  auto table = blocks(r, int64_t(n));
  run(r, ids.first(split), 0, table, false);
  const auto second = run(r, ids.subspan(split), int32_t(split), table, true);
  r.blocks().release(table);
  double worst_ratio = 0;
  for (size_t p = split; p < n; ++p) {
    std::span<const float> want(one_shot.data() + p * vocab, vocab);
    const double bound = bf16_bound(want);
    double diff = 0;
    for (size_t j = 0; j < vocab; ++j) diff = std::max(diff, double(std::fabs(second[(p - split) * vocab + j] - want[j])));
    worst_ratio = std::max(worst_ratio, diff / bound);
    EXPECT_LE(diff, bound) << "position " << p;
  }
  std::printf("[ parity   ] %s chunked prefill vs one pass: max |diff| / bound %.3f\n", GetParam().c_str(), worst_ratio);
}

TEST_P(CudaParity, BatchOf64MixedSequencesEqualsEachAlone) {
  ModelRunner r = make(GetParam(), "bfloat16", 16);
  const int64_t vocab = r.config().vocab_size;
  constexpr int kSeqs = 64, kSteps = 6;
  std::mt19937 rng(7);
  std::vector<std::vector<int32_t>> prompts(kSeqs);
  for (auto& p : prompts) {
    p.resize(size_t(1 + rng() % 40));
    for (auto& t : p) t = int32_t(rng() % uint32_t(vocab));
  }
  // Alone: each sequence's greedy tokens and the logits rows they were chosen from.
  std::vector<std::vector<int32_t>> alone_tokens(kSeqs);
  std::vector<std::vector<float>> alone_rows(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    auto table = blocks(r, int64_t(prompts[size_t(s)].size()) + kSteps);
    std::vector<int32_t> step = prompts[size_t(s)];
    int32_t n_cached = 0;
    for (int k = 0; k < kSteps; ++k) {
      auto logits = run(r, step, n_cached, table, false);
      n_cached += int32_t(step.size());
      alone_rows[size_t(s)].insert(alone_rows[size_t(s)].end(), logits.begin(), logits.end());
      alone_tokens[size_t(s)].push_back(argmax(logits));
      step = {alone_tokens[size_t(s)].back()};
    }
    r.blocks().release(table);
  }
  // Together: the first step mixes prefills of every length; later steps are 64 decodes, and
  // the odd sequences join one step late, so prefill and decode rows share steps.
  std::vector<std::vector<int32_t>> tables(kSeqs), together(kSeqs);
  std::vector<int32_t> n_cached(kSeqs, 0);
  for (int s = 0; s < kSeqs; ++s) tables[size_t(s)] = blocks(r, int64_t(prompts[size_t(s)].size()) + kSteps);
  for (int k = 0; k < kSteps + 1; ++k) {
    ForwardBatch b;
    std::vector<int> in;
    for (int s = 0; s < kSeqs; ++s) {
      const int start = s % 2;
      if (k < start || int(together[size_t(s)].size()) == kSteps) continue;
      const std::vector<int32_t> step =
          together[size_t(s)].empty() ? prompts[size_t(s)] : std::vector<int32_t>{together[size_t(s)].back()};
      add_sequence(b, step, n_cached[size_t(s)], tables[size_t(s)], r.block_size(), false);
      n_cached[size_t(s)] += int32_t(step.size());
      in.push_back(s);
    }
    std::vector<float> logits(b.logit_rows.size() * size_t(vocab));
    r.forward(b, logits);
    for (size_t i = 0; i < in.size(); ++i)
      together[size_t(in[i])].push_back(argmax(std::span<const float>(logits.data() + i * size_t(vocab), size_t(vocab))));
  }
  for (int s = 0; s < kSeqs; ++s) {
    r.blocks().release(tables[size_t(s)]);
    const double bound = bf16_bound(alone_rows[size_t(s)]);
    auto cmp = test::compare_greedy_tie_aware(alone_rows[size_t(s)], vocab, alone_tokens[size_t(s)],
                                              together[size_t(s)], float(2 * bound));
    EXPECT_TRUE(cmp.ok) << GetParam() << " sequence " << s << ": " << cmp.message;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaParity,
                         ::testing::Values("tiny-v2-lite", "tiny-v3-fp8", "tiny-v2-group", "tiny-v3-odd"));

// The FP8 experts kept as codes + block scales (the grouped GEMM scales and rounds each weight
// to bf16 as it loads it) against the same experts dequantised to bf16 on the host first: the
// same products, so the logits agree to f32 summation-order noise, far inside the bf16 bound.
TEST(CudaFp8, KeptFp8EqualsDequantisedThenBf16) {
  for (const char* model : {"tiny-v3-fp8", "tiny-v3-odd"}) {
    const auto refs = read_reference(model);
    const auto& ref = refs.back();
    ModelRunner fp8 = make(model, "bfloat16", 16), bf16 = make(model, "bfloat16", 16, true);
    auto t1 = blocks(fp8, int64_t(ref.input_ids.size())), t2 = blocks(bf16, int64_t(ref.input_ids.size()));
    const auto a = run(fp8, ref.input_ids, 0, t1, true), b = run(bf16, ref.input_ids, 0, t2, true);
    const size_t vocab = size_t(fp8.config().vocab_size);
    double worst = 0;
    for (size_t p = 0; p < ref.input_ids.size(); ++p) {
      std::span<const float> x(a.data() + p * vocab, vocab), y(b.data() + p * vocab, vocab);
      double diff = 0;
      for (size_t j = 0; j < vocab; ++j) diff = std::max(diff, double(std::fabs(x[j] - y[j])));
      const double bound = bf16_bound(y);
      worst = std::max(worst, diff / bound);
      EXPECT_LE(diff, bound) << model << " position " << p;
    }
    std::printf("[ parity   ] %s FP8 kept vs dequantised: max |diff| / bf16 bound %.4f\n", model, worst);
  }
}

// Decode steps replayed as CUDA graphs (engine/step_padding.h: 3 sequences padded to 4, one
// graph per context bucket, captured on a key's second step) against the same steps launched
// op by op. The real rows see the same kernels either way (padding changes no kernel choice
// at 3 -> 4 rows), so the logits agree within the bf16 bound (in practice exactly) and the
// greedy tokens are equal. Both runners are fed the eager run's tokens (teacher forcing).
TEST(CudaGraphs, PaddedDecodeStepsReplayAsEager) {
  ModelRunner eager = make("tiny-v2-lite", "bfloat16", 16, false, true), graphs = make("tiny-v2-lite", "bfloat16", 16);
  const int64_t vocab = eager.config().vocab_size;
  constexpr int kSteps = 40;
  const std::vector<std::vector<int32_t>> prompts{{3, 14, 15, 92, 65}, std::vector<int32_t>(20, 7),
                                                  std::vector<int32_t>(33, 11)};
  std::vector<std::vector<int32_t>> t_eager, t_graphs;
  std::vector<int32_t> next, n_cached;
  for (const auto& p : prompts) {
    t_eager.push_back(blocks(eager, int64_t(p.size()) + kSteps));
    t_graphs.push_back(blocks(graphs, int64_t(p.size()) + kSteps));
    run(graphs, p, 0, t_graphs.back(), false);
    next.push_back(argmax(run(eager, p, 0, t_eager.back(), false)));
    n_cached.push_back(int32_t(p.size()));
  }
  double worst_ratio = 0;
  int exact_steps = 0;
  for (int k = 0; k < kSteps; ++k) {
    ForwardBatch be, bg;
    for (size_t s = 0; s < prompts.size(); ++s) {
      add_sequence(be, std::span(&next[s], 1), n_cached[s], t_eager[s], 16, false);
      add_sequence(bg, std::span(&next[s], 1), n_cached[s], t_graphs[s], 16, false);
    }
    std::vector<float> le(3 * size_t(vocab)), lg(3 * size_t(vocab));
    eager.forward(be, le);
    graphs.forward(bg, lg);
    exact_steps += le == lg;
    for (size_t s = 0; s < prompts.size(); ++s) {
      std::span<const float> want(le.data() + s * size_t(vocab), size_t(vocab)), got(lg.data() + s * size_t(vocab), size_t(vocab));
      const double bound = bf16_bound(want);
      double diff = 0;
      for (size_t j = 0; j < size_t(vocab); ++j) diff = std::max(diff, double(std::fabs(got[j] - want[j])));
      worst_ratio = std::max(worst_ratio, diff / bound);
      EXPECT_LE(diff, bound) << "step " << k << " sequence " << s;
      EXPECT_EQ(argmax(got), argmax(want)) << "step " << k << " sequence " << s;
      next[s] = argmax(want);
      ++n_cached[s];
    }
  }
  for (auto& t : t_eager) eager.blocks().release(t);
  for (auto& t : t_graphs) graphs.blocks().release(t);
  EXPECT_EQ(eager.backend().n_recorded(), 0);
  // The longest context grows from 34 to 73: buckets 64 and 128, each captured on its second step.
  EXPECT_GE(graphs.backend().n_recorded(), 2);
  std::printf("[ graphs   ] %lld graphs; replay vs eager: max |diff| / bound %.3f, %d of %d steps bit-identical\n",
              static_cast<long long>(graphs.backend().n_recorded()), worst_ratio, exact_steps, kSteps);
}

// Everything a step uses was allocated at startup (the premise of sizing the KV cache by
// --gpu-memory-utilization after the workspace): a second step of max_num_batched_tokens tokens
// leaves the device's free memory unchanged. The first may take a few MiB: CUDA loads kernel
// code on first use (lazy module loading), cuBLASLt's included, in 2 MiB pages; that is code,
// bounded by the kernels a step can reach, and the utilization margin holds it.
TEST(CudaMemory, AFullStepAllocatesNothing) {
  ModelRunner r = make("tiny-v2-lite", "bfloat16", 16);
  const int64_t n = r.step_limits().max_tokens;
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = int32_t(i % r.config().vocab_size);
  auto table = blocks(r, n);
  const int64_t before = r.backend().device_memory().free;
  run(r, tokens, 0, table, false);
  r.backend().synchronize();
  const int64_t after_first = r.backend().device_memory().free;
  run(r, tokens, 0, table, false);
  r.backend().synchronize();
  const int64_t after_second = r.backend().device_memory().free;
  std::printf("[ memory   ] first full step: %.1f MiB of kernel code loaded; second: %lld bytes\n",
              double(before - after_first) / double(1 << 20), static_cast<long long>(after_first - after_second));
  EXPECT_LE(before - after_first, int64_t(32) << 20) << "more than kernel code";
  EXPECT_EQ(after_second, after_first);
  r.blocks().release(table);
}

// The engine's device sampler (engine/device_sampling.h) against its host sampler on the same
// runner: the same requests, seeds and sampling parameters, one engine sampling on the GPU and
// one on the CPU. float32 logits are bit-identical either way (the host path copies the same
// device rows), and both samplers share backend/sampling.h's arithmetic, so every token must be
// equal; logprobs agree within 2^-23 |logprob| + 2e-11 (cuda_sampling_test.cpp's bound: the
// log-sum-exp's double sums run in another order). A request with allowed_token_ids makes its
// steps sample on the host (suits_device_sampling); it ends after 3 tokens, the rest go on.
struct EngineRun {
  std::map<size_t, std::vector<GeneratedToken>> tokens;  // by request index
  int64_t device_sample_calls = 0;
};

EngineRun run_engine(ModelRunner& r, bool device_sampling) {
  EngineOptions eo;
  eo.max_num_seqs = 16;
  eo.max_num_batched_tokens = 512;
  eo.device_sampling = device_sampling;
  Engine e(r, eo);
  EngineRun out;
  std::vector<SamplingParams> params;
  auto add = [&](SamplingParams p) { params.push_back(std::move(p)); };
  SamplingParams greedy;
  greedy.temperature = 0;
  add(greedy);
  SamplingParams topk;
  topk.temperature = 0.8;
  topk.top_k = 20;
  topk.seed = 1;
  add(topk);
  SamplingParams nucleus;
  nucleus.temperature = 1.3;
  nucleus.top_p = 0.9;
  nucleus.min_p = 0.02;
  nucleus.seed = 2;
  nucleus.logprobs = 5;
  add(nucleus);
  SamplingParams penalised;
  penalised.temperature = 0.7;
  penalised.presence_penalty = 0.5;
  penalised.frequency_penalty = 0.3;
  penalised.repetition_penalty = 1.2;
  penalised.seed = 3;
  penalised.logprobs = 0;
  add(penalised);
  SamplingParams rules = greedy;
  rules.min_tokens = 6;
  rules.stop_token_ids = {7, 11};
  rules.logit_bias = {{3, 5.0f}, {40, -100.0f}};
  rules.bad_words_ids = {{5, 9}, {12}};
  add(rules);
  SamplingParams allowed = nucleus;
  allowed.allowed_token_ids = {2, 3, 5, 8, 13, 21, 34};
  allowed.max_tokens = 3;
  add(allowed);
  std::mt19937 rng(77);
  for (size_t i = 0; i < params.size() * 2; ++i) {
    EngineRequest req;
    std::uniform_int_distribution<int32_t> id(1, int32_t(r.config().vocab_size) - 1);
    for (int t = 0; t < 10 + int(i) * 7; ++t) req.prompt.push_back(id(rng));
    req.sampling = params[i % params.size()];
    if (req.sampling.max_tokens == 16) req.sampling.max_tokens = 24;
    if (req.sampling.seed) req.sampling.seed = *req.sampling.seed + 100 * i;
    req.on_output = [&out, i](RequestOutput&& o) {
      for (auto& t : o.tokens) out.tokens[i].push_back(t);
    };
    e.submit(std::move(req));
  }
  r.backend().begin_op_timing();
  for (int guard = 0; e.has_work() && guard < 10000; ++guard) e.step();
  for (const auto& op : r.backend().end_op_timing())
    if (op.op == "sample") out.device_sample_calls = op.calls;
  return out;
}

TEST(CudaSampler, EngineTokensEqualOnTheDeviceAndOnTheHost) {
  ModelRunner r = make("tiny-v3-fp8", "float32", 16);
  ASSERT_TRUE(r.samples_on_device());
  const EngineRun gpu = run_engine(r, true), cpu = run_engine(r, false);
  std::printf("[ sampler  ] %zu requests; %lld device sampler launches; host run %lld\n", gpu.tokens.size(),
              static_cast<long long>(gpu.device_sample_calls), static_cast<long long>(cpu.device_sample_calls));
  // About 24 steps; the two allowed_token_ids requests keep their ~4 steps on the host.
  EXPECT_GE(gpu.device_sample_calls, 12);
  EXPECT_EQ(cpu.device_sample_calls, 0);
  ASSERT_EQ(gpu.tokens.size(), cpu.tokens.size());
  auto c = cpu.tokens.begin();
  for (auto g = gpu.tokens.begin(); g != gpu.tokens.end(); ++g, ++c) {
    ASSERT_EQ(g->second.size(), c->second.size()) << "request " << g->first;
    for (size_t i = 0; i < g->second.size(); ++i) {
      const GeneratedToken &a = g->second[i], &b = c->second[i];
      ASSERT_EQ(a.token, b.token) << "request " << g->first << " token " << i;
      EXPECT_NEAR(a.logprob, b.logprob, std::ldexp(std::fabs(b.logprob), -23) + 2e-11) << "request " << g->first;
      ASSERT_EQ(a.top.size(), b.top.size());
      for (size_t j = 0; j < a.top.size(); ++j) {
        EXPECT_EQ(a.top[j].token, b.top[j].token) << "request " << g->first << " token " << i << " top " << j;
        EXPECT_NEAR(a.top[j].logprob, b.top[j].logprob, std::ldexp(std::fabs(b.top[j].logprob), -23) + 2e-11);
      }
    }
  }
}

}  // namespace
}  // namespace dsi
