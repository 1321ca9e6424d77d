#include "server/serve.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <ctime>
#include <optional>
#include <algorithm>
#include <filesystem>
#include <thread>

#include "backend/backend_factory.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "engine/step_broadcast.h"
#include "model/sharding.h"
#include "parallel/device_collectives_factory.h"
#include "parallel/gpu_group_check.h"
#include "parallel/parallel_runtime.h"
#include "server/api_router.h"
#include "server/group_health.h"
#include "server/http_server.h"
#include "server/shutdown.h"
#include "server/vllm_compat.h"

namespace dsi::server {

namespace {

namespace fs = std::filesystem;

// Every connection is a file descriptor; the soft limit is often 1024.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0)
    spdlog::debug("open file limit raised from {} to {}", before, limit.rlim_cur);
}

Tokenizer load_tokenizer(const ServeOptions& o) {
  if (!o.tokenizer_dir.empty()) {
    spdlog::info("tokenizer: {}", o.tokenizer_dir);
    return Tokenizer::from_dir(o.tokenizer_dir, o.chat_template_file);
  }
  if (o.source.path.empty()) {
    spdlog::info("tokenizer: the embedded DeepSeek-V3 tokenizer");
    return Tokenizer::embedded_default(o.chat_template_file);
  }
  if (fs::exists(fs::path(o.source.path) / "tokenizer.json")) {
    spdlog::info("tokenizer: {}", o.source.path);
    return Tokenizer::from_dir(o.source.path, o.chat_template_file);
  }
  spdlog::warn("--model {} has no tokenizer.json and no --tokenizer was given: using the embedded DeepSeek-V3 "
               "tokenizer (text prompts whose ids fall outside the model's vocabulary are refused)",
               o.source.path);
  return Tokenizer::embedded_default(o.chat_template_file);
}

void check_options(const ServeOptions& o) {
  if (o.port < 0 || o.port > 65535) fail("--port {} is not a TCP port (0..65535)", o.port);
  if (o.http_threads < 1 || o.http_threads > 64) fail("--http-threads {} must be in [1, 64]", o.http_threads);
  if (o.preprocess_threads < 1 || o.preprocess_threads > 64)
    fail("--preprocess-threads {} must be in [1, 64]", o.preprocess_threads);
  if (!o.reasoning_parser.empty() && o.reasoning_parser != "deepseek-r1")
    fail("--reasoning-parser {} is not supported (deepseek-r1)", o.reasoning_parser);
  if (!o.tool_call_parser.empty() && o.tool_call_parser != "deepseek-v3")
    fail("--tool-call-parser {} is not supported (deepseek-v3)", o.tool_call_parser);
  if (o.max_logprobs < 0 || o.max_logprobs > 20)
    fail("--max-logprobs {} must be in [0, 20] (the sampler returns at most 20 alternatives)", o.max_logprobs);
}

ApiOptions api_options(const ServeOptions& o, const std::string& model_name) {
  ApiOptions api;
  api.served_model_names = o.served_model_names.empty() ? std::vector<std::string>{model_name} : o.served_model_names;
  api.api_key = o.api_key;
  api.reasoning_parser_r1 = o.reasoning_parser == "deepseek-r1";
  api.tool_parser_v3 = o.tool_call_parser == "deepseek-v3";
  api.created = int64_t(std::time(nullptr));
  api.default_seed = o.seed;
  RequestDefaults base;
  base.max_logprobs = o.max_logprobs;
  base.priority_scheduling = o.engine.scheduling_policy == SchedulingPolicy::scheduling_priority;
  api.defaults = load_generation_config(o.generation_config, o.source.path, base);
  return api;
}

RunnerOptions runner_options(const ServeOptions& o) {
  RunnerOptions r;
  r.kv_cache_bytes = o.kv_cache_memory == "auto" ? 0 : parse_byte_size(o.kv_cache_memory, "--kv-cache-memory");
  r.gpu_memory_utilization = o.gpu_memory_utilization;
  r.block_size = o.block_size;
  r.prefix_caching = o.prefix_caching;
  r.backend = o.backend;
  r.max_num_batched_tokens = o.engine.max_num_batched_tokens;
  r.max_num_seqs = o.engine.max_num_seqs;
  r.max_model_len = o.engine.max_model_len;
  return r;
}

}  // namespace

namespace {

int serve_on_root(const ServeOptions& o, Tokenizer& tokenizer, LoadedModel& model, ModelRunner& runner);

}  // namespace

