// bench_gemm: speed of the CPU GEMM (dsi::cpu::linear, linear_batch) on the shapes of a
// ~1B-parameter DeepSeek-like model, per weight dtype, next to two rooflines measured in the
// same run, right before each case (so that other load on a shared machine hits both alike):
//   - memory read bandwidth: every thread streams its share of a buffer (4 times the last-level
//     cache, within [512 MiB, 2 GiB], like the weights below); the bound for
//     m = 1, where each weight byte is read once per token;
//   - peak FMA throughput: multiply-adds on registers only; the bound for large m.
// Weights rotate through enough copies to exceed the last-level cache many times over, as the
// layers of a model do, so every call reads its weight from memory. Every figure is the best
// of several rounds.
//
// Usage: bench_gemm [--threads N] [--seconds S] [--repeat R] [--dtype BF16 ...] [--m 1 16 128]
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "backend/cpu/gemm.h"
#include "core/dtype.h"
#include "core/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string first_word_of_file(const char* path) {
  std::ifstream in(path);
  std::string word;
  in >> word;
  return in ? word : "?";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// The read roofline: every thread sums its static share of `buf` as 8 interleaved streams (as
// many as the dot kernel reads weight rows at once; one stream alone leaves bandwidth unused on
// some CPUs); best of 3 passes.
double read_bandwidth_gbs(const std::vector<uint64_t>& buf) {
  constexpr int kStreams = 8;
  double best = 0;
  uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
    {
      const size_t n_threads = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
      const size_t share = buf.size() / n_threads / kStreams * kStreams, len = share / kStreams;
      const uint64_t* base = buf.data() + t * share;
      uint64_t sum[kStreams] = {};
      for (size_t i = 0; i < len; ++i)
        for (int s = 0; s < kStreams; ++s) sum[s] += base[size_t(s) * len + i];
      for (uint64_t v : sum) total += v;
    }
    best = std::max(best, double(buf.size()) * 8 / seconds_since(t0) / 1e9);
    sink += total;
  }
  if (sink == 42) std::printf(" ");  // keeps the sums alive
  return best;
}

// The compute roofline: 12 independent FMA chains per thread cover the FMA latency; best of 3.
double peak_gflops() {
  const int64_t n_iter = 4'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double total_flops = 0;
    auto t0 = Clock::now();
#pragma omp parallel reduction(+ : total_flops)
    {
#if defined(__AVX2__) && defined(__FMA__)
      __m256 acc[12];
      for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i));
      const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
      for (int64_t it = 0; it < n_iter; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
      __m256 s = acc[0];
      for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
      if (_mm256_cvtss_f32(s) == 42.0f) std::printf(" ");
      total_flops += double(n_iter) * 12 * 8 * 2;
#else
      float acc[12];
      for (int i = 0; i < 12; ++i) acc[i] = float(i);
      for (int64_t it = 0; it < n_iter; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
      if (acc[0] + acc[11] == 42.0f) std::printf(" ");
      total_flops += double(n_iter) * 12 * 2;
#endif
    }
    best = std::max(best, total_flops / seconds_since(t0) / 1e9);
  }
  return best;
}

// A weight like a checkpoint's: normal values (std 0.02); fp8 quantised per 128x128 block with
// scale = block max / 448, as DeepSeek-V3's weight_scale_inv.
struct WeightCopy {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  dsi::Weight w;
};

WeightCopy make_weight(dsi::DType dt, int64_t n, int64_t k, std::mt19937& rng) {
  WeightCopy c;
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(size_t(n * k));
  for (float& f : v) f = normal(rng);
  c.bytes.resize(v.size() * dsi::dtype_size(dt));
  if (dt == dsi::DType::f8_e4m3) {
    const int64_t sr = (n + 127) / 128, sc = (k + 127) / 128;
    c.scales.assign(size_t(sr * sc), 0.0f);
    auto scale_of = [&](int64_t r, int64_t j) -> float& { return c.scales[size_t(r / 128 * sc + j / 128)]; };
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j)
        scale_of(r, j) = std::max(scale_of(r, j), std::fabs(v[size_t(r * k + j)]) / 448.0f);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j)
        c.bytes[size_t(r * k + j)] = dsi::f32_to_fp8_e4m3(v[size_t(r * k + j)] / scale_of(r, j));
    c.w.scale = dsi::Tensor::matrix(c.scales.data(), dsi::DType::f32, sr, sc);
  } else {
    for (size_t i = 0; i < v.size(); ++i) {
      if (dt == dsi::DType::f32) {
        std::memcpy(c.bytes.data() + 4 * i, &v[i], 4);
      } else {
        // F16 gets the bf16 bits' sign and mantissa with a normal exponent: values of the same
        // cost to widen.
        uint16_t h = dsi::f32_to_bf16(v[i]);
        if (dt == dsi::DType::f16) h = uint16_t(0x2000 | (h & 0x83ff));
        std::memcpy(c.bytes.data() + 2 * i, &h, 2);
      }
    }
  }
  c.w.w = dsi::Tensor::matrix(c.bytes.data(), dt, n, k);
  return c;
}

