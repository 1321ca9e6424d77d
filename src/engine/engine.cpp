#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "engine/device_sampling.h"
#include "engine/dp_scheduler.h"
#include "parallel/communicator.h"

namespace dsi {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::finish_none: return nullptr;
    case FinishReason::finish_stop: return "stop";
    case FinishReason::finish_length: return "length";
    case FinishReason::finish_abort: return "abort";
    case FinishReason::finish_error: return "error";
  }
  return nullptr;
}

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

struct Engine::Impl {
  Impl(ModelRunner& runner, const EngineOptions& o)
      : scheduler(block_managers(runner), o.max_num_seqs, o.max_num_batched_tokens, o.scheduling_policy) {}
  static std::vector<KvBlockManager*> block_managers(ModelRunner& runner) {
    std::vector<KvBlockManager*> out;
    for (int d = 0; d < runner.n_block_managers(); ++d) out.push_back(&runner.blocks(d));
    return out;
  }

  // Shared with other threads, under `mutex`.
  std::mutex mutex;
  std::condition_variable wake;
  std::vector<std::unique_ptr<Sequence>> inbox;
  std::vector<std::pair<RequestId, FinishReason>> finishes;
  bool stopping = false, draining = false;
  int64_t n_queued = 0;  // inbox + waiting + running, for the overload check
  // The engine thread's stats at its latest step; n_waiting also counts what the engine thread
  // took from the inbox since (it is waiting in the scheduler, not yet published).
  EngineStats published;

  // The engine thread's own.
  DpScheduler scheduler;  // one Scheduler per data-parallel rank (one without DP attention)
  EngineStats stats;
  std::optional<ExpertLoadWindow> expert_load;  // MoE models with the readback on
  Clock::time_point memory_read_at{};            // when publish last read the device's free memory
};

Engine::Engine(ModelRunner& runner, const EngineOptions& options)
    : runner_(runner), options_(options), impl_(std::make_unique<Impl>(runner, options)) {
  const int64_t cache_tokens = runner.blocks().n_blocks() * runner.block_size();
  const int64_t limit = std::min<int64_t>(runner.config().max_position_embeddings, cache_tokens);
  max_model_len_ = options.max_model_len > 0 ? options.max_model_len : limit;
  if (max_model_len_ > cache_tokens)
    fail("--max-model-len {} exceeds what the KV cache holds ({} tokens); raise --kv-cache-memory", max_model_len_,
         cache_tokens);
  if (max_model_len_ > runner.config().max_position_embeddings)
    fail("--max-model-len {} exceeds the model's max_position_embeddings {}", max_model_len_,
         runner.config().max_position_embeddings);
  // A step must fit the runner's workspace, which was sized at startup.
  const StepLimits& ws = runner.step_limits();
  if (options.max_num_batched_tokens > ws.max_tokens ||
      std::min(options.max_num_seqs, options.max_num_batched_tokens) > ws.max_seqs ||
      std::min(options.max_num_seqs, options.max_num_batched_tokens) > ws.max_logit_rows ||
      max_model_len_ > ws.max_blocks_per_seq * runner.block_size())
    fail("engine limits (max_num_batched_tokens {}, max_num_seqs {}, max_model_len {}) exceed the model runner's "
         "workspace ({} tokens, {} sequences, {} logit rows, {} tokens of context)",
         options.max_num_batched_tokens, options.max_num_seqs, max_model_len_, ws.max_tokens, ws.max_seqs,
         ws.max_logit_rows, ws.max_blocks_per_seq * runner.block_size());
  impl_->stats.kv_blocks_total = impl_->scheduler.kv_stats().n_blocks;
  impl_->stats.data_parallel = impl_->scheduler.rank_stats();
  impl_->stats.memory = runner.memory();
  const ModelConfig& c = runner.config();
  if (impl_->scheduler.n_ranks() > 1)
    spdlog::info("engine: data-parallel attention over {} ranks, each with its own scheduler and KV pool of {} blocks; "
                 "requests go to the rank with the least KV in use",
                 impl_->scheduler.n_ranks(), runner.blocks().n_blocks());
  std::vector<int> moe_layers;
  for (int l = 0; l < c.n_layers; ++l)
    if (c.is_moe_layer(l)) moe_layers.push_back(l);
  if (options.expert_load_window_steps < 0)
    fail("expert_load_window_steps {} must be at least 0", options.expert_load_window_steps);
  if (options.expert_load_window_steps > 0 && !moe_layers.empty()) {
    impl_->expert_load.emplace(c.n_layers, c.n_routed_experts, std::move(moe_layers), options.expert_load_window_steps);
    impl_->stats.expert_load = impl_->expert_load->load();
  }
  impl_->published = impl_->stats;
  spdlog::info("engine: max_model_len {}, max_num_seqs {}, max_num_batched_tokens {}", max_model_len_,
               options.max_num_seqs, options.max_num_batched_tokens);
}

