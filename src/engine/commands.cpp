// `dsinfer logits` and `dsinfer generate`: prompts of token ids through the engine (logits:
// one; generate: one or more, batched together and, under data-parallel attention, spread
// over the DP ranks), for checking numerics against a reference and for scripting.
#include "engine/commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "backend/backend_factory.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/threads.h"
#include "engine/device_flags.h"
#include "engine/engine.h"
#include "engine/model_loader.h"
#include "engine/model_runner.h"
#include "engine/parallel_flags.h"
#include "engine/step_broadcast.h"
#include "model/dump_compare.h"
#include "model/sharding.h"
#include "parallel/device_collectives_factory.h"
#include "parallel/gpu_group_check.h"
#include "parallel/parallel_runtime.h"
#include "model/safetensors.h"

namespace dsi {

namespace {

struct CommonOptions {
  ModelSource source;
  std::vector<std::string> tokens;  // one prompt per --tokens
  int threads = 0;
  BackendOptions backend;
  DumpFlags dump;
  ParallelOptions parallel;
};

void add_common(CLI::App* cmd, CommonOptions& o) {
  cmd->add_option("--model", o.source.path,
                  "Hugging Face checkpoint folder (config.json + *.safetensors); default: the embedded demo model");
  cmd->add_option("--load-format", o.source.load_format,
                  "auto: read the weights; dummy: random weights from config.json alone")
      ->check(CLI::IsMember({"auto", "safetensors", "dummy"}))
      ->capture_default_str();
  cmd->add_option("--seed", o.source.seed, "seed of --load-format dummy weights")->capture_default_str();
  cmd->add_option("--tokens", o.tokens,
                  "prompt token ids, comma-separated (e.g. 0,17,5); generate takes several --tokens, one prompt each")
      ->required();
  cmd->add_option("--threads", o.threads, "CPU threads (0: one per core)")->capture_default_str();
  add_device_flags(cmd, o.backend);
  add_dump_flags(cmd, o.dump);
  add_parallel_flags(cmd, o.parallel);
}

std::vector<int32_t> parse_tokens(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 10)
      fail("--tokens: '{}' is not a token id (expected comma-separated non-negative integers)", item);
    long long v = std::stoll(item);
    if (v >= vocab) fail("--tokens: id {} is outside the vocabulary of {} tokens", v, vocab);
    ids.push_back(int32_t(v));
    i = j + 1;
  }
  if (ids.empty()) fail("--tokens: empty prompt");
  return ids;
}

// A single sequence's slice of a batch: rows [0, n) at positions [n_cached, n_cached + n).
ForwardBatch single_sequence_batch(std::span<const int32_t> tokens, int32_t n_cached,
                                   const std::vector<int32_t>& block_table, int block_size, bool all_logits) {
  ForwardBatch b;
  const int32_t n = int32_t(tokens.size());
  b.token_ids.assign(tokens.begin(), tokens.end());
  for (int32_t i = 0; i < n; ++i) {
    int32_t pos = n_cached + i;
    b.positions.push_back(pos);
    b.kv_slots.push_back(int64_t(block_table[size_t(pos / block_size)]) * block_size + pos % block_size);
    if (all_logits) b.logit_rows.push_back(i);
  }
  if (!all_logits) b.logit_rows.push_back(n - 1);
  b.sequences.push_back({0, n, n_cached, block_table});
  return b;
}

// A runner whose cache and workspace hold exactly one sequence of n_tokens, computed in one
// step with n_logit_rows logits.
// (n_seqs such sequences for generate: n_tokens is then their sum, each may take a block more.)
ModelRunner make_runner(LoadedModel m, const CommonOptions& common, int64_t n_tokens, int64_t n_logit_rows,
                        int n_seqs, const ParallelContext& parallel, DeviceCollectivesMode collectives) {
  RunnerOptions o;
  o.parallel = parallel;
  o.device_collectives = collectives;
  o.backend = common.backend;
  o.backend.device_index = pick_gpu(common.backend, parallel.local_rank);
  o.dump = common.dump.parse();
  o.prefix_caching = false;
  o.max_kv_blocks = (n_tokens + o.block_size - 1) / o.block_size + n_seqs - 1;
  // 4 bytes: the widest KV dtype; max_kv_blocks caps the count for narrower ones.
  o.kv_cache_bytes = o.max_kv_blocks * o.block_size * m.config.kv_cache_dim() * 4 * m.config.n_layers;
  o.max_num_batched_tokens = int(n_tokens);
  o.max_num_seqs = n_seqs;
  o.max_logit_rows = n_logit_rows;
  return ModelRunner(std::move(m.config), std::move(m.weights), o);
}

std::vector<int32_t> allocate_blocks(ModelRunner& r, int64_t n_tokens) {
  std::vector<int32_t> table;
  for (int64_t i = 0; i < (n_tokens + r.block_size() - 1) / r.block_size(); ++i) table.push_back(*r.blocks().allocate());
  return table;
}

