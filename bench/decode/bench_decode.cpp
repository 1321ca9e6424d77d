// Decode speed of the CPU engine on a ~1B-parameter DeepSeek-V3-shaped model with random
// weights, next to a memory-bandwidth roofline measured in the same run.
//
// Decoding is bound by reading weights: a step of B sequences reads every dense weight once
// (attention, dense MLP, shared experts, router, lm_head), the routed experts its tokens chose,
// and each sequence's KV cache. The roofline is those bytes over the measured read bandwidth.
//
// Prefill speed is timed too: steps of --prefill-seqs prompts of --prefill-len tokens each, with
// their FLOP rate (2 x active parameters per token plus causal attention, prefill_flops) and,
// given --peak-tflops (the bf16 GEMM peak cuda_gemm_bench measured in the same run), its share.
//
//   bench_decode [--config FILE] [--fp8] [--threads N] [--context 256] [--steps 32]
//                [--batches 1,16] [--prefill-len 512] [--prefill-seqs 4]
//                [--device auto|cpu|cuda] [--dtype auto|float32|bfloat16] [--bandwidth-gbps B]
//                [--peak-tflops T] [--profile] [--enforce-eager]
// --bandwidth-gbps replaces the host read bandwidth in the roofline (on a GPU: the device copy
// bandwidth measured by cuda_gemm_bench in the same run, scripts/device/run.sh).
// --profile: one more decode step per batch and one more prefill step with the backend's op
// timing on (Backend::begin_op_timing): device time per op kind, and the step's wall time minus
// their sum (what launching costs). The CPU backend has no op timing.
// --enforce-eager: decode steps launched op by op, not replayed as CUDA graphs (the default on a
// GPU), to compare the two in one run.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <thread>

#include "core/aligned_buffer.h"
#include "core/log.h"
#include "core/threads.h"
#include "engine/device_sampling.h"
#include "engine/model_runner.h"
#include "model/weight_map.h"

namespace dsi {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes per second of a multi-threaded sequential read of a buffer much larger than the caches.
double measure_read_bandwidth() {
  const size_t n = size_t(1) << 28;  // 1 GiB of floats
  AlignedBuffer buf(n * 4);
  float* p = buf.as<float>();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) p[i] = float(i & 1023);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    float total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; i += 16) {
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (size_t j = 0; j < 16; ++j) s += p[i + j];
      total += s;
    }
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (total == -1) std::printf(" ");  // keeps the sum alive
    best = std::max(best, double(n * 4) / secs);
  }
  return best;
}

// Float32 multiply-add throughput of all threads (FLOP/s), from independent FMA chains that
// stay in registers: the compute roof a batched decode step can reach.
double measure_peak_flops() {
  const int64_t iters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#if defined(__FMA__)
      __m256 acc[10];
      const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
      for (auto& x : acc) x = _mm256_set1_ps(1.0f);
      for (int64_t i = 0; i < iters; ++i)
        for (auto& x : acc) x = _mm256_fmadd_ps(x, a, b);
      for (auto& x : acc) sink += _mm256_cvtss_f32(x);
#else
      float acc[80];
      for (auto& x : acc) x = 1.0f;
      for (int64_t i = 0; i < iters; ++i)
        for (auto& x : acc) x = x * 0.999999f + 1e-7f;
      for (auto& x : acc) sink += x;
#endif
    }
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (sink == -1) std::printf(" ");
    best = std::max(best, double(iters) * 80 * 2 * num_threads() / secs);
  }
  return best;
}

int64_t weight_bytes(const Weight& w) {
  return w.w.numel() * int64_t(dtype_size(w.w.dtype)) + (w.quantized() ? w.scale.numel() * 4 : 0);
}

int64_t weight_params(const Weight& w) { return w.w.numel(); }