Engine::~Engine() = default;

namespace {

void validate_request(const EngineRequest& request, const ModelConfig& c, int64_t max_model_len) {
  const int64_t n = int64_t(request.prompt.size());
  if (n == 0) fail("the prompt is empty");
  for (int32_t t : request.prompt)
    if (t < 0 || t >= c.vocab_size) fail("prompt token id {} is outside the model's vocabulary of {}", t, c.vocab_size);
  validate_sampling(request.sampling, c.vocab_size);
  if (n + request.sampling.max_tokens > max_model_len)
    fail("this model's maximum context length is {} tokens; the request needs {} ({} in the prompt, {} to generate)",
         max_model_len, n + request.sampling.max_tokens, n, request.sampling.max_tokens);
  if (!request.on_output) fail("submit: no output callback");
}

}  // namespace

RequestId Engine::submit(EngineRequest request) {
  std::vector<EngineRequest> group;
  group.push_back(std::move(request));
  return submit(std::move(group)).front();
}

std::vector<RequestId> Engine::submit(std::vector<EngineRequest> requests) {
  static std::atomic<RequestId> next_id{1};
  const size_t n = requests.size();
  if (n == 0) fail("submit: no requests");
  for (size_t i = 0; i < n; ++i) {
    if (n == 1) validate_request(requests[i], runner_.config(), max_model_len_);
    else with_context(fmt::format("request {} of {}", i + 1, n),
                      [&] { validate_request(requests[i], runner_.config(), max_model_len_); });
  }
  // The queue holds a full batch running plus max_waiting_requests waiting; a group larger
  // than that would be refused forever, so it is the client's to split (not "retry later").
  // (Under DP attention every DP rank runs up to max_num_seqs.)
  const int64_t running = int64_t(options_.max_num_seqs) * impl_->scheduler.n_ranks();
  const int64_t capacity = int64_t(options_.max_waiting_requests) + running;
  if (int64_t(n) > capacity)
    throw SubmitError(SubmitRefusal::submit_too_large,
                      fmt::format("{} requests (prompts x n) at once are more than this server ever queues: {} "
                                  "(--max-num-seqs {} running + --max-waiting-requests {} waiting); split them",
                                  n, capacity, running, options_.max_waiting_requests));
  // Sequences are built (and the prompts moved) before the lock, ids taken under it.
  std::vector<std::unique_ptr<Sequence>> seqs;
  seqs.reserve(n);
  for (auto& r : requests) seqs.push_back(std::make_unique<Sequence>(0, std::move(r)));
  std::vector<RequestId> ids;
  ids.reserve(n);
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping || impl_->draining)
      throw SubmitError(SubmitRefusal::submit_shutting_down, "the server is shutting down");
    if (impl_->n_queued + int64_t(n) > capacity)
      throw SubmitError(SubmitRefusal::submit_overloaded,
                        fmt::format("overloaded: {} requests are queued or running, and {} more do not fit in {} "
                                    "(--max-num-seqs {} running + --max-waiting-requests {} waiting); retry later",
                                    impl_->n_queued, n, capacity, running,
                                    options_.max_waiting_requests));
    impl_->n_queued += int64_t(n);
    for (auto& seq : seqs) {
      seq->id = next_id++;
      ids.push_back(seq->id);
      impl_->inbox.push_back(std::move(seq));
    }
  }
  impl_->wake.notify_one();
  return ids;
}

void Engine::finish(RequestId id, FinishReason reason) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->finishes.emplace_back(id, reason);
  }
  impl_->wake.notify_one();
}