// Every rank loads the model (memory maps: only its slices are read) and checks the layout;
// an error there is the same on every rank and printed by rank 0 alone. `collectives` gets
// what carries the model's collectives, chosen from every rank's GPU.
LoadedModel load_checked(const CommonOptions& o, const ParallelContext& par, std::vector<std::vector<int32_t>>& prompts,
                         bool one_prompt, DeviceCollectivesMode& collectives) {
  LoadedModel m;
  checked_on_every_rank(par, [&] {
    m = load_model(o.source);
    check_parallel_layout(par, m.config);
    if (one_prompt && o.tokens.size() != 1) fail("--tokens: logits takes one prompt, got {}", o.tokens.size());
    prompts.clear();
    for (const auto& t : o.tokens) prompts.push_back(parse_tokens(t, m.config.vocab_size));
  });
  // Only once every rank is here: the check is a collective.
  checked_on_every_rank(par, [&] {
    collectives = check_gpus_and_collectives(par, runs_on_gpu(o.backend), pick_gpu(o.backend, par.local_rank),
                                             o.parallel.device_collectives, nccl_collectives_built());
  });
  return m;
}

void run_logits(const CommonOptions& o, const std::string& out_path) {
  set_num_threads(o.threads);
  ParallelRuntime rt(o.parallel);
  const ParallelContext& par = rt.context();
  std::vector<std::vector<int32_t>> prompts;
  DeviceCollectivesMode collectives{};
  LoadedModel m = load_checked(o, par, prompts, true, collectives);
  const std::vector<int32_t>& prompt = prompts[0];
  const int64_t vocab = m.config.vocab_size;
  rt.run([&] {
    ModelRunner runner =
        make_runner(std::move(m), o, int64_t(prompt.size()), int64_t(prompt.size()), 1, par, collectives);
    if (!par.is_root()) return run_worker(runner);
    auto table = allocate_blocks(runner, int64_t(prompt.size()));
    std::vector<float> logits(prompt.size() * size_t(vocab));
    runner.forward(single_sequence_batch(prompt, 0, table, runner.block_size(), true), logits);
    runner.stop_workers();
    write_safetensors(out_path, {{"logits", DType::f32, {int64_t(prompt.size()), vocab}, logits.data()}});
    spdlog::info("wrote logits [{}, {}] to {}", prompt.size(), vocab, out_path);
  });
}

struct GenerateOptions {
  int max_tokens = 16;
  SamplingParams sampling{.temperature = 0};
  bool stop_at_eos = false;
  bool json = false;
};

void generate_on_root(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& g);

// Generation goes through the same engine (scheduler, paged cache, sampler) as serving.
void run_generate(const CommonOptions& o, const GenerateOptions& g) {
  set_num_threads(o.threads);
  ParallelRuntime rt(o.parallel);
  const ParallelContext& par = rt.context();
  std::vector<std::vector<int32_t>> prompts;
  DeviceCollectivesMode collectives{};
  LoadedModel m = load_checked(o, par, prompts, false, collectives);
  int64_t total = 0;
  for (const auto& p : prompts) total += int64_t(p.size()) + g.max_tokens;
  const int n = int(prompts.size());
  rt.run([&] {
    ModelRunner runner = make_runner(std::move(m), o, total, n, n, par, collectives);
    if (!par.is_root()) return run_worker(runner);
    generate_on_root(runner, prompts, g);
    runner.stop_workers();
  });
}

// Rank 0 (or the only rank): the engine, the sampler and the output (one line per prompt,
// in order).
void generate_on_root(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& g) {
  int64_t total = 0, n_prompt_tokens = 0;
  for (const auto& p : prompts) total += int64_t(p.size()) + g.max_tokens, n_prompt_tokens += int64_t(p.size());
  EngineOptions eo;
  eo.max_num_seqs = int(prompts.size());
  eo.max_model_len = std::min<int64_t>(runner.blocks().n_blocks() * runner.block_size(),
                                      runner.config().max_position_embeddings);
  eo.max_num_batched_tokens = int(std::max<int64_t>(total, 1));
  Engine engine(runner, eo);

  struct Output {
    std::vector<int32_t> tokens;
    const char* finish = nullptr;
    std::string error;
  };
  std::vector<Output> outs(prompts.size());
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EngineRequest req;
    req.prompt = prompts[i];
    req.sampling = g.sampling;
    req.sampling.max_tokens = g.max_tokens;
    req.sampling.ignore_eos = !g.stop_at_eos;
    req.on_output = [&out = outs[i]](RequestOutput&& r) {
      for (auto& t : r.tokens) out.tokens.push_back(t.token);
      if (r.finish != FinishReason::finish_none) out.finish = finish_reason_name(r.finish);
      out.error = r.error;
    };
    engine.submit(std::move(req));
  }
  while (engine.has_work()) engine.step();
  for (const auto& out : outs)
    if (!out.error.empty()) fail("generation failed: {}", out.error);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const EngineStats st = engine.stats();
  int64_t n_out = 0;
  for (const auto& out : outs) n_out += int64_t(out.tokens.size());
  spdlog::info("{} prompt + {} generated tokens in {:.3f} s ({:.3f} s in the model)", n_prompt_tokens, n_out, secs,
               st.forward_seconds_total);
  for (const auto& out : outs) {
    if (g.json) {
      std::printf("%s\n", Json{{"token_ids", out.tokens}, {"finish_reason", out.finish ? out.finish : ""}}.dump().c_str());
    } else {
      for (size_t i = 0; i < out.tokens.size(); ++i) std::printf("%s%d", i ? "," : "", out.tokens[i]);
      std::printf("\n");
    }
  }
}

