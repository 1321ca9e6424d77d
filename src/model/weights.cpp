#include "model/weights.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <deque>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/int_math.h"
#include "core/log.h"
#include "core/progress.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

namespace dsi {

namespace {

// Memory the views of a loaded model point into.
class CheckpointStorage : public WeightStorage {
 public:
  explicit CheckpointStorage(const std::string& dir) : checkpoint(dir) {}
  Checkpoint checkpoint;
  std::deque<AlignedBuffer> copies;  // float32 vectors, and tensors the file left misaligned (deque: stable addresses)

  const void* aligned(const SafetensorsEntry& e) {
    size_t align = dtype_size(e.dtype);
    if (reinterpret_cast<uintptr_t>(e.data) % align == 0) return e.data;
    auto& b = copies.emplace_back(size_t(e.end - e.begin));
    std::memcpy(b.data(), e.data, b.size());
    return b.data();
  }
  Tensor to_f32(const SafetensorsEntry& e) {
    int64_t n = e.numel();
    auto& b = copies.emplace_back(size_t(n) * 4);
    for (int64_t i = 0; i < n; ++i) b.as<float>()[i] = load_as_f32(e.data, e.dtype, i);
    return Tensor::matrix(b.data(), DType::f32, 1, n);
  }
};

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

void bind_linear(const ModelConfig& c, CheckpointStorage& st, const WeightSpec& spec, const CheckpointTensor& t) {
  const auto& e = *t.entry;
  std::string where = t.file->path() + ": tensor " + spec.name;
  bool fp8 = e.dtype == DType::f8_e4m3;
  if (!is_float(e.dtype) && !fp8) fail("{}: dtype {} is not supported for weights", where, dtype_name(e.dtype));
  if (fp8 && spec.kind != WeightKind::weight_kind_linear)
    fail("{}: FP8 is not supported for this tensor (embeddings and routers are never quantised)", where);
  Weight w;
  w.w = Tensor::matrix(const_cast<void*>(st.aligned(e)), e.dtype, e.shape[0], e.shape[1]);
  if (fp8) {
    if (!c.quantization)
      fail("{}: the tensor is F8_E4M3 but config.json has no quantization_config with weight_block_size", where);
    w.block_rows = c.quantization->block_rows;
    w.block_cols = c.quantization->block_cols;
    std::string scale_name = spec.name + "_scale_inv";
    const CheckpointTensor* s = st.checkpoint.find(scale_name);
    if (!s) fail("{}: FP8 weight without its block scales {}", where, scale_name);
    std::vector<int64_t> want = {ceil_div(e.shape[0], w.block_rows), ceil_div(e.shape[1], w.block_cols)};
    if (s->entry->shape != want)
      fail("{}: tensor {} has shape {}, expected {} for {}x{} blocks", s->file->path(), scale_name,
           shape_str(s->entry->shape), shape_str(want), w.block_rows, w.block_cols);
    if (!is_float(s->entry->dtype))
      fail("{}: tensor {} has dtype {}, expected F32", s->file->path(), scale_name, dtype_name(s->entry->dtype));
    const void* scales = s->entry->dtype == DType::f32 ? st.aligned(*s->entry) : st.to_f32(*s->entry).data;
    w.scale = Tensor::matrix(const_cast<void*>(scales), DType::f32, want[0], want[1]);
  }
  *spec.weight = w;
}

}  // namespace

ModelWeights load_checkpoint_weights(const ModelConfig& c, const std::string& dir) {
  auto storage = std::make_shared<CheckpointStorage>(dir);
  ModelWeights w;
  auto table = weight_table(c, &w);
  size_t n_used = 0;
  for (const auto& spec : table) {
    const CheckpointTensor* t = storage->checkpoint.find(spec.name);
    if (!t) fail("{}: tensor {} is missing (config.json implies it)", dir, spec.name);
    const auto& e = *t->entry;
    if (e.shape != spec.shape)
      fail("{}: tensor {} has shape {}, expected {} from config.json", t->file->path(), spec.name,
           shape_str(e.shape), shape_str(spec.shape));
    ++n_used;
    w.n_bytes += e.end - e.begin;
    if (spec.kind == WeightKind::weight_kind_vector) {
      if (!is_float(e.dtype))
        fail("{}: tensor {} has dtype {}, expected a float type", t->file->path(), spec.name, dtype_name(e.dtype));
      *spec.vector = storage->to_f32(e);
      continue;
    }
    bind_linear(c, *storage, spec, *t);
    if (spec.weight->quantized()) {
      ++n_used;
      w.n_bytes += uint64_t(spec.weight->scale.numel()) * 4;
    }
  }
  size_t n_mtp = 0;
  for (auto& [name, t] : storage->checkpoint.tensors())
    if (is_mtp_tensor(c, name)) ++n_mtp;
  if (size_t n_other = storage->checkpoint.tensors().size() - n_used - n_mtp; n_other > 0)
    spdlog::warn("{}: {} tensors in the checkpoint are not used by the model", dir, n_other);
  if (n_mtp) spdlog::info("{}: skipping {} MTP tensors (speculative decoding is not used)", dir, n_mtp);
  if (c.tie_word_embeddings) w.lm_head = w.embed;
  w.storage = storage;
  return w;
}

// ---- dummy weights -----------------------------------------------------------------------

namespace {

class DummyStorage : public WeightStorage {
 public:
  std::deque<AlignedBuffer> buffers;  // deque: references stay valid as buffers are added
};

// Counter-based random numbers (splitmix64): element i of tensor k has a fixed value whatever
// the number of threads.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline float uniform(uint64_t key, uint64_t i) {  // in [-1, 1)
  return float(int64_t(mix(key ^ mix(i)) >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
}

// Nearest e4m3 code for every bfloat16 bit pattern: dummy FP8 weights are made from float32
// values rounded to bf16 first, which is exact enough for random numbers and fast.
const std::array<uint8_t, 65536>& bf16_to_fp8_table() {
  static const std::array<uint8_t, 65536> table = [] {
    std::array<uint8_t, 65536> t{};
    for (uint32_t i = 0; i < 65536; ++i) t[i] = f32_to_fp8_e4m3(bf16_to_f32(uint16_t(i)));
    return t;
  }();
  return table;
}

struct DummyFill {
  uint64_t key;
  float amplitude;  // values uniform in [-amplitude, amplitude)
  float offset = 0;  // added (norm weights sit around 1)
};

void fill_f32(float* out, int64_t n, const DummyFill& f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = f.offset + f.amplitude * uniform(f.key, uint64_t(i));
}

Weight make_dummy_linear(DummyStorage& st, const WeightSpec& spec, const ModelConfig& c, const DummyFill& f,
                         uint64_t& n_bytes) {
  const int64_t rows = spec.shape[0], cols = spec.shape[1], n = rows * cols;
  bool fp8 = c.quantization && spec.kind == WeightKind::weight_kind_linear;
  Weight w;
  if (!fp8) {
    auto& b = st.buffers.emplace_back(size_t(n) * 2);
    auto* p = b.as<uint16_t>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16(f.amplitude * uniform(f.key, uint64_t(i)));
    w.w = Tensor::matrix(p, DType::bf16, rows, cols);
    n_bytes += uint64_t(n) * 2;
    return w;
  }
  // Block-scaled FP8 as real checkpoints are made: each block's largest value maps to 448.
  // Uniform values fill a block evenly, so the block amax is the amplitude.
  w.block_rows = c.quantization->block_rows;
  w.block_cols = c.quantization->block_cols;
  const int64_t sr = ceil_div(rows, w.block_rows), sc = ceil_div(cols, w.block_cols);
  auto& q = st.buffers.emplace_back(size_t(n));
  auto& s = st.buffers.emplace_back(size_t(sr * sc) * 4);
  const float scale = f.amplitude / 448.0f;
  std::fill_n(s.as<float>(), sr * sc, scale);
  const auto& table = bf16_to_fp8_table();
  auto* qp = q.as<uint8_t>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) qp[i] = table[f32_to_bf16(448.0f * uniform(f.key, uint64_t(i)))];
  w.w = Tensor::matrix(qp, DType::f8_e4m3, rows, cols);
  w.scale = Tensor::matrix(s.data(), DType::f32, sr, sc);
  n_bytes += uint64_t(n) + uint64_t(sr * sc) * 4;
  return w;
}

}  // namespace

ModelWeights make_dummy_weights(const ModelConfig& c, uint64_t seed) {
  auto storage = std::make_shared<DummyStorage>();
  ModelWeights w;
  auto table = weight_table(c, &w);
  int64_t total = 0;
  for (auto& spec : table) total += spec.shape.size() == 2 ? spec.shape[0] * spec.shape[1] : spec.shape[0];
  Progress progress("generating dummy weights", total >> 20, "M params");
  for (size_t k = 0; k < table.size(); ++k) {
    const auto& spec = table[k];
    DummyFill f{mix(seed * 0x100000001b3ull + k), 0};
    if (spec.kind == WeightKind::weight_kind_vector) {
      bool is_bias = spec.name.ends_with("e_score_correction_bias");
      f.amplitude = is_bias ? 0.05f : 0.1f;
      f.offset = is_bias ? 0.0f : 1.0f;
      auto& b = storage->buffers.emplace_back(size_t(spec.shape[0]) * 4);
      fill_f32(b.as<float>(), spec.shape[0], f);
      *spec.vector = Tensor::matrix(b.data(), DType::f32, 1, spec.shape[0]);
      w.n_bytes += uint64_t(spec.shape[0]) * 4;
      progress.advance(spec.shape[0] >> 20);
      continue;
    }
    // Unit-variance embeddings; linears with variance 1/in so activations keep their scale.
    f.amplitude = spec.kind == WeightKind::weight_kind_embedding ? std::sqrt(3.0f)
                                                                   : std::sqrt(3.0f / float(spec.shape[1]));
    *spec.weight = make_dummy_linear(*storage, spec, c, f, w.n_bytes);
    progress.advance((spec.shape[0] * spec.shape[1]) >> 20);
  }
  progress.finish();
  if (c.tie_word_embeddings) w.lm_head = w.embed;
  w.storage = storage;
  return w;
}

}  // namespace dsi