bool Engine::has_work() {
  std::lock_guard lock(impl_->mutex);
  return !impl_->inbox.empty() || !impl_->finishes.empty() || impl_->n_queued > 0;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mutex);
  EngineStats s = impl_->published;
  // Submitted requests wait in the inbox until the next step takes them: still waiting. (The
  // step itself may take long, e.g. a big prefill, so a snapshot of the scheduler alone would
  // show a long queue as empty.)
  s.n_waiting += int(impl_->inbox.size());
  return s;
}

void Engine::stop(bool drain) {
  {
    std::lock_guard lock(impl_->mutex);
    if (drain && !impl_->draining) impl_->draining = true;
    else impl_->stopping = true;
  }
  impl_->wake.notify_all();
}

void Engine::run() {
  for (;;) {
    {
      std::unique_lock lock(impl_->mutex);
      impl_->wake.wait(lock, [&] {
        return impl_->stopping || impl_->draining || !impl_->inbox.empty() || !impl_->finishes.empty() ||
               impl_->n_queued > 0;
      });
      if (impl_->draining && impl_->n_queued == 0 && impl_->inbox.empty()) impl_->stopping = true;
      if (impl_->stopping) {
        // Whatever is still queued or running ends now, aborted.
        for (auto& seq : impl_->inbox) impl_->scheduler.add(std::move(seq));  // (placed, then aborted)
        impl_->inbox.clear();
        for (RequestId id : impl_->scheduler.ids()) impl_->finishes.emplace_back(id, FinishReason::finish_abort);
        lock.unlock();
        step();
        return;
      }
    }
    step();
  }
}