// Sum of `measure` (bytes or parameters) over the weights one decode step reads with
// `experts_used[l]` distinct routed experts in layer l.
int64_t step_weight_sum(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& experts_used,
                        int64_t (*measure)(const Weight&)) {
  int64_t sum = measure(w.lm_head);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = w.layers[size_t(l)];
    const auto& a = lw.attn;
    for (const Weight* x : {a.q_proj ? &*a.q_proj : nullptr, a.q_a ? &*a.q_a : nullptr, a.q_b ? &*a.q_b : nullptr,
                            &a.kv_a, &a.kv_b, &a.o})
      if (x) sum += measure(*x);
    auto mlp = [&](const MlpWeights& m) { return measure(m.gate) + measure(m.up) + measure(m.down); };
    if (lw.mlp) sum += mlp(*lw.mlp);
    if (lw.moe) {
      sum += measure(lw.moe->router);
      if (lw.moe->shared) sum += mlp(*lw.moe->shared);
      const auto& e = lw.moe->routed;
      sum += experts_used[size_t(l)] * (measure(e.gate.experts[0]) + measure(e.up.experts[0]) + measure(e.down.experts[0]));
    }
  }
  return sum;
}

// Multiply-adds one token needs: every dense weight, its k experts, and attention over ctx
// positions in latent space (scores and weighted sum, 2 * (r + dr) + r per head and position).
double token_flops(const ModelConfig& c, const ModelWeights& w, double ctx) {
  std::vector<int> k(size_t(c.n_layers), c.num_experts_per_tok);
  const double params = double(step_weight_sum(c, w, k, weight_params));
  const double attention = double(c.n_layers) * c.n_heads * ctx * double(3 * c.kv_lora_rank + c.qk_rope_head_dim);
  return 2 * (params + attention);
}

// FLOPs of one prefill step of n_seqs prompts of len tokens: 2 x the active parameters per token
// (lm_head only on each prompt's last token, whose logits are wanted; kv_b_proj on every token,
// which expands its keys and values) plus causal attention over the expanded heads, 2 x (qk + v
// head dims) per query-key pair and head.
double prefill_flops(const ModelConfig& c, const ModelWeights& w, int len, int n_seqs) {
  std::vector<int> k(size_t(c.n_layers), c.num_experts_per_tok);
  const double params = double(step_weight_sum(c, w, k, weight_params));
  const double lm_head = double(weight_params(w.lm_head));
  const double pairs = double(len) * (len + 1) / 2;
  const double attention = 2.0 * double(c.n_layers) * c.n_heads * pairs * double(c.qk_head_dim() + c.v_head_dim);
  return n_seqs * (2 * (params - lm_head) * len + 2 * lm_head + attention);
}

struct Result {
  double tokens_per_second;
  double step_ms;
  double memory_roof_tokens_per_second;
  double compute_roof_tokens_per_second;
  std::vector<OpTiming> ops;  // --profile: one more step's device time per op kind
};