WeightCopy clone(const WeightCopy& c) {
  WeightCopy d = c;
  d.w.w.data = d.bytes.data();
  if (c.w.quantized()) d.w.scale.data = d.scales.data();
  return d;
}

// Bytes the weights rotate through: far more than the last-level cache holds.
size_t working_set_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::clamp(4 * size_t(std::max(l3, 0L)), size_t(512) << 20, size_t(2048) << 20);
}

// Copies of `proto` (itself included) in sets of per_set filling working_set_bytes().
std::vector<WeightCopy> copies_for_working_set(WeightCopy proto, int per_set) {
  const double bytes = double(proto.bytes.size()) * per_set;
  const int n = per_set * int(std::ceil(double(working_set_bytes()) / bytes));
  std::vector<WeightCopy> copies;
  copies.push_back(std::move(proto));
  for (int i = 1; i < n; ++i) copies.push_back(clone(copies[0]));
  return copies;
}

// Seconds of one round (run(i) for every set i of n_sets), best over rounds after a warm-up.
template <class Run>
double best_round(int n_sets, double min_seconds, Run&& run) {
  for (int i = 0; i < n_sets; ++i) run(i);
  double best = INFINITY;
  int rounds = 0;
  auto start = Clock::now();
  do {
    auto t0 = Clock::now();
    for (int i = 0; i < n_sets; ++i) run(i);
    best = std::min(best, seconds_since(t0));
    ++rounds;
  } while (rounds < 3 || seconds_since(start) < min_seconds);
  return best;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::vector<float> v(n);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& f : v) f = u(rng);
  return v;
}

struct Rooflines {
  double read_gbs = 0, peak_gflops = 0;
};

// Runs `time_case` (seconds of one call) and the rooflines before it `repeats` times; keeps the
// best of each. On a machine other work shares, every figure then comes from a quiet moment.
template <class Time>
std::pair<double, Rooflines> best_of_repeats(int repeats, const std::vector<uint64_t>& stream,
                                             Time&& time_case) {
  double best = INFINITY;
  Rooflines roof;
  for (int i = 0; i < repeats; ++i) {
    roof.read_gbs = std::max(roof.read_gbs, read_bandwidth_gbs(stream));
    roof.peak_gflops = std::max(roof.peak_gflops, peak_gflops());
    best = std::min(best, time_case());
  }
  return {best, roof};
}