bool Engine::step() {
  auto& im = *impl_;
  const auto t0 = Clock::now();
  std::vector<std::unique_ptr<Sequence>> arrived;
  std::vector<std::pair<RequestId, FinishReason>> finishes;
  {
    std::lock_guard lock(im.mutex);
    arrived.swap(im.inbox);
    finishes.swap(im.finishes);
    im.published.n_waiting += int(arrived.size());  // they join the waiting queue now
  }
  for (auto& s : arrived) im.scheduler.add(std::move(s));

  auto end_sequence = [&](std::unique_ptr<Sequence> seq, FinishReason reason, RequestOutput out) {
    out.id = seq->id;
    out.finish = reason;
    out.n_prompt_tokens = seq->n_prompt;
    out.n_cached_prompt_tokens = std::max(seq->n_cached_prompt, 0);
    out.n_generated = seq->n_generated();
    out.first_scheduled = seq->first_scheduled;
    seq->on_output(std::move(out));
    std::lock_guard lock(im.mutex);
    --im.n_queued;
  };
  for (auto& [id, reason] : finishes)
    if (auto seq = im.scheduler.remove(id)) end_sequence(std::move(seq), reason, {});

  auto publish = [&] {
    im.stats.n_running = im.scheduler.n_running();
    im.stats.n_waiting = im.scheduler.n_waiting();
    im.stats.preemptions_total = im.scheduler.n_preemptions();
    im.stats.prefix_queried_tokens = im.scheduler.prefix_queried_tokens();
    im.stats.prefix_hit_tokens = im.scheduler.prefix_hit_tokens();
    const KvCacheStats kv = im.scheduler.kv_stats();
    if (im.scheduler.n_ranks() > 1) im.stats.data_parallel = im.scheduler.rank_stats();
    im.stats.kv_blocks_used = kv.n_used;
    im.stats.kv_blocks_cached = kv.n_cached;
    if (im.expert_load) im.stats.expert_load = im.expert_load->load();
    // The device's free memory, read by the engine thread (it owns the backend) at most once a
    // second: a scrape interval, not a per-step cost (the CPU backend reads /proc/meminfo).
    if (const auto now = Clock::now(); now - im.memory_read_at >= std::chrono::seconds(1)) {
      im.stats.memory.device_free_bytes = runner_.backend().device_memory().free;
      im.memory_read_at = now;
    }
    std::lock_guard lock(im.mutex);
    im.published = im.stats;
  };

  // Every DP rank's work (one rank without DP attention); batch_plan is their concatenation
  // in rank order, which is also the order of the logits rows the forward returns.
  auto rank_plans = im.scheduler.schedule();
  std::vector<ScheduledSequence> batch_plan;
  for (const auto& p : rank_plans) batch_plan.insert(batch_plan.end(), p.begin(), p.end());
  if (batch_plan.empty()) {
    im.stats.scheduler_seconds_total += seconds_since(t0);
    publish();
    return !finishes.empty() || !arrived.empty();
  }

  const auto scheduled_at = Clock::now();
  for (const auto& s : batch_plan)
    if (!s.seq->first_scheduled) s.seq->first_scheduled = scheduled_at;

  // Each rank's batch: each sequence's new tokens, positions and cache slots, in plan order.
  std::vector<ForwardBatch> batches(rank_plans.size());
  const int bs = runner_.block_size();
  for (size_t d = 0; d < rank_plans.size(); ++d) {
    ForwardBatch& batch = batches[d];
    for (const auto& s : rank_plans[d]) {
      const Sequence& seq = *s.seq;
      BatchSequence bseq{int32_t(batch.token_ids.size()), s.n_new, seq.n_computed, seq.block_table};
      for (int i = 0; i < s.n_new; ++i) {
        const int pos = seq.n_computed + i;
        batch.token_ids.push_back(seq.tokens[size_t(pos)]);
        batch.positions.push_back(pos);
        batch.kv_slots.push_back(int64_t(seq.block_table[size_t(pos / bs)]) * bs + pos % bs);
      }
      if (s.samples) batch.logit_rows.push_back(bseq.first_row + s.n_new - 1);
      batch.sequences.push_back(std::move(bseq));
    }
  }
  size_t n_logit_rows = 0;
  for (const auto& b : batches) n_logit_rows += b.logit_rows.size();
  const int64_t vocab = runner_.config().vocab_size;
  // The logits stay on the device and are sampled there where the runner can (one rank, a
  // device sampler) and every sequence suits it; otherwise they come to the host.
  const bool on_device = options_.device_sampling && runner_.samples_on_device() &&
                         std::all_of(batch_plan.begin(), batch_plan.end(), [](const ScheduledSequence& s) {
                           return !s.samples || suits_device_sampling(s.seq->sampling);
                         });
  const std::span<float> logits = on_device ? std::span<float>{} : runner_.host_logits(int64_t(n_logit_rows));
  const auto t1 = Clock::now();
  im.stats.scheduler_seconds_total += std::chrono::duration<double>(t1 - t0).count();

  // Collectives inside the step are its communication phase, not forward (docs/metrics.md).
  const CommunicationClock* comm = runner_.parallel().comm_clock.get();
  const double comm_before = comm ? comm->seconds() : 0.0;
  try {
    if (on_device) runner_.forward_on_device(batches[0]);
    else runner_.forward_plan(batches, logits);
  } catch (const std::exception& e) {
    // A failed step fails the requests in it, never the server; unless a rank of a parallel
    // group failed (a collective timed out): then no step can run again, every request fails
    // as unavailable (503) and the engine stops with the error (serve then exits non-zero).
    const bool group_failed = dynamic_cast<const CollectiveTimeout*>(&e) != nullptr;
    spdlog::error("forward step failed: {}", e.what());
    std::vector<RequestId> failed;
    if (group_failed) failed = im.scheduler.ids();
    else
      for (const auto& s : batch_plan) failed.push_back(s.seq->id);
    for (RequestId id : failed)
      if (auto seq = im.scheduler.remove(id)) {
        RequestOutput out;
        out.error = e.what();
        out.server_unavailable = group_failed;
        end_sequence(std::move(seq), FinishReason::finish_error, std::move(out));
      }
    publish();
    if (group_failed) throw;
    return true;
  }
  // The router's per-expert counts of this step (a few KiB; the step has synchronised on its
  // logits already). Counted as forward time: it is the model's output.
  if (im.expert_load) im.expert_load->add(runner_.expert_counts());
  const auto t2 = Clock::now();
  const double comm_seconds = comm ? comm->seconds() - comm_before : 0.0;
  im.stats.communication_seconds_total += comm_seconds;
  im.stats.forward_seconds_total += std::chrono::duration<double>(t2 - t1).count() - comm_seconds;

  // Sample every sequence whose newest token was computed, in parallel: sequences are
  // independent (each has its own logits row and random stream), and the pass over the
  // vocabulary per sequence is the cost. A sequence whose sampling fails ends with an error.
  std::vector<const ScheduledSequence*> sampling_plan;
  for (const auto& s : batch_plan)
    if (s.samples) sampling_plan.push_back(&s);
  std::vector<GeneratedToken> sampled(sampling_plan.size());
  std::vector<std::string> sampling_errors(sampling_plan.size());
  auto context_of = [&](const Sequence& seq) {
    return SampleContext{std::span(seq.tokens).first(size_t(seq.n_prompt)), seq.n_generated(),
                         runner_.config().eos_token_ids, std::span(seq.tokens).subspan(size_t(seq.n_prompt))};
  };
  if (on_device) {
    std::vector<SampleInput> inputs;
    inputs.reserve(sampling_plan.size());
    for (const ScheduledSequence* s : sampling_plan)
      inputs.push_back({&s->seq->sampling, &s->seq->sampler, context_of(*s->seq)});
    try {
      sample_rows_on_device(runner_, inputs, sampled, sampling_errors);
    } catch (const std::exception& e) {  // the launch itself failed: every row of the step fails
      for (auto& error : sampling_errors) error = e.what();
    }
  } else {
#pragma omp parallel for schedule(dynamic, 1) if (sampling_plan.size() > 1)
    for (size_t row = 0; row < sampling_plan.size(); ++row) {
      Sequence& seq = *sampling_plan[row]->seq;
      std::span<float> row_logits(logits.data() + row * size_t(vocab), size_t(vocab));
      try {
        sampled[row] = sample_token(row_logits, seq.sampling, seq.sampler, context_of(seq));
      } catch (const std::exception& e) {
        sampling_errors[row] = e.what();
      }
    }
  }
  const auto t3 = Clock::now();
  im.stats.sampling_seconds_total += std::chrono::duration<double>(t3 - t2).count();

  const auto& eos = runner_.config().eos_token_ids;
  size_t row = 0;
  for (const auto& s : batch_plan) {
    Sequence& seq = *s.seq;
    const int prompt_before = seq.n_prompt_computed_ever;
    im.scheduler.computed(s);
    im.stats.prompt_tokens_total += seq.n_prompt_computed_ever - prompt_before;
    if (!s.samples) continue;
    if (std::string& error = sampling_errors[row]; !error.empty()) {
      spdlog::error("request {}: {}", seq.id, error);
      RequestOutput out;
      out.error = std::move(error);
      ++row;
      end_sequence(im.scheduler.remove(seq.id), FinishReason::finish_error, std::move(out));
      continue;
    }
    GeneratedToken tok = std::move(sampled[row++]);
    seq.tokens.push_back(tok.token);
    ++im.stats.generation_tokens_total;
    const auto& sp = seq.sampling;
    const bool is_eos = !sp.ignore_eos && std::find(eos.begin(), eos.end(), tok.token) != eos.end();
    const bool is_stop = std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), tok.token) != sp.stop_token_ids.end();
    FinishReason reason = FinishReason::finish_none;
    RequestOutput out;
    if (is_eos || is_stop) {  // (the sampler masks both before min_tokens)
      reason = FinishReason::finish_stop;
      out.stop_token = tok.token;
    } else if (seq.n_generated() >= sp.max_tokens || int64_t(seq.tokens.size()) >= max_model_len_) {
      reason = FinishReason::finish_length;
    }
    out.tokens.push_back(std::move(tok));
    if (reason == FinishReason::finish_none) {
      out.id = seq.id;
      out.n_prompt_tokens = seq.n_prompt;
      out.n_cached_prompt_tokens = std::max(seq.n_cached_prompt, 0);
      out.n_generated = seq.n_generated();
      out.first_scheduled = seq.first_scheduled;
      seq.on_output(std::move(out));
    } else {
      end_sequence(im.scheduler.remove(seq.id), reason, std::move(out));
    }
  }
  ++im.stats.steps_total;
  im.stats.scheduler_seconds_total += seconds_since(t3);
  publish();
  return true;
}

}  // namespace dsi
