// The sampler's time per token on one thread, for the parameter combinations a server sees,
// over a DeepSeek-V3-sized vocabulary with a peaked, model-like distribution (a few strong
// candidates, a long Gaussian tail). Each call gets a fresh copy of the logits (sample_token
// uses them as scratch); the copy is timed separately and subtracted. Each case reports the
// best of --rounds rounds of --iters calls, so that other work on the machine shows less.
//
//   bench_sampler [--vocab 129280] [--iters 100] [--rounds 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/sampler.h"

int main(int argc, char** argv) {
  using namespace dsi;
  using Clock = std::chrono::steady_clock;
  int vocab = 129280, iters = 100, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::stoi(argv[++i]) : 0; };
    if (a == "--vocab") vocab = next();
    else if (a == "--iters") iters = next();
    else if (a == "--rounds") rounds = next();
    else {
      std::fprintf(stderr, "usage: bench_sampler [--vocab N] [--iters N] [--rounds N]\n");
      return 2;
    }
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> tail(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (float& v : logits) v = tail(rng);
  for (int i = 0; i < 8 && i < vocab; ++i) logits[size_t(i * 977 % vocab)] = 14.0f - float(i);

  struct Case {
    const char* name;
    SamplingParams p;
  };
  auto make = [](double temperature, int top_k, double top_p, double min_p, int logprobs) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.logprobs = logprobs;
    p.seed = 7;
    return p;
  };
  const std::vector<Case> cases = {
      {"greedy", make(0, 0, 1, 0, -1)},
      {"greedy, logprobs 5", make(0, 0, 1, 0, 5)},
      {"temperature 1", make(1, 0, 1, 0, -1)},
      {"top_k 50", make(1, 50, 1, 0, -1)},
      {"top_p 0.9", make(1, 0, 0.9, 0, -1)},
      {"top_p 0.9, temperature 2", make(2, 0, 0.9, 0, -1)},
      {"min_p 0.05", make(1, 0, 1, 0.05, -1)},
      {"top_k 50, top_p 0.9, min_p 0.05", make(0.7, 50, 0.9, 0.05, -1)},
  };
  std::vector<float> scratch(logits.size());
  const std::vector<int32_t> prompt = {3, 5, 7};
  const std::vector<int64_t> eos = {1};
  // Microseconds per call of fn, the best round.
  auto best_us = [&](auto&& fn) {
    double best = 1e300;
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = Clock::now();
      for (int i = 0; i < iters; ++i) fn();
      best = std::min(best, 1e6 * std::chrono::duration<double>(Clock::now() - t0).count() / iters);
    }
    return best;
  };
  const double copy_us = best_us([&] { scratch = logits; });
  std::printf("vocab %d, best of %d rounds of %d calls per case, one thread (logits copy %.1f us, subtracted)\n",
              vocab, rounds, iters, copy_us);
  for (const Case& c : cases) {
    SamplerState state(c.p);
    int64_t checksum = 0;
    const double us = best_us([&] {
      scratch = logits;
      checksum += sample_token(scratch, c.p, state, {prompt, 0, eos}).token;
    }) - copy_us;
    std::printf("%-34s %8.1f us per token  (checksum %lld)\n", c.name, us, static_cast<long long>(checksum));
  }
  return 0;
}