// Both files, or every step<k>.safetensors of folder a with its namesake in folder b.
int run_compare_dumps(const std::string& a, const std::string& b, double max_rel_error) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, std::string>> pairs;
  if (fs::is_directory(a) && fs::is_directory(b)) {
    for (const auto& entry : fs::directory_iterator(a))
      if (entry.path().extension() == ".safetensors")
        pairs.emplace_back(entry.path().string(), (fs::path(b) / entry.path().filename()).string());
    std::sort(pairs.begin(), pairs.end());
    if (pairs.empty()) fail("compare-dumps: no .safetensors files in {}", a);
  } else {
    pairs.emplace_back(a, b);
  }
  int n_bad = 0;
  for (const auto& [pa, pb] : pairs) {
    std::printf("%s vs %s\n%-32s %-16s %12s %12s %12s %10s\n", pa.c_str(), pb.c_str(), "tensor", "shape", "max |a-b|",
                "max |b|", "|a-b|/|b|", "cosine");
    for (const TensorDiff& d : compare_dumps(pa, pb)) {
      if (!d.problem.empty()) {
        std::printf("%-32s %s\n", d.name.c_str(), d.problem.c_str());
        ++n_bad;
        continue;
      }
      const bool bad = d.n_nonfinite_a != d.n_nonfinite_b || (max_rel_error >= 0 && d.rel_l2 > max_rel_error);
      n_bad += bad;
      std::printf("%-32s %-16s %12.3e %12.3e %12.3e %10.6f%s", d.name.c_str(), shape_str(d.shape).c_str(), d.max_abs,
                  d.max_ref, d.rel_l2, d.cosine, bad ? "  <-- " : "");
      if (d.n_nonfinite_a || d.n_nonfinite_b)
        std::printf("  (non-finite: %lld vs %lld)", (long long)d.n_nonfinite_a, (long long)d.n_nonfinite_b);
      std::printf("\n");
    }
  }
  if (n_bad) std::printf("%d tensors differ beyond the tolerance or do not match\n", n_bad);
  return n_bad ? 1 : 0;
}

}  // namespace

void register_engine_commands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("logits", "Write the logits of every prompt position of one forward pass");
    auto o = std::make_shared<CommonOptions>();
    auto out = std::make_shared<std::string>();
    add_common(cmd, *o);
    cmd->add_option("--out", *out, "output .safetensors file: tensor 'logits', F32 [n_tokens, vocab]")->required();
    cmd->callback([o, out] { run_logits(*o, *out); });
  }
  {
    auto* cmd = app.add_subcommand("generate", "Generate from a token-id prompt with the KV cache (greedy by default)");
    auto o = std::make_shared<CommonOptions>();
    auto g = std::make_shared<GenerateOptions>();
    add_common(cmd, *o);
    cmd->add_option("--max-tokens", g->max_tokens, "tokens to generate")->capture_default_str();
    cmd->add_option("--temperature", g->sampling.temperature, "0 = greedy")->capture_default_str();
    cmd->add_option("--top-p", g->sampling.top_p, "nucleus sampling mass")->capture_default_str();
    cmd->add_option("--top-k", g->sampling.top_k, "sample among the k most likely (0: off)")->capture_default_str();
    cmd->add_option("--sampling-seed", g->sampling.seed, "seed of the sampler (reproducible sampling)");
    cmd->add_flag("--stop-at-eos", g->stop_at_eos,
                  "stop at the model's end-of-sequence token (default: generate exactly --max-tokens)");
    cmd->add_flag("--json", g->json,
                  "print {\"token_ids\": [...], \"finish_reason\": ...} (token_ids: the generated tokens only)");
    cmd->callback([o, g] { run_generate(*o, *g); });
  }
  {
    auto* cmd = app.add_subcommand("compare-dumps",
                                   "Compare two --dump-dir tensor dumps (files or folders) tensor by tensor");
    auto a = std::make_shared<std::string>(), b = std::make_shared<std::string>();
    auto tol = std::make_shared<double>(-1);
    cmd->add_option("a", *a, "dump to check (a step<k>.safetensors file, or a --dump-dir folder)")->required();
    cmd->add_option("b", *b, "reference dump (the CPU's, say)")->required();
    cmd->add_option("--max-rel-error", *tol,
                    "exit 1 when a tensor's |a-b|/|b| exceeds this (default: report only; mismatched names, shapes "
                    "or non-finite values always fail)");
    cmd->callback([a, b, tol] {
      if (int code = run_compare_dumps(*a, *b, *tol); code != 0) std::exit(code);
    });
  }
}

}  // namespace dsi