void print_row(const char* what, dsi::DType dt, long m, long n, long k, double seconds, double weight_bytes,
               double flops, const Rooflines& roof, const char* extra = "") {
  const double gbs = weight_bytes / seconds / 1e9, gflops = flops / seconds / 1e9;
  std::printf("%-7s %-8s %4ld %5ld %5ld %9.1f %7.1f %7.1f %5.0f%% %7.1f %5.0f%% %s\n", what,
              std::string(dsi::dtype_name(dt)).c_str(), m, n, k, seconds * 1e6, gbs, roof.read_gbs,
              100 * gbs / roof.read_gbs, gflops, 100 * gflops / roof.peak_gflops, extra);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_gemm: CPU GEMM speed against memory and FMA rooflines measured alongside"};
  int threads = 0, repeats = 1;
  double min_seconds = 1.0;
  std::vector<std::string> only_dtypes;
  std::vector<int64_t> token_counts = {1, 16, 128};
  app.add_option("--threads", threads, "OpenMP threads (0: one per core)")->capture_default_str();
  app.add_option("--seconds", min_seconds, "minimum timed seconds per case")->capture_default_str();
  app.add_option("--dtype", only_dtypes, "only these weight dtypes (BF16, F8_E4M3, F16, F32)");
  app.add_option("--m", token_counts, "token counts")->capture_default_str();
  app.add_option("--repeat", repeats, "measure each case (and its rooflines) this often, keep the best")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  dsi::set_num_threads(threads);
  auto wanted = [&](dsi::DType dt) {
    return only_dtypes.empty() ||
           std::find(only_dtypes.begin(), only_dtypes.end(), dsi::dtype_name(dt)) != only_dtypes.end();
  };

  std::vector<uint64_t> stream(working_set_bytes() / sizeof(uint64_t));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(stream.size()); ++i) stream[size_t(i)] = uint64_t(i);  // first touch

  std::printf("machine: %s, %d threads, kernels %s, load average %s at start\n", cpu_model().c_str(),
              dsi::num_threads(), std::string(dsi::cpu::gemm_isa()).c_str(),
              first_word_of_file("/proc/loadavg").c_str());
  std::printf(
      "read: memory read roofline (GB/s) measured alongside the case, 'of rd' the weight bytes' rate\n"
      "against it; 'of pk' the same for the FMA roofline; best of %d repeats each\n\n",
      repeats);
  std::printf("%-7s %-8s %4s %5s %5s %9s %7s %7s %6s %7s %6s\n", "call", "dtype", "m", "n", "k", "us",
              "W GB/s", "read", "of rd", "GFLOP/s", "of pk");

  std::mt19937 rng(7);
  const std::pair<int64_t, int64_t> shapes[] = {{2048, 2048}, {1408, 2048}, {5632, 2048}, {2048, 5632}};
  for (dsi::DType dt : {dsi::DType::bf16, dsi::DType::f8_e4m3, dsi::DType::f16, dsi::DType::f32}) {
    if (!wanted(dt)) continue;
    for (auto [n, k] : shapes) {
      auto copies = copies_for_working_set(make_weight(dt, n, k, rng), 1);
      for (int64_t m : token_counts) {
        const auto xs = random_floats(size_t(m * k), rng);
        std::vector<float> ys(size_t(m * n));
        const auto x = dsi::Tensor::matrix(const_cast<float*>(xs.data()), dsi::DType::f32, m, k);
        const auto y = dsi::Tensor::matrix(ys.data(), dsi::DType::f32, m, n);
        const auto [s, roof] = best_of_repeats(repeats, stream, [&] {
          return best_round(int(copies.size()), min_seconds,
                            [&](int i) { dsi::cpu::linear(x, copies[size_t(i)].w, y); }) /
                 double(copies.size());
        });
        print_row("linear", dt, long(m), long(n), long(k), s, double(copies[0].bytes.size()),
                  2.0 * double(m * n * k), roof);
      }
    }
  }

  // The routed experts of one MoE layer (gate_proj shapes) in one linear_batch, against one
  // linear call per expert: decoding a token (8 experts, 1 token each) and a prefill chunk
  // (64 experts, 8 tokens each).
  std::printf(
      "\nbatch: one linear_batch call for all experts of a layer (us per layer; the last\n"
      "column is one linear call per expert instead)\n");
  for (dsi::DType dt : {dsi::DType::bf16, dsi::DType::f8_e4m3}) {
    if (!wanted(dt)) continue;
    for (auto [n_experts, m] : {std::pair<int, int64_t>{8, 1}, {64, 8}}) {
      const int64_t n = 1408, k = 2048;
      auto experts = copies_for_working_set(make_weight(dt, n, k, rng), n_experts);
      const int n_layers = int(experts.size()) / n_experts;
      const auto xs = random_floats(size_t(n_experts * m * k), rng);
      std::vector<float> ys(size_t(n_experts * m * n));
      std::vector<std::vector<dsi::cpu::GemmProblem>> layers(static_cast<size_t>(n_layers));
      for (int l = 0; l < n_layers; ++l)
        for (int e = 0; e < n_experts; ++e)
          layers[size_t(l)].push_back(
              {dsi::Tensor::matrix(const_cast<float*>(xs.data()) + e * m * k, dsi::DType::f32, m, k),
               experts[size_t(l * n_experts + e)].w,
               dsi::Tensor::matrix(ys.data() + e * m * n, dsi::DType::f32, m, n)});
      const auto [batch, roof] = best_of_repeats(repeats, stream, [&] {
        return best_round(n_layers, min_seconds, [&](int l) { dsi::cpu::linear_batch(layers[size_t(l)]); }) /
               n_layers;
      });
      double separate = INFINITY;
      for (int i = 0; i < repeats; ++i)
        separate = std::min(separate, best_round(n_layers, min_seconds, [&](int l) {
                                        for (const auto& p : layers[size_t(l)])
                                          dsi::cpu::linear(p.x, p.w, p.y);
                                      }) / n_layers);
      char extra[96];
      std::snprintf(extra, sizeof extra, "%d experts; separate calls %.1f us (batch %.2fx faster)", n_experts,
                    separate * 1e6, separate / batch);
      print_row("batch", dt, long(m), long(n), long(k), batch,
                double(n_experts) * double(experts[0].bytes.size()), 2.0 * n_experts * double(m * n * k),
                roof, extra);
    }
  }
  return 0;
}