Result run_batch(ModelRunner& runner, int batch, int context, int steps, double bandwidth, double flops,
                 bool profile) {
  const auto& c = runner.config();
  const int bs = runner.block_size();
  const int total = context + steps + 3;  // + the warm-up steps and the op-timed one
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
  for (auto& t : tables)
    for (int i = 0; i < (total + bs - 1) / bs; ++i) t.push_back(*runner.blocks().allocate());
  std::vector<int32_t> last(static_cast<size_t>(batch));
  // Prefill each sequence's context (not timed): different prompts, so experts differ.
  for (int s = 0; s < batch; ++s) {
    ForwardBatch b;
    for (int i = 0; i < context; ++i) {
      b.token_ids.push_back(int32_t((s * 7919 + i * 104729) % c.vocab_size));
      b.positions.push_back(i);
      b.kv_slots.push_back(int64_t(tables[size_t(s)][size_t(i / bs)]) * bs + i % bs);
    }
    b.logit_rows = {context - 1};
    b.sequences.push_back({0, context, 0, tables[size_t(s)]});
    const std::span<float> logits = runner.host_logits(1);
    runner.forward(b, logits);
    last[size_t(s)] = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  double secs = 0;
  std::vector<OpTiming> ops;
  const std::vector<sampling::SamplingRow> greedy_rows(static_cast<size_t>(batch), plain_greedy_row(0));
  std::vector<sampling::SamplingResult> results(static_cast<size_t>(batch));
  // Two untimed steps first: a decode graph runs eagerly on its key's first step and is
  // captured on the second (step_padding.h); then the timed steps, then with --profile one
  // op-timed step (eager: each op between its own events).
  constexpr int kWarmup = 2;
  for (int step = -kWarmup; step < steps + (profile ? 1 : 0); ++step) {
    const bool timed_ops = step == steps;  // the extra step: op timing, not counted in secs
    ForwardBatch b;
    const int pos = context + kWarmup + step;
    for (int s = 0; s < batch; ++s) {
      b.token_ids.push_back(last[size_t(s)]);
      b.positions.push_back(pos);
      b.kv_slots.push_back(int64_t(tables[size_t(s)][size_t(pos / bs)]) * bs + pos % bs);
      b.logit_rows.push_back(s);
      b.sequences.push_back({s, 1, pos, tables[size_t(s)]});
    }
    // Greedy tokens as the server chooses them: on the device sampler where the backend has
    // one (the logits stay on the GPU), else from the host logits.
    const bool on_device = runner.samples_on_device();
    const std::span<float> logits = on_device ? std::span<float>{} : runner.host_logits(batch);
    auto t0 = Clock::now();
    if (timed_ops) runner.backend().begin_op_timing();
    if (on_device) {
      runner.forward_on_device(b);
      runner.sample_on_device(greedy_rows, {}, results);
      for (int s = 0; s < batch; ++s) last[size_t(s)] = results[size_t(s)].token;
    } else {
      runner.forward(b, logits);
    }
    if (timed_ops) ops = runner.backend().end_op_timing();
    else if (step >= 0) secs += std::chrono::duration<double>(Clock::now() - t0).count();
    for (int s = 0; s < batch && !on_device; ++s) {
      auto row = logits.begin() + std::ptrdiff_t(s) * c.vocab_size;
      last[size_t(s)] = int32_t(std::max_element(row, row + c.vocab_size) - row);
    }
  }
  for (auto& t : tables) runner.blocks().release(t);
  // Distinct experts a batch of independent tokens touches per layer, in expectation:
  // E * (1 - (1 - k/E)^B).
  const double E = c.n_routed_experts, k = c.num_experts_per_tok;
  const int used = int(std::lround(E * (1 - std::pow(1 - k / E, batch))));
  std::vector<int> experts_used(size_t(c.n_layers), used);
  const double kv_bytes = double(batch) * (context + steps / 2.0) * double(runner.kv_bytes_per_token());
  const double bytes = double(step_weight_sum(c, runner.model().weights(), experts_used, weight_bytes)) + kv_bytes;
  const double per_token = token_flops(c, runner.model().weights(), context + steps / 2.0);
  return {batch * steps / secs, 1000 * secs / steps, batch * bandwidth / bytes, flops / per_token, std::move(ops)};
}

// The op timing of one step: device microseconds per op kind, largest first, and what the
// step's wall time has beyond them.
void print_ops(const std::string& what, double step_ms, std::vector<OpTiming> ops) {
  if (ops.empty()) {
    std::printf("%s: this backend has no op timing\n", what.c_str());
    return;
  }
  std::sort(ops.begin(), ops.end(), [](const OpTiming& a, const OpTiming& b) { return a.seconds > b.seconds; });
  double device = 0;
  for (const auto& o : ops) device += o.seconds;
  std::printf("%s: device time per op (the step took %.3f ms of wall time)\n", what.c_str(), step_ms);
  std::printf("  %-20s %6s %10s %8s %7s\n", "op", "calls", "total us", "us/call", "share");
  for (const auto& o : ops)
    std::printf("  %-20s %6lld %10.1f %8.2f %6.1f%%\n", o.op.c_str(), static_cast<long long>(o.calls), o.seconds * 1e6,
                o.seconds * 1e6 / double(o.calls), 100 * o.seconds / device);
  std::printf("  %-20s %6s %10.1f\n", "device total", "", device * 1e6);
  std::printf("  %-20s %6s %10.1f   (wall %.1f us - device %.1f us: launching and host work)\n\n", "not on device", "",
              std::max(0.0, step_ms * 1e3 - device * 1e6), step_ms * 1e3, device * 1e6);
}

struct PrefillResult {
  double tokens_per_second = 0;
  double step_ms = 0;         // of the best step
  std::vector<OpTiming> ops;  // --profile: one more step's device time per op kind
};

// Prompt tokens per second: steps of n_seqs fresh prompts of len tokens, best of 3 (and with
// profile a fourth, op-timed step).
PrefillResult run_prefill(ModelRunner& runner, int len, int n_seqs, bool profile) {
  const auto& c = runner.config();
  const int bs = runner.block_size();
  PrefillResult r;
  const std::span<float> logits = runner.host_logits(n_seqs);
  for (int rep = 0; rep < 3 + (profile ? 1 : 0); ++rep) {
    const bool timed_ops = rep == 3;
    ForwardBatch b;
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(n_seqs));
    for (int s = 0; s < n_seqs; ++s) {
      auto& t = tables[size_t(s)];
      for (int i = 0; i < (len + bs - 1) / bs; ++i) t.push_back(*runner.blocks().allocate());
      const int32_t first = int32_t(b.token_ids.size());
      for (int i = 0; i < len; ++i) {
        b.token_ids.push_back(int32_t((rep * 31 + s * 7919 + i * 104729) % c.vocab_size));
        b.positions.push_back(i);
        b.kv_slots.push_back(int64_t(t[size_t(i / bs)]) * bs + i % bs);
      }
      b.logit_rows.push_back(first + len - 1);
      b.sequences.push_back({first, len, 0, t});
    }
    auto t0 = Clock::now();
    if (timed_ops) runner.backend().begin_op_timing();
    runner.forward(b, logits);
    if (timed_ops) r.ops = runner.backend().end_op_timing();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!timed_ops && double(len) * n_seqs / secs > r.tokens_per_second) {
      r.tokens_per_second = double(len) * n_seqs / secs;
      r.step_ms = 1000 * secs;
    }
    for (auto& t : tables) runner.blocks().release(t);
  }
  return r;
}

}  // namespace
}  // namespace dsi

