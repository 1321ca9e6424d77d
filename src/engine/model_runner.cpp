#include "engine/model_runner.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>

#include "backend/ops.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "core/log.h"
#include "engine/step_broadcast.h"
#include "engine/step_padding.h"
#include "model/sharding.h"
#include "model/weight_upload.h"
#include "parallel/device_collectives_factory.h"

namespace dsi {

namespace {

// How long the ranks wait for one another after loading their weights (the step timeout, 20 s by
// default, bounds waits inside a step, where every rank runs the same work).
constexpr std::chrono::milliseconds kLoadSkewTimeout = std::chrono::minutes(30);

int64_t kv_row_bytes(const ModelConfig& c, DType kv_dtype) { return c.kv_cache_dim() * int64_t(dtype_size(kv_dtype)); }

int64_t block_bytes(const ModelConfig& c, const RunnerOptions& o, const Backend& backend) {
  return int64_t(c.n_layers) * o.block_size * kv_row_bytes(c, backend.kv_dtype());
}

int64_t capped(int64_t n, const RunnerOptions& o) { return o.max_kv_blocks > 0 ? std::min(n, o.max_kv_blocks) : n; }

// Blocks of an explicit --kv-cache-memory (or the CPU's default).
int64_t block_count(const ModelConfig& c, const RunnerOptions& o, const Backend& backend, int64_t kv_bytes) {
  // Checked before the block bookkeeping is sized by it: a cache in host memory cannot be
  // larger than the machine's memory.
  const int64_t total = host_memory().total_bytes;
  if (backend.name() == "cpu" && total > 0 && kv_bytes > total)
    fail("--kv-cache-memory {} bytes is more than this machine has: {}", kv_bytes, host_memory_summary());
  const int64_t per_block = block_bytes(c, o, backend);
  const int64_t n = capped(kv_bytes / per_block, o);
  if (n < 1)
    fail("--kv-cache-memory {} bytes holds no block of {} tokens ({} bytes per block for {} layers)", kv_bytes,
         o.block_size, per_block, c.n_layers);
  return n;
}

double gib(int64_t bytes) { return double(bytes) / double(int64_t(1) << 30); }

// Blocks that --gpu-memory-utilization leaves on a GPU once everything else is allocated,
// with vLLM's meaning: the fraction of the whole GPU this process may use (other processes on
// the GPU do not count against it, but the cache never takes more than is free).
int64_t gpu_block_count(const ModelConfig& c, const RunnerOptions& o, Backend& backend, int64_t weights,
                        int64_t workspace) {
  const double u = o.gpu_memory_utilization;
  if (!(u > 0 && u <= 1)) fail("--gpu-memory-utilization {} must be in (0, 1]", u);
  const DeviceMemory m = backend.device_memory();
  const int64_t budget = int64_t(u * double(m.total));
  const int64_t per_block = block_bytes(c, o, backend);
  const int64_t room = std::min(budget - m.used_by_backend, m.free) - kGpuKvReserveBytes;
  const int64_t n = capped(room > 0 ? room / per_block : 0, o);
  if (n < 1)
    fail("--gpu-memory-utilization {} allows this process {:.2f} GiB of {}'s {:.2f} GiB; it holds {:.2f} GiB "
         "already (weights {:.2f} GiB, workspace {:.2f} GiB, the rest scratch) and {:.2f} GiB are free, which leaves "
         "no room for one KV block of {} tokens ({} bytes) beside a reserve of {} MiB for the CUDA context and "
         "libraries: raise --gpu-memory-utilization, lower --max-num-batched-tokens, or set --kv-cache-memory",
         u, gib(budget), backend.name(), gib(m.total), gib(m.used_by_backend), gib(weights), gib(workspace),
         gib(m.free), o.block_size, per_block, kGpuKvReserveBytes >> 20);
  return n;
}

StepLimits make_step_limits(const ModelConfig& c, const RunnerOptions& o, int64_t n_blocks) {
  if (o.max_num_batched_tokens < 1) fail("--max-num-batched-tokens {} must be at least 1", o.max_num_batched_tokens);
  if (o.max_num_seqs < 1) fail("--max-num-seqs {} must be at least 1", o.max_num_seqs);
  StepLimits l;
  l.max_tokens = o.max_num_batched_tokens;
  l.max_seqs = std::min<int64_t>(o.max_num_seqs, o.max_num_batched_tokens);
  l.max_logit_rows = o.max_logit_rows > 0 ? o.max_logit_rows : l.max_seqs;
  int64_t context = std::min<int64_t>(c.max_position_embeddings, n_blocks * o.block_size);
  if (o.max_model_len > 0) context = std::min(context, o.max_model_len);
  l.max_blocks_per_seq = std::max<int64_t>(1, (context + o.block_size - 1) / o.block_size);
  return l;
}

}  // namespace

ModelRunner::ModelRunner(ModelConfig config, ModelWeights weights, const RunnerOptions& options)
    : backend_(make_backend(options.backend)), parallel_(options.parallel) {
  const auto start = std::chrono::steady_clock::now();
  Backend& be = *backend_;
  // Under a parallel layout: this rank's slices, and its share of the heads and widths.
  weights = shard_weights(config, options.parallel, std::move(weights));
  config = local_config(options.parallel, config);
  if (options.block_size <= 0 || options.block_size > 4096)
    fail("--block-size {} must be in [1, 4096]", options.block_size);
  const bool on_host = be.name() == "cpu";
  const bool sized_by_utilization = options.kv_cache_bytes <= 0 && !on_host;
  const int64_t free_before = be.device_memory().free;
  const int64_t weight_bytes = int64_t(weights.n_bytes);
  weights = upload_weights(be, std::move(weights));
  // On a GPU the weights take what the upload converted them to (e.g. FP8 dequantised).
  memory_.weight_bytes = on_host ? weight_bytes : free_before - be.device_memory().free;
  make_collectives(options.device_collectives);

  // Everything a step uses is allocated before the cache (the workspace here, the backend's
  // scratch at its creation), so a cache sized by what is left never starves a step.
  int64_t n_blocks = 0;
  if (!sized_by_utilization)
    n_blocks = block_count(config, options, be, options.kv_cache_bytes > 0 ? options.kv_cache_bytes : kDefaultCpuKvBytes);
  const int64_t context_blocks =
      n_blocks > 0 ? n_blocks : (config.max_position_embeddings + options.block_size - 1) / options.block_size;
  const StepLimits limits = make_step_limits(config, options, context_blocks);
  // Sized by utilization, the block count is known only once the workspace exists: until then
  // the bounds carry the largest count the context allows.
  workspace_ = std::make_unique<Workspace>(be, config, limits,
                                           StepBounds{config.vocab_size, n_blocks > 0 ? n_blocks : context_blocks,
                                                      options.block_size});
  memory_.workspace_bytes = workspace_->n_bytes();
  spdlog::info("workspace: {:.1f} MiB for steps of up to {} tokens, {} sequences, {} logit rows",
               double(workspace_->n_bytes()) / double(1 << 20), limits.max_tokens, limits.max_seqs,
               limits.max_logit_rows);
  if (sized_by_utilization) {
    n_blocks = gpu_block_count(config, options, be, memory_.weight_bytes, memory_.workspace_bytes);
    if (parallel_.world && parallel_.world->size() > 1) {
      // Rank 0 schedules blocks for every rank, so all hold the same count: the smallest.
      // (Exchanged as two 24-bit halves: floats carry them exactly.)
      const float mine[2] = {float(n_blocks >> 24), float(n_blocks & 0xffffff)};
      std::vector<float> all(size_t(2 * parallel_.world->size()));
      // Each rank gets here when its own slices are loaded, which may take minutes longer on one
      // than on another (a slower disk, a larger shard): the step timeout would end a healthy start.
      const ScopedTimeout loading(*parallel_.world, std::max(parallel_.world->timeout(), kLoadSkewTimeout));
      parallel_.world->all_gather(mine, all);
      for (size_t r = 0; r < all.size(); r += 2)
        n_blocks = std::min(n_blocks, (int64_t(all[r]) << 24) | int64_t(all[r + 1]));
    }
    workspace_->step.bounds.n_kv_blocks = n_blocks;
  }
  // Rank 0 keeps the bookkeeping of every DP rank's pool (they hold the same block count).
  const int n_managers = parallel_.is_root() ? parallel_.dp_size : 1;
  for (int d = 0; d < n_managers; ++d)
    blocks_.push_back(std::make_unique<KvBlockManager>(n_blocks, options.block_size, options.prefix_caching));

  cache_.n_layers = config.n_layers;
  cache_.n_blocks = n_blocks;
  cache_.block_size = options.block_size;
  const int64_t n_rows = cache_.n_layers * cache_.n_blocks * cache_.block_size;
  // A size beyond the machine must be a startup error that says so, not std::bad_alloc.
  const int64_t n_bytes = n_rows * kv_row_bytes(config, be.kv_dtype());
  if (!on_host) {
    const DeviceMemory m = be.device_memory();
    if (n_bytes > m.free)
      fail("--kv-cache-memory {} bytes ({} blocks of {} tokens) is more than {} has free: {:.2f} GiB free of {:.2f} GiB "
           "after the weights ({:.2f} GiB) and the workspace ({:.2f} GiB)",
           options.kv_cache_bytes > 0 ? options.kv_cache_bytes : n_bytes, n_blocks, options.block_size, be.name(),
           gib(m.free), gib(m.total), gib(memory_.weight_bytes), gib(memory_.workspace_bytes));
  }
  try {
    cache_memory_ = be.alloc(be.kv_dtype(), n_rows, config.kv_cache_dim());
  } catch (const std::bad_alloc&) {
    fail("--kv-cache-memory: allocating {} bytes ({} blocks) on {} failed; host memory: {}", n_bytes, cache_.n_blocks,
         be.name(), host_memory_summary());
  } catch (const Error& e) {
    fail("--kv-cache-memory: {} bytes ({} blocks) do not fit on {}: {}", n_bytes, cache_.n_blocks, be.name(), e.what());
  }
  memory_.kv_cache_bytes = n_bytes;
  cache_.pool = cache_memory_.t;
  const int64_t kv_token_bytes = kv_row_bytes(config, be.kv_dtype()) * config.n_layers;
  spdlog::info("KV cache: {} blocks of {} tokens ({} tokens, {:.1f} MiB of {}, {} bytes per token){}", cache_.n_blocks,
               cache_.block_size, cache_.n_blocks * cache_.block_size, double(n_bytes) / double(1 << 20),
               dtype_name(be.kv_dtype()), kv_token_bytes,
               sized_by_utilization ? fmt::format(", sized by --gpu-memory-utilization {}", options.gpu_memory_utilization)
                                    : std::string());
  model_ = std::make_unique<DeepSeekModel>(std::move(config), std::move(weights), be, parallel_);
  if (options.dump.enabled()) {
    dump_ = std::make_unique<TensorDump>(be, options.dump);
    model_->set_dump(dump_.get());
  }
  be.synchronize();
  memory_.device = be.name();
  const DeviceMemory device = be.device_memory();
  memory_.device_free_bytes = device.free;
  memory_.device_total_bytes = device.total;
  ready_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("model ready on {} in {:.2f} s after loading (upload, cache, workspace); memory: weights {:.2f} GiB, "
               "workspace {:.2f} GiB, KV cache {:.2f} GiB; device {:.2f} GiB free of {:.2f}",
               be.name(), ready_seconds_, gib(memory_.weight_bytes), gib(memory_.workspace_bytes),
               gib(memory_.kv_cache_bytes), gib(device.free), gib(device.total));
}

// Made before the workspace and the cache are sized: NCCL's own buffers take GPU memory like
// anything else. The ranks get here as each finishes uploading its slices, which may be minutes
// apart, so NCCL's bootstrap gets the loading allowance; each later call has the step timeout
// again (the NCCL collectives read it from the host communicators).
void ModelRunner::make_collectives(DeviceCollectivesMode mode) {
  if (!parallel_.world) return;
  const auto allowance = std::max(parallel_.world->timeout(), kLoadSkewTimeout);
  const ScopedTimeout world_loading(*parallel_.world, allowance), tp_loading(*parallel_.tp, allowance);
  parallel_.world_device = make_device_collectives(mode, parallel_.world, *backend_, parallel_.comm_clock);
  parallel_.tp_device = make_device_collectives(mode, parallel_.tp, *backend_, parallel_.comm_clock);
}

int64_t ModelRunner::kv_bytes_per_token() const {
  return kv_row_bytes(config(), backend_->kv_dtype()) * config().n_layers;
}

void ModelRunner::forward(const ForwardBatch& batch, std::span<float> logits) {
  if (parallel_.dp_size == 1) return forward_plan({&batch, 1}, logits);
  std::vector<ForwardBatch> plan(size_t(parallel_.dp_size));
  plan[0] = batch;
  forward_plan(plan, logits);
}

void ModelRunner::forward_plan(std::span<const ForwardBatch> batches, std::span<float> logits) {
  if (int(batches.size()) != parallel_.dp_size)
    fail("forward: a plan of {} batches for {} data-parallel ranks", batches.size(), parallel_.dp_size);
  if (parallel_.world && parallel_.is_root()) broadcast_step(*parallel_.world, batches);
  execute(batches, logits);
}

std::span<float> ModelRunner::host_logits(int64_t rows) {
  const int64_t vocab = config().vocab_size;
  if (host_logits_.t.rows < rows) host_logits_ = backend_->alloc_staging(DType::f32, rows, vocab);
  return {host_logits_.t.row<float>(0), size_t(rows * vocab)};
}

void ModelRunner::run_step(std::span<const ForwardBatch> batches) {
  if (int(batches.size()) != parallel_.dp_size)
    fail("step message: {} batches for {} data-parallel ranks", batches.size(), parallel_.dp_size);
  execute(batches, {});
}

bool ModelRunner::samples_on_device() const { return backend_->has_device_sampler() && parallel_.single(); }

void ModelRunner::forward_on_device(const ForwardBatch& batch) {
  if (!samples_on_device()) fail("forward_on_device: {} has no device sampler in this layout", backend_->name());
  run_batch(batch, {}, true);
  last_logit_rows_ = int64_t(batch.logit_rows.size());
}

void ModelRunner::sample_on_device(std::span<const sampling::SamplingRow> rows,
                                   std::span<const sampling::SamplingPenalty> penalties,
                                   std::span<sampling::SamplingResult> results) {
  if (int64_t(rows.size()) != last_logit_rows_)
    fail("sample_on_device: {} rows for the last step's {} logits rows", rows.size(), last_logit_rows_);
  ops::sample(*backend_, workspace_->logits.t.slice_rows(0, last_logit_rows_), rows, penalties, results);
}

void ModelRunner::run_batch(const ForwardBatch& batch, std::span<float> logits, bool on_device) {
  if (!on_device && int64_t(logits.size()) != int64_t(batch.logit_rows.size()) * config().vocab_size)
    fail("forward: logits buffer holds {} floats, expected {} rows x vocab {}", logits.size(), batch.logit_rows.size(),
         config().vocab_size);
  if (dump_) dump_->begin_step();
  // A decode step replays its CUDA graph, padded to the graph's batch size (step_padding.h).
  std::optional<uint64_t> key;
  if (backend_->records_steps() && model_->recordable()) {
    const StepLimits& l = workspace_->step.limits;
    key = decode_graph_key(batch, std::min({l.max_tokens, l.max_seqs, l.max_logit_rows}), padded_);
  }
  workspace_->step.begin(*backend_, padded_.token_ids.empty() ? batch : padded_);
  model_->forward(*workspace_, cache_, logits, key);
  if (dump_) dump_->end_step();
}

void ModelRunner::execute(std::span<const ForwardBatch> batches, std::span<float> root_logits) {
  const int64_t vocab = config().vocab_size;
  if (parallel_.dp_size == 1) {
    // Every rank runs the one batch; only rank 0's logits are wanted.
    if (parallel_.is_root()) return run_batch(batches[0], root_logits);
    own_logits_.resize(batches[0].logit_rows.size() * size_t(vocab));
    return run_batch(batches[0], own_logits_);
  }
  const ForwardBatch& mine = batches[size_t(parallel_.dp_rank)];
  own_logits_.resize(mine.logit_rows.size() * size_t(vocab));
  // A rank without tokens still serves its experts to the others (lockstep MoE exchange).
  idle_ = mine.n_tokens() == 0;
  if (!idle_) run_batch(mine, own_logits_);
  else model_->idle_forward(*workspace_);
  // Every rank's logits rows to rank 0, in DP rank order (an all-to-all in which only rank 0
  // receives; every rank knows the counts from the plan).
  const int W = parallel_.world_size;
  const int64_t row_bytes = vocab * int64_t(sizeof(float));
  std::vector<int64_t> send(size_t(W), 0), recv(size_t(W), 0);
  send[0] = int64_t(mine.logit_rows.size()) * row_bytes;
  int64_t total = 0;
  for (int d = 0; d < W; ++d) {
    const int64_t rows = int64_t(batches[size_t(d)].logit_rows.size());
    total += rows;
    if (parallel_.is_root()) recv[size_t(d)] = rows * row_bytes;
  }
  if (parallel_.is_root() && int64_t(root_logits.size()) != total * vocab)
    fail("forward: logits buffer holds {} floats, expected {} rows x vocab {}", root_logits.size(), total, vocab);
  parallel_.world->all_to_all(std::as_bytes(std::span(own_logits_)), send, std::as_writable_bytes(root_logits), recv);
}

void ModelRunner::stop_workers() {
  if (!parallel_.world || !parallel_.is_root() || workers_stopped_) return;
  workers_stopped_ = true;
  broadcast_step(*parallel_.world, {}, true);
}

std::vector<int32_t> ModelRunner::expert_counts() {
  const Tensor& t = workspace_->expert_counts.t;
  std::vector<int32_t> out(size_t(t.numel()));
  // (An idle DP step routed nothing here: the buffer still holds the step before.)
  if (t.numel() && !idle_) backend_->copy_to_host(t, out.data());
  return out;
}

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string number = text.substr(0, i), unit = text.substr(i);
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    fail("{} '{}' is not a size (examples: 1GiB, 512MiB, 2G, 1000000)", what, text);
  }
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "KB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else fail("{} '{}': unknown unit '{}' (B, KiB, MiB, GiB, TiB, KB, MB, GB)", what, text, unit);
  double bytes = v * mult;
  if (!(bytes >= 1) || bytes > 9e18) fail("{} '{}' is out of range", what, text);
  return int64_t(bytes);
}

}  // namespace dsi
