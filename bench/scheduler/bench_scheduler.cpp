// The scheduler's own time per step (admission, block allocation, batch building, bookkeeping
// and output events; the model forward and the sampler excluded) with N sequences decoding
// together, on a small random-weight model so that the run is quick.
//
//   bench_scheduler [--seqs 256] [--steps 200] [--prompt 100]
#include <chrono>
#include <cstdio>
#include <string>

#include "core/log.h"
#include "core/threads.h"
#include "engine/engine.h"
#include "engine/model_loader.h"

int main(int argc, char** argv) {
  using namespace dsi;
  int n_seqs = 256, steps = 200, prompt_len = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::stoi(argv[++i]) : 0; };
    if (a == "--seqs") n_seqs = next();
    else if (a == "--steps") steps = next();
    else if (a == "--prompt") prompt_len = next();
    else {
      std::fprintf(stderr, "usage: bench_scheduler [--seqs N] [--steps N] [--prompt N]\n");
      return 2;
    }
  }
  init_logging("warn");
  set_num_threads(0);
  // A tiny V3-shaped model: the scheduler's work does not depend on the model's size.
  ModelConfig c = ModelConfig::from_json(Json{{"model_type", "deepseek_v3"}, {"vocab_size", 512},
                                              {"hidden_size", 64}, {"intermediate_size", 128},
                                              {"moe_intermediate_size", 32}, {"num_hidden_layers", 2},
                                              {"num_attention_heads", 2}, {"q_lora_rank", 32},
                                              {"kv_lora_rank", 32}, {"qk_nope_head_dim", 16},
                                              {"qk_rope_head_dim", 8}, {"v_head_dim", 16},
                                              {"n_routed_experts", 8}, {"n_shared_experts", 1},
                                              {"num_experts_per_tok", 2}, {"first_k_dense_replace", 1},
                                              {"n_group", 2}, {"topk_group", 1}, {"eos_token_id", 1}},
                                         "bench model");
  EngineOptions eo;
  eo.max_num_seqs = n_seqs;
  eo.max_num_batched_tokens = std::max(2048, n_seqs);
  RunnerOptions ro;
  ro.backend.device = DeviceKind::device_cpu;
  ro.kv_cache_bytes = int64_t(2) << 30;
  ro.max_num_seqs = eo.max_num_seqs;
  ro.max_num_batched_tokens = eo.max_num_batched_tokens;
  ModelRunner runner(c, make_dummy_weights(c, 1), ro);
  Engine engine(runner, eo);
  int64_t events = 0;
  for (int s = 0; s < n_seqs; ++s) {
    EngineRequest r;
    for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(2 + (s * 31 + i * 7) % 500);
    r.sampling.temperature = 0;
    r.sampling.ignore_eos = true;
    r.sampling.max_tokens = steps + prompt_len * n_seqs / eo.max_num_batched_tokens + 10;
    r.on_output = [&](RequestOutput&&) { ++events; };
    engine.submit(std::move(r));
  }
  // Until every sequence is decoding.
  while (engine.stats().n_running < n_seqs || engine.stats().n_waiting > 0) engine.step();
  for (int i = 0; i < 3; ++i) engine.step();
  const EngineStats before = engine.stats();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) engine.step();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const EngineStats after = engine.stats();
  const double n = double(after.steps_total - before.steps_total);
  const double sched = (after.scheduler_seconds_total - before.scheduler_seconds_total) / n;
  const double fwd = (after.forward_seconds_total - before.forward_seconds_total) / n;
  const double smp = (after.sampling_seconds_total - before.sampling_seconds_total) / n;
  std::printf("%d running sequences, %d decode steps (%lld events)\n", after.n_running, int(n),
              static_cast<long long>(events));
  std::printf("per step: scheduler %.3f ms, forward %.3f ms, sampling %.3f ms, wall %.3f ms\n", 1e3 * sched,
              1e3 * fwd, 1e3 * smp, 1e3 * wall / n);
  std::printf("scheduler share of the step: %.1f%%\n", 100 * sched / (wall / n));
  return 0;
}
