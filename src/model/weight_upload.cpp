#include "model/weight_upload.h"

#include <initializer_list>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"

namespace dsi {

namespace {

int64_t weight_bytes(const Weight& w) {
  int64_t n = w.w.numel() * int64_t(dtype_size(w.w.dtype));
  if (w.quantized()) n += w.scale.numel() * 4;
  return n;
}

class Uploader {
 public:
  Uploader(Backend& be, std::shared_ptr<void> owner, int64_t total_bytes)
      : be_(be), owner_(std::move(owner)), progress_("uploading weights to " + be.name(), total_bytes >> 20, "MiB") {}

  void weight(Weight& w) {
    if (!w.w.data) return;
    const int64_t n = weight_bytes(w);
    w = be_.upload(w, owner_);
    advance(n);
  }
  void weight(std::optional<Weight>& w) {
    if (w) weight(*w);
  }
  void vector(Tensor& t) {
    if (!t.data) return;
    const int64_t n = t.numel() * int64_t(dtype_size(t.dtype));
    t = be_.upload_vector(t, owner_);
    advance(n);
  }
  // Weights that share their input, stacked where the backend stacks them (each part then a
  // view of its rows), else uploaded one by one.
  std::optional<Weight> stacked(std::initializer_list<Weight*> parts) {
    std::vector<Weight> host;
    int64_t n = 0;
    for (Weight* p : parts) {
      host.push_back(*p);
      n += weight_bytes(*p);
    }
    std::optional<Weight> s = be_.upload_stacked(host, owner_);
    if (!s) {
      for (Weight* p : parts) weight(*p);
      return s;
    }
    int64_t r0 = 0;
    for (Weight* p : parts) {
      const int64_t rows = p->rows();
      *p = s->slice_rows(r0, rows);
      r0 += rows;
    }
    advance(n);
    return s;
  }
  void mlp(MlpWeights& m) {
    m.gate_up = stacked({&m.gate, &m.up});
    weight(m.down);
  }
  void experts(MoeWeights& moe) {
    if (moe.experts.empty()) return;
    std::vector<Weight> gate, up, down;
    int64_t n = 0;
    for (const auto& e : moe.experts) {
      gate.push_back(e.gate);
      up.push_back(e.up);
      down.push_back(e.down);
      n += weight_bytes(e.gate) + weight_bytes(e.up) + weight_bytes(e.down);
    }
    moe.routed.gate = be_.upload_experts(gate, owner_);
    moe.routed.up = be_.upload_experts(up, owner_);
    moe.routed.down = be_.upload_experts(down, owner_);
    moe.experts.clear();
    advance(n);
  }
  void finish() { progress_.finish(); }
  double seconds() const { return progress_.elapsed_seconds(); }

 private:
  void advance(int64_t n) {
    done_ += n;
    progress_.advance((done_ >> 20) - reported_);
    reported_ = done_ >> 20;
  }
  Backend& be_;
  std::shared_ptr<void> owner_;
  Progress progress_;
  int64_t done_ = 0, reported_ = 0;
};

}  // namespace

ModelWeights upload_weights(Backend& be, ModelWeights w) {
  if (w.uploaded) fail("upload_weights: the weights are uploaded already");
  Uploader up(be, w.storage, int64_t(w.n_bytes));
  const bool tied = w.lm_head.w.data == w.embed.w.data;
  up.weight(w.embed);
  for (auto& l : w.layers) {
    up.vector(l.input_norm);
    up.vector(l.post_norm);
    auto& a = l.attn;
    a.q_kv_a = up.stacked({a.q_a ? &*a.q_a : &*a.q_proj, &a.kv_a});
    up.vector(a.q_a_norm);
    up.weight(a.q_b);
    up.vector(a.kv_a_norm);
    up.weight(a.kv_b);
    up.weight(a.o);
    if (l.mlp) up.mlp(*l.mlp);
    if (l.moe) {
      up.weight(l.moe->router);
      up.vector(l.moe->score_bias);
      up.experts(*l.moe);
      if (l.moe->shared) up.mlp(*l.moe->shared);
    }
  }
  up.vector(w.final_norm);
  if (tied) w.lm_head = w.embed;
  else up.weight(w.lm_head);
  be.synchronize();
  up.finish();
  const double secs = up.seconds();
  spdlog::info("weights: {:.2f} GiB uploaded to {} in {:.2f} s ({:.1f} GiB/s)", double(w.n_bytes) / double(1ull << 30),
               be.name(), secs, secs > 0 ? double(w.n_bytes) / double(1ull << 30) / secs : 0.0);
  w.storage.reset();  // the backend holds what it still needs
  w.uploaded = true;
  return w;
}

}  // namespace dsi
