// cuda_sampling_bench: the GPU sampler (backend/cuda/sampling.h) on DeepSeek's 129,280-token
// vocabulary, for common parameter sets and batch sizes, against the floor of reading the
// logits once at the device-to-device copy rate measured in the same run. Times: CUDA events
// around the sample() launch alone, median of --reps; the logits are restored from a pristine
// copy before every launch (penalties change them in place), outside the timed region.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/sampling.h"
#include "backend/cuda/stream.h"
#include "engine/sampler.h"
#include "engine/sampling_rows.h"

namespace {

using namespace dsi;
using namespace dsi::cuda;

struct Config {
  const char* name;
  SamplingParams p;
  int n_prompt = 0, n_output = 0;  // context tokens for the penalties
};

std::vector<Config> configs() {
  std::vector<Config> c;
  auto add = [&](const char* name, auto set, int n_prompt = 0, int n_output = 0) {
    Config k{name, SamplingParams{}, n_prompt, n_output};
    k.p.seed = 1;
    set(k.p);
    c.push_back(k);
  };
  add("greedy", [](SamplingParams& p) { p.temperature = 0; });
  add("temperature 1", [](SamplingParams&) {});
  add("top_k 50", [](SamplingParams& p) { p.top_k = 50; });
  add("top_p 0.95", [](SamplingParams& p) { p.top_p = 0.95; });
  add("top_k 50 top_p 0.9", [](SamplingParams& p) { p.top_k = 50, p.top_p = 0.9; });
  add("min_p 0.05", [](SamplingParams& p) { p.min_p = 0.05; });
  add("top_p 0.9 + logprobs 20", [](SamplingParams& p) { p.top_p = 0.9, p.logprobs = 20; });
  add("top_p 0.9 + penalties", [](SamplingParams& p) {
    p.top_p = 0.9, p.repetition_penalty = 1.1, p.frequency_penalty = 0.5, p.presence_penalty = 0.5;
  }, 2000, 500);
  return c;
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 30, vocab = 129280;
  std::vector<int> batches = {1, 64, 256};
  CLI::App app{"GPU sampler timings"};
  app.add_option("--reps", reps, "timed launches (median reported)");
  app.add_option("--vocab", vocab, "vocabulary size");
  app.add_option("--batch", batches, "rows per step (several allowed)");
  CLI11_PARSE(app, argc, argv);

  Stream stream;
  const int max_rows = *std::max_element(batches.begin(), batches.end());
  const size_t bytes = size_t(max_rows) * size_t(vocab) * 4;
  DeviceBuffer pristine(bytes), work(bytes);
  {
    std::mt19937 gen(3);
    std::normal_distribution<float> d(0.0f, 2.5f);  // spread like a model's logits
    std::vector<float> h(size_t(max_rows) * size_t(vocab));
    for (float& v : h) v = d(gen);
    DSI_CUDA_CHECK(cudaMemcpy(pristine.data(), h.data(), bytes, cudaMemcpyHostToDevice));
  }
  // The copy ceiling: pristine -> work, bytes read + written.
  Event a, b;
  std::vector<float> copy_ms;
  for (int i = 0; i < 10; ++i) {
    a.record(stream.get());
    DSI_CUDA_CHECK(cudaMemcpyAsync(work.data(), pristine.data(), bytes, cudaMemcpyDeviceToDevice, stream.get()));
    b.record(stream.get());
    b.synchronize();
    copy_ms.push_back(b.elapsed_ms_since(a));
  }
  const double copy_bw = 2.0 * double(bytes) / (median(copy_ms) * 1e-3);
  fmt::print("copy ceiling {:.2f} TB/s ({} MB each way)\n", copy_bw / 1e12, bytes >> 20);
  fmt::print("{:<28} {:>6} {:>10} {:>10} {:>9}\n", "config", "rows", "median us", "floor us", "rows/ms");

  std::mt19937 gen(5);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  for (const Config& cfg : configs())
    for (int n_rows : batches) {
      std::vector<sampling::SamplingRow> rows(static_cast<size_t>(n_rows));
      std::vector<sampling::SamplingPenalty> penalties;
      std::vector<int32_t> prompt(size_t(cfg.n_prompt));
      for (int32_t& t : prompt) t = token(gen);
      for (int r = 0; r < n_rows; ++r) {
        SamplerState st(cfg.p);
        for (int i = 0; i < cfg.n_output; ++i) st.record(token(gen));
        prepare_sampling_row(cfg.p, st, {prompt, cfg.n_output, {}}, vocab, penalties, rows[size_t(r)]);
      }
      DeviceBuffer d_rows(rows.size() * sizeof(rows[0])),
          d_pen(std::max<size_t>(penalties.size(), 1) * sizeof(sampling::SamplingPenalty)),
          d_res(rows.size() * sizeof(sampling::SamplingResult));
      DSI_CUDA_CHECK(cudaMemcpy(d_rows.data(), rows.data(), d_rows.size(), cudaMemcpyHostToDevice));
      if (!penalties.empty())
        DSI_CUDA_CHECK(cudaMemcpy(d_pen.data(), penalties.data(), penalties.size() * sizeof(penalties[0]),
                                  cudaMemcpyHostToDevice));
      const SampleParams sp{work.as<float>(), n_rows, vocab, vocab, d_rows.as<sampling::SamplingRow>(),
                            d_pen.as<sampling::SamplingPenalty>(), int64_t(penalties.size()),
                            d_res.as<sampling::SamplingResult>()};
      const size_t row_bytes = size_t(n_rows) * size_t(vocab) * 4;
      std::vector<float> ms;
      for (int i = 0; i < reps + 3; ++i) {
        DSI_CUDA_CHECK(cudaMemcpyAsync(work.data(), pristine.data(), row_bytes, cudaMemcpyDeviceToDevice, stream.get()));
        a.record(stream.get());
        sample(sp, stream.get());
        b.record(stream.get());
        b.synchronize();
        if (i >= 3) ms.push_back(b.elapsed_ms_since(a));
      }
      std::vector<sampling::SamplingResult> res(rows.size());
      DSI_CUDA_CHECK(cudaMemcpy(res.data(), d_res.data(), d_res.size(), cudaMemcpyDeviceToHost));
      for (const auto& r : res)
        if (r.status != sampling::sampling_ok) fmt::print("  row status {} (expected ok)\n", r.status);
      const double t = median(ms) * 1e3, floor_us = double(row_bytes) / copy_bw * 1e6;  // one read of the logits
      fmt::print("{:<28} {:>6} {:>10.1f} {:>10.1f} {:>9.1f}\n", cfg.name, n_rows, t, floor_us, n_rows / (t * 1e-3));
    }
  return 0;
}
