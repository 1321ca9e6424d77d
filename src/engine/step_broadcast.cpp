#include "engine/step_broadcast.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "engine/model_runner.h"

namespace dsi {

namespace {

// Header of a step message: sizes of what follows, so that the payload is one broadcast.
struct StepHeader {
  int64_t magic = 0x64736970'73746570;  // "dsipstep": a rank out of step shows up as a bad header
  int64_t stop = 0;
  int64_t payload_bytes = 0;
};

class Writer {
 public:
  template <class T>
  void put(const std::vector<T>& v) {
    put_value(int64_t(v.size()));
    const auto* p = reinterpret_cast<const std::byte*>(v.data());
    bytes.insert(bytes.end(), p, p + v.size() * sizeof(T));
  }
  void put_value(int64_t v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof v);
  }
  std::vector<std::byte> bytes;
};

class Reader {
 public:
  explicit Reader(const std::vector<std::byte>& b) : b_(b) {}
  int64_t value() {
    int64_t v = 0;
    take(&v, sizeof v);
    return v;
  }
  template <class T>
  void get(std::vector<T>& v) {
    const int64_t n = value();
    if (n < 0 || size_t(n) * sizeof(T) > b_.size() - at_) fail("step message: a length runs past the message");
    v.resize(size_t(n));
    take(v.data(), size_t(n) * sizeof(T));
  }

 private:
  void take(void* out, size_t n) {
    if (n > b_.size() - at_) fail("step message: truncated");
    if (n == 0) return;  // an empty vector's data() may be null, which memcpy may not take
    std::memcpy(out, b_.data() + at_, n);
    at_ += n;
  }
  const std::vector<std::byte>& b_;
  size_t at_ = 0;
};

void read_batch(Reader& r, int64_t payload_bytes, ForwardBatch& batch) {
  r.get(batch.token_ids);
  r.get(batch.positions);
  r.get(batch.kv_slots);
  r.get(batch.logit_rows);
  const int64_t n_seqs = r.value();
  if (n_seqs < 0 || n_seqs > payload_bytes) fail("step message: {} sequences", n_seqs);
  for (int64_t i = 0; i < n_seqs; ++i) {
    std::vector<int32_t> f;
    r.get(f);
    if (f.size() != 3) fail("step message: a sequence record has {} fields", f.size());
    BatchSequence s{f[0], f[1], f[2], {}};
    r.get(s.block_table);
    batch.sequences.push_back(std::move(s));
  }
}

}  // namespace

void broadcast_step(Communicator& world, std::span<const ForwardBatch> batches, bool stop) {
  Writer w;
  if (!stop) w.put_value(int64_t(batches.size()));
  for (const ForwardBatch& batch : stop ? std::span<const ForwardBatch>{} : batches) {
    w.put(batch.token_ids);
    w.put(batch.positions);
    w.put(batch.kv_slots);
    w.put(batch.logit_rows);
    w.put_value(int64_t(batch.sequences.size()));
    for (const auto& s : batch.sequences) {
      w.put(std::vector<int32_t>{s.first_row, s.n_tokens, s.n_cached});
      w.put(s.block_table);
    }
  }
  StepHeader h;
  h.stop = stop;
  h.payload_bytes = int64_t(w.bytes.size());
  world.broadcast({reinterpret_cast<std::byte*>(&h), sizeof h}, 0);
  if (!w.bytes.empty()) world.broadcast(w.bytes, 0);
}

bool receive_step(Communicator& world, std::vector<ForwardBatch>& batches) {
  StepHeader h{};
  h.magic = 0;
  {
    // An idle server sends no step: the wait for the next one has no bound (a rank 0 that dies
    // ends the job through mpirun).
    const ScopedTimeout idle(world, std::chrono::hours(24 * 365));
    world.broadcast({reinterpret_cast<std::byte*>(&h), sizeof h}, 0);
  }
  if (h.magic != StepHeader{}.magic) fail("step message from rank 0 has a bad header: the ranks are out of step");
  if (h.stop) return false;
  std::vector<std::byte> payload(size_t(h.payload_bytes));
  world.broadcast(payload, 0);
  Reader r(payload);
  const int64_t n_batches = r.value();
  if (n_batches < 1 || n_batches > world.size()) fail("step message: {} batches for {} ranks", n_batches, world.size());
  batches.assign(size_t(n_batches), ForwardBatch{});
  for (ForwardBatch& batch : batches) read_batch(r, h.payload_bytes, batch);
  return true;
}

void run_worker(ModelRunner& runner) {
  const ParallelContext& p = runner.parallel();
  if (!p.world) fail("run_worker: not a parallel run");
  std::vector<ForwardBatch> batches;
  int64_t n_steps = 0;
  while (receive_step(*p.world, batches)) {
    runner.run_step(batches);
    ++n_steps;
  }
  spdlog::debug("rank {}: {} steps, stopped by rank 0", p.world_rank, n_steps);
}

}  // namespace dsi