// Under mpirun every rank loads the model and runs each step; rank 0 alone tokenizes, serves
// HTTP and schedules (docs/design/parallel.md). Checks fail the same way on every rank and
// are printed by rank 0; a failure after that ends every rank.
int run_serve(const ServeOptions& o) {
  ParallelRuntime rt(o.parallel);
  const ParallelContext& par = rt.context();
  std::optional<Tokenizer> tokenizer;
  LoadedModel model;
  checked_on_every_rank(par, [&] {
    check_options(o);
    raise_open_file_limit();
    set_num_threads(o.threads);
    tokenizer.emplace(load_tokenizer(o));
    model = load_model(o.source);
    check_quantization(o.quantization, model.config, o.source.path.empty() ? model.name : o.source.path);
    check_parallel_layout(par, model.config);
  });
  // Only once every rank is here: the check is a collective. It also chooses what carries the
  // model's collectives, from every rank's GPU.
  DeviceCollectivesMode collectives{};
  checked_on_every_rank(par, [&] {
    collectives = check_gpus_and_collectives(par, runs_on_gpu(o.backend), pick_gpu(o.backend, par.local_rank),
                                             o.parallel.device_collectives, nccl_collectives_built());
  });
  int code = 0;
  rt.run([&] {
    RunnerOptions ro = runner_options(o);
    ro.backend.device_index = pick_gpu(o.backend, par.local_rank);
    ro.parallel = par;
    ro.device_collectives = collectives;
    ModelRunner runner(std::move(model.config), std::move(model.weights), ro);
    if (!par.is_root()) {
      // mpirun forwards SIGTERM, SIGINT and SIGUSR1 to every rank; rank 0 drains its requests
      // and then stops the workers, which must live until then.
      std::signal(SIGTERM, SIG_IGN);
      std::signal(SIGINT, SIG_IGN);
      std::signal(SIGUSR1, SIG_IGN);
      try {
        return run_worker(runner);
      } catch (const CollectiveTimeout& e) {
        // Rank 0 saw (or will see within its own timeout) the same failure and keeps
        // answering /health for --failure-exit-delay before it ends the job: ending it from
        // here now would cut that short. Wait for it, then end the job ourselves in case
        // rank 0 is the rank that failed.
        spdlog::error("rank {}: {}; waiting for rank 0 to end the job", par.world_rank, e.what());
        std::this_thread::sleep_for(std::chrono::duration<double>(o.failure_exit_delay_s + e.timeout_s + 2));
        throw;
      }
    }
    code = serve_on_root(o, *tokenizer, model, runner);
    if (code != 0 && par.world) fail("the engine failed (see the log above)");
    runner.stop_workers();
  });
  return code;
}

namespace {

int serve_on_root(const ServeOptions& o, Tokenizer& tokenizer, LoadedModel& model, ModelRunner& runner) {
  // As vLLM: the API's model name is --model as the user typed it.
  ApiOptions api = api_options(o, o.source.path.empty() ? model.name : o.source.path);
  spdlog::info("load-to-ready: {:.2f} s (loading {:.2f} s, upload and allocation {:.2f} s)",
               model.load_seconds + runner.ready_seconds(), model.load_seconds, runner.ready_seconds());
  // Destroyed first (below): requests it still holds keep connections alive through their
  // callbacks, and those must go while the io_context and the server exist.
  auto engine_owner = std::make_unique<Engine>(runner, o.engine);
  Engine& engine = *engine_owner;

  net::io_context ioc(o.http_threads);
  ServerMetrics metrics(api.served_model_names.front());
  // Declared after the io_context: destroyed (its queue run, its threads joined) before it.
  WorkPool preprocess(o.preprocess_threads, size_t(std::max(1, o.engine.max_waiting_requests)));
  StructuredOutputs structured(tokenizer, engine.config().vocab_size);
  ApiContext context{engine, tokenizer, metrics, api, preprocess};
  context.structured = &structured;
  GroupHealth group_health;
  if (runner.parallel().world) context.group_health = &group_health;
  HttpServer server(ioc, o.limits, metrics, [&context](const std::shared_ptr<HttpConnection>& c, HttpRequest&& r) {
    handle_api_request(context, c, std::move(r));
  });
  server.listen(o.host, uint16_t(o.port));
  // Under OpenMPI a SIGTERM from rank 0's parent (mpirun or orted) is the job's teardown.
  const bool under_openmpi = runner.parallel().world && runner.parallel().launcher == "openmpi";
  ShutdownController shutdown(ioc, engine, server, o.shutdown_timeout_s, under_openmpi ? int(getppid()) : 0,
                              &group_health);

  bool engine_failed = false;
  std::thread engine_thread([&] {
    try {
      set_num_threads(o.threads);  // OpenMP's thread count is per thread: set it where the model runs
      engine.run();
    } catch (const CollectiveTimeout& e) {
      // A rank of the group died or hangs. The engine has failed every request (503); say
      // where, turn /health to 503, refuse new work, and exit non-zero after
      // --failure-exit-delay so that a supervisor restarts the group.
      GroupFailure f = GroupFailure::from(e);
      f.step = engine.stats().steps_total;
      f.exit_in_s = int(std::ceil(o.failure_exit_delay_s));
      spdlog::error("parallel group failed: rank {} of group '{}' ({} ranks) waited {:.1f} s in {} during engine "
                    "step {}; a peer rank died or hangs (its own log, if any, says more). /health now answers 503; "
                    "exiting with status 1 in {:.1f} s",
                    f.rank, f.group, f.group_size, f.timeout_s, f.collective, f.step + 1, o.failure_exit_delay_s);
      group_health.fail(std::move(f));
      engine.stop(false);  // submissions from now on are refused
      engine_failed = true;
      shutdown.group_failed(o.failure_exit_delay_s);
      return;
    } catch (const std::exception& e) {
      spdlog::error("engine stopped on an error: {}", e.what());
      engine_failed = true;
    }
    // No more events will come: close what is left and let ioc.run() return once the last
    // responses are written.
    shutdown.engine_finished(engine_failed);
  });

  spdlog::info("dsinfer serve: listening on http://{}:{} (model '{}', context {} tokens, {} KV blocks of {} tokens)",
               o.host, server.port(), api.served_model_names.front(), engine.max_model_len(),
               engine.stats().kv_blocks_total, runner.block_size());
  std::vector<std::thread> io_threads;
  for (int i = 1; i < o.http_threads; ++i) io_threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : io_threads) t.join();
  engine_thread.join();
  engine_owner.reset();
  spdlog::info("dsinfer serve: stopped");
  return engine_failed ? 1 : 0;
}

}  // namespace

}  // namespace dsi::server