int main(int argc, char** argv) {
  using namespace dsi;
  std::string config_path = DSINFER_BENCH_DECODE_CONFIG;
  bool fp8 = false, profile = false;
  int threads = 0, context = 256, steps = 32, prefill_len = 512, prefill_seqs = 4;
  double bandwidth_override = 0, peak_tflops = 0;
  std::vector<int> batches{1, 16};
  BackendOptions backend;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--config") config_path = next();
    else if (a == "--fp8") fp8 = true;
    else if (a == "--profile") profile = true;
    else if (a == "--enforce-eager") backend.enforce_eager = true;
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--context") context = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--device") backend.device = parse_device(next());
    else if (a == "--dtype") backend.dtype = next();
    else if (a == "--prefill-len") prefill_len = std::stoi(next());
    else if (a == "--prefill-seqs") prefill_seqs = std::stoi(next());
    else if (a == "--bandwidth-gbps") bandwidth_override = std::stod(next()) * 1e9;
    else if (a == "--peak-tflops") peak_tflops = std::stod(next());
    else if (a == "--batches") {
      batches.clear();
      std::string list = next();
      for (size_t at = 0; at < list.size();) {
        size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        batches.push_back(std::stoi(list.substr(at, comma - at)));
        at = comma + 1;
      }
    }
    else {
      std::fprintf(stderr,
                   "usage: bench_decode [--config FILE] [--fp8] [--threads N] [--context N] [--steps N] "
                   "[--batches 1,16] [--prefill-len N] [--prefill-seqs N] [--device auto|cpu|cuda] "
                   "[--dtype auto|float32|bfloat16] [--bandwidth-gbps B] [--peak-tflops T] [--profile] [--enforce-eager]\n");
      return 2;
    }
  }
  init_logging("warn");
  set_num_threads(threads);
  ModelConfig c = ModelConfig::from_file(config_path);
  if (fp8) c.quantization = Fp8Quantization{};
  ModelWeights w = make_dummy_weights(c, 1);
  int64_t n_params = 0;
  for (auto& s : weight_table(c)) n_params += s.shape.size() == 2 ? s.shape[0] * s.shape[1] : s.shape[0];
  std::printf("model: %s, %.2fB parameters, %s weights, %.2f GiB\n", config_path.c_str(), double(n_params) / 1e9,
              fp8 ? "FP8 (128x128 blocks)" : "BF16", double(w.n_bytes) / double(1ull << 30));
  std::printf("machine: %u hardware threads, %d used\n", std::thread::hardware_concurrency(), num_threads());
  const double bw = bandwidth_override > 0 ? bandwidth_override : measure_read_bandwidth();
  const double flops = measure_peak_flops();
  std::printf("%s bandwidth: %.1f GB/s, host float32 FMA peak: %.1f GFLOP/s\n\n",
              bandwidth_override > 0 ? "given (--bandwidth-gbps)" : "measured host read", bw / 1e9, flops / 1e9);
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  RunnerOptions o;
  o.block_size = 64;
  o.prefix_caching = false;
  // Room for every batch's sequences and the prefill prompts at once.
  const int64_t cache_tokens = std::max<int64_t>(int64_t(max_batch) * (context + steps + 64),
                                                 int64_t(prefill_seqs) * (prefill_len + 64));
  o.max_kv_blocks = cache_tokens / o.block_size + 1;
  o.kv_cache_bytes = o.max_kv_blocks * o.block_size * c.kv_cache_dim() * 4 * c.n_layers;
  o.backend = backend;
  o.max_num_batched_tokens = std::max({context, max_batch, prefill_len * prefill_seqs});
  o.max_num_seqs = std::max({max_batch, prefill_seqs, 1});
  ModelRunner runner(c, std::move(w), o);
  const auto& mem = runner.memory();
  std::printf("backend: %s, %s activations; ready %.2f s after loading; memory: weights %.2f GiB, workspace %.2f GiB, "
              "KV cache %.2f GiB, device %.2f GiB free of %.2f\n\n",
              runner.backend().name().c_str(), std::string(dtype_name(runner.backend().activation_dtype())).c_str(),
              runner.ready_seconds(), double(mem.weight_bytes) / double(1 << 30),
              double(mem.workspace_bytes) / double(1 << 30), double(mem.kv_cache_bytes) / double(1 << 30),
              double(mem.device_free_bytes) / double(1 << 30), double(mem.device_total_bytes) / double(1 << 30));
  if (prefill_len > 0 && prefill_seqs > 0) {
    auto r = run_prefill(runner, prefill_len, prefill_seqs, profile);
    const double tflops = prefill_flops(c, runner.model().weights(), prefill_len, prefill_seqs) / (r.step_ms * 1e-3) / 1e12;
    std::printf("prefill: %d prompts of %d tokens per step: %.1f tokens/s, %.3f ms a step, %.1f TFLOP/s", prefill_seqs,
                prefill_len, r.tokens_per_second, r.step_ms, tflops);
    if (peak_tflops > 0) std::printf(" = %.1f%% of the %.0f TFLOP/s peak given", 100 * tflops / peak_tflops, peak_tflops);
    std::printf("\n\n");
    if (profile) {
      print_ops("prefill step (" + std::to_string(prefill_seqs) + " x " + std::to_string(prefill_len) + " tokens)",
                r.step_ms, std::move(r.ops));
    }
  }
  // The memory roof (weights + KV read once per step) is the bound the issue asks about; the
  // compute roof (weights' FMAs per token) is printed too because batch 16 on two cores is
  // bound by it instead.
  std::printf("%6s %9s %10s %14s %7s %15s %7s\n", "batch", "step ms", "tokens/s", "memory roof", "ratio",
              "compute roof", "ratio");
  std::vector<std::pair<int, Result>> results;
  for (int batch : batches) {
    auto r = run_batch(runner, batch, context, steps, bw, flops, profile);
    std::printf("%6d %9.2f %10.1f %14.1f %6.0f%% %15.1f %6.0f%%\n", batch, r.step_ms, r.tokens_per_second,
                r.memory_roof_tokens_per_second, 100 * r.tokens_per_second / r.memory_roof_tokens_per_second,
                r.compute_roof_tokens_per_second, 100 * r.tokens_per_second / r.compute_roof_tokens_per_second);
    results.emplace_back(batch, std::move(r));
  }
  if (runner.backend().records_steps())
    std::printf("decode steps replayed as CUDA graphs: %lld captured\n",
                static_cast<long long>(runner.backend().n_recorded()));
  if (profile) {
    std::printf("\n");
    for (auto& [batch, r] : results)
      print_ops("batch " + std::to_string(batch) + ", one decode step", r.step_ms, std::move(r.ops));
  }
  return 0;
}
