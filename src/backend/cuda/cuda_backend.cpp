// CudaBackend: construction, memory and uploads (the ops are in cuda_backend_ops.cpp).
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/check.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/fp8.h"
#include "backend/cuda/sampling.h"
#include "core/error.h"
#include "core/log.h"

namespace dsi::cuda {

namespace {

constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;  // cuBLASLt split-K on Hopper
constexpr size_t kStagingBytes = size_t(64) << 20;         // two 32 MiB halves
// Prefill attention by products (mla_prefill_ops.cpp): a sequence's gathered cache rows and one
// chunk's scores and probabilities, 6 bytes per (query token, head, key): 256-token chunks of
// V2-Lite's 16 heads over 2,048 keys take 50 MiB; more heads or keys take smaller chunks, and a
// context whose gathered rows alone do not fit takes the attention kernel.
constexpr size_t kPrefillAttentionScratchBytes = size_t(256) << 20;

DType parse_float_dtype(const std::string& s, const char* flag) {
  if (s == "float32") return DType::f32;
  if (s == "bfloat16") return DType::bf16;
  fail("{} {}: the CUDA backend takes float32 or bfloat16", flag, s);
}

size_t bytes_of(const Tensor& t) { return size_t(t.numel()) * dtype_size(t.dtype); }

// Host rows packed one after another (a view with a row stride is copied row by row).
std::vector<unsigned char> packed_host(const Tensor& t) {
  std::vector<unsigned char> out(bytes_of(t));
  const size_t row = size_t(t.cols) * dtype_size(t.dtype);
  for (int64_t r = 0; r < t.rows; ++r)
    std::memcpy(out.data() + size_t(r) * row,
                static_cast<const unsigned char*>(t.data) + size_t(r * t.row_stride) * dtype_size(t.dtype), row);
  return out;
}

// Any float dtype widened to f32 on the host (exact): f16 has no kernel path.
std::vector<float> widened_f32(const Tensor& t) {
  std::vector<float> out(size_t(t.numel()));
  for (int64_t r = 0; r < t.rows; ++r)
    for (int64_t c = 0; c < t.cols; ++c)
      out[size_t(r * t.cols + c)] = load_as_f32(t.data, t.dtype, r * t.row_stride + c);
  return out;
}

}  // namespace

CudaBackend::CudaBackend(const BackendOptions& options) : options_(options) {
  info_ = query_device(std::max(options.device_index, 0));  // also makes it current (-1: GPU 0)
  free_at_start_ = info_.free_memory;
  if (info_.cc_major < 9)
    fail("--device cuda: GPU {} is {} (sm_{}{}); this build's kernels are for sm_90a (Hopper)", info_.index, info_.name,
         info_.cc_major, info_.cc_minor);
  name_ = "cuda:" + std::to_string(info_.index);
  act_ = parse_float_dtype(options.dtype, "--dtype");
  kv_ = parse_float_dtype(options.kv_cache_dtype, "--kv-cache-dtype");
  stream_ = std::make_unique<Stream>();
  gemm_workspace_ = DeviceBuffer(kGemmWorkspaceBytes);
  gemm_ = std::make_unique<GemmContext>(gemm_workspace_.data(), gemm_workspace_.size());
  staging_ = std::make_unique<PinnedStaging>(kStagingBytes);
  // The split picker gives at most about 2 x (2 SMs) split-rows of 16 heads (its comment):
  // splits * tokens * heads <= 64 SMs, each row holding r + 2 <= 514 floats.
  attention_scratch_floats_ = int64_t(64) * info_.n_sms * 514;
  attention_scratch_ = DeviceBuffer(size_t(attention_scratch_floats_) * sizeof(float));
  prefill_attention_scratch_ = DeviceBuffer(kPrefillAttentionScratchBytes);
  if (const char* v = std::getenv("DSINFER_CUDA_SKINNY")) {
    const std::string s = v;
    if (s == "0") skinny_ = SkinnyKernel::none;
    else if (s == "fma") skinny_ = SkinnyKernel::cuda_cores;
    else if (s == "mma-all") skinny_ = SkinnyKernel::tensor_cores_always;
    else if (s != "1" && s != "mma") fail("DSINFER_CUDA_SKINNY={}: expected 0, fma, mma or mma-all", s);
  }
  linear_skinny_rows_ = skinny_limits(skinny_).linear_rows;
  if (const char* v = std::getenv("DSINFER_CUDA_SKINNY_LINEAR_ROWS")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0) fail("DSINFER_CUDA_SKINNY_LINEAR_ROWS={}: expected a row count >= 0", v);
    linear_skinny_rows_ = skinny_ == SkinnyKernel::none ? 0 : n;
  }
  if (const char* v = std::getenv("DSINFER_CUDA_EXPERT_GEMM")) {
    const std::string s = v;
    if (s == "cutlass") expert_gemm_ = true;
    else if (s != "cublas") fail("DSINFER_CUDA_EXPERT_GEMM={}: expected cutlass or cublas", s);
  }
  if (const char* v = std::getenv("DSINFER_CUDA_MLA")) {
    const std::string s = v;
    if (s == "fma") mla_tensor_cores_ = false;
    else if (s != "mma") fail("DSINFER_CUDA_MLA={}: expected mma or fma", s);
  }
  static constexpr const char* kSkinnyNote[] = {
      " (DSINFER_CUDA_SKINNY=0: no skinny decode kernels)", " (DSINFER_CUDA_SKINNY=fma: CUDA-core skinny kernels)", "",
      " (DSINFER_CUDA_SKINNY=mma-all: tensor-core skinny kernel at every row count)"};
  spdlog::info("CUDA: {}{}{}{}", describe(info_), kSkinnyNote[int(skinny_)],
               mla_tensor_cores_ ? "" : " (DSINFER_CUDA_MLA=fma: CUDA-core MLA attention)",
               options.enforce_eager ? " (--enforce-eager: no CUDA graphs)" : "");
}

CudaBackend::~CudaBackend() {
  if (stream_) (void)cudaStreamSynchronize(stream_->get());
}

void CudaBackend::bind() const { DSI_CUDA_CHECK(cudaSetDevice(info_.index)); }

DeviceMemory CudaBackend::device_memory() {
  bind();
  size_t free_b = 0, total_b = 0;
  DSI_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return {int64_t(total_b), int64_t(free_b), free_at_start_ - int64_t(free_b)};
}

Buffer CudaBackend::alloc(DType dtype, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) fail("alloc: negative shape [{}, {}]", rows, cols);
  bind();
  auto mem = std::make_shared<DeviceBuffer>(size_t(rows * cols) * dtype_size(dtype));
  return {Tensor::matrix(mem->data(), dtype, rows, cols), mem};
}

Buffer CudaBackend::alloc_staging(DType dtype, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) fail("alloc_staging: negative shape [{}, {}]", rows, cols);
  bind();
  void* p = nullptr;
  const size_t bytes = std::max<size_t>(size_t(rows * cols) * dtype_size(dtype), 1);
  DSI_CUDA_CHECK(cudaMallocHost(&p, bytes));
  std::shared_ptr<void> owner(p, [](void* q) { (void)cudaFreeHost(q); });
  return {Tensor::matrix(p, dtype, rows, cols), owner};
}

void CudaBackend::upload_rows(void* dst, const Tensor& host) {
  if (host.numel() == 0) return;
  if (host.contiguous()) {
    staging_->upload(dst, host.data, bytes_of(host), stream());
    return;
  }
  const auto packed = packed_host(host);
  staging_->upload(dst, packed.data(), packed.size(), stream());
}

std::shared_ptr<DeviceBuffer> CudaBackend::to_device(const Tensor& host) {
  auto mem = std::make_shared<DeviceBuffer>(bytes_of(host));
  upload_rows(mem->data(), host);
  return mem;
}

Buffer CudaBackend::converted(const Tensor& src, DType to) {
  Buffer out = alloc(to, src.rows, src.cols);
  convert({src, out.t}, stream());
  return out;
}

Weight CudaBackend::keep(Buffer b) {
  owned_.push_back(b.owner);
  Weight w;
  w.w = b.t;
  return w;
}

// A dense matrix in the activation dtype, whatever the checkpoint stored.
Weight CudaBackend::upload(const Weight& host, const std::shared_ptr<void>&) {
  bind();
  return keep(upload_dense(host));
}

// The parts stacked by rows in one allocation: each is uploaded (and converted) on its own,
// copied into its rows, and freed, so the peak is the stack plus one part.
std::optional<Weight> CudaBackend::upload_stacked(std::span<const Weight> host, const std::shared_ptr<void>&) {
  bind();
  if (host.empty()) return std::nullopt;
  int64_t rows = 0;
  for (const Weight& w : host) {
    if (w.cols() != host[0].cols())
      fail("upload_stacked: parts of {} and {} columns cannot be stacked", host[0].cols(), w.cols());
    rows += w.rows();
  }
  Buffer stacked = alloc(act_, rows, host[0].cols());
  int64_t r0 = 0;
  for (const Weight& w : host) {
    const Buffer part = upload_dense(w);
    const Tensor dst = stacked.t.slice_rows(r0, w.rows());
    DSI_CUDA_CHECK(cudaMemcpy2DAsync(dst.data, size_t(dst.row_stride) * dtype_size(act_), part.t.data,
                                     size_t(part.t.row_stride) * dtype_size(act_), size_t(w.cols()) * dtype_size(act_),
                                     size_t(w.rows()), cudaMemcpyDeviceToDevice, stream()));
    synchronize();  // `part` is freed on the next line
    r0 += w.rows();
  }
  return keep(std::move(stacked));
}

Buffer CudaBackend::upload_dense(const Weight& host) {
  const Tensor& h = host.w;
  if (h.dtype == DType::f16) {
    const auto wide = widened_f32(h);
    Weight f32 = host;
    f32.w = Tensor::matrix(const_cast<float*>(wide.data()), DType::f32, h.rows, h.cols);
    Buffer out = upload_dense(f32);
    synchronize();  // `wide` dies here
    return out;
  }
  auto raw = to_device(h);
  Tensor dev = Tensor::matrix(raw->data(), h.dtype, h.rows, h.cols);
  if (host.quantized()) {
    // FP8 e4m3 with 128x128 block scales: dequantised once here (MATH.md "FP8 weights"); the
    // block-scaled FP8 GEMM is the speed issue's (docs/design/cuda_notes.md).
    if (h.dtype != DType::f8_e4m3) fail("upload: a {} weight with block scales (expected f8_e4m3)", dtype_name(h.dtype));
    auto scale = to_device(host.scale);
    Weight q = host;
    q.w = dev;
    q.scale = Tensor::matrix(scale->data(), DType::f32, host.scale.rows, host.scale.cols);
    Buffer out = alloc(act_, h.rows, h.cols);
    dequantize_fp8({q, out.t}, stream());
    synchronize();  // raw and scale are freed on return
    return out;
  }
  if (h.dtype != DType::f32 && h.dtype != DType::bf16)
    fail("upload: weights of dtype {} are not supported on the GPU", dtype_name(h.dtype));
  if (h.dtype == act_) return {dev, raw};
  Buffer out = converted(dev, act_);
  synchronize();
  return out;
}

// Vectors (norm weights, score bias) stay f32: the kernels read them in f32.
Tensor CudaBackend::upload_vector(const Tensor& host, const std::shared_ptr<void>&) {
  bind();
  if (host.dtype != DType::f32) fail("upload_vector: expected f32, got {}", dtype_name(host.dtype));
  auto mem = to_device(host);
  owned_.push_back(mem);
  return Tensor::matrix(mem->data(), DType::f32, host.rows, host.cols);
}

// One projection of every routed expert stacked in one allocation ([E * rows, cols]), in the
// dtype the grouped GEMM reads: FP8 stays FP8 with each expert's own scale grid stacked
// alike; bf16 stays bf16 (in f32 mode the GEMM widens it exactly); f32 becomes the activation
// dtype; f16 is widened to f32.
ExpertWeight CudaBackend::upload_experts(std::span<const Weight> host, const std::shared_ptr<void>&) {
  bind();
  ExpertWeight out;
  if (host.empty()) return out;
  const Weight& first = host[0];
  const int64_t rows = first.rows(), cols = first.cols(), n = int64_t(host.size());
  for (const Weight& w : host)
    if (w.rows() != rows || w.cols() != cols || w.w.dtype != first.w.dtype || w.quantized() != first.quantized())
      fail("upload_experts: experts differ in shape or dtype ([{}, {}] {} vs [{}, {}] {})", w.rows(), w.cols(),
           dtype_name(w.w.dtype), rows, cols, dtype_name(first.w.dtype));
  DType stored = first.w.dtype;
  if (stored == DType::f16) stored = DType::f32;
  if (stored == DType::f32) stored = act_;
  if (first.quantized() && stored != DType::f8_e4m3)
    fail("upload_experts: a {} expert with block scales (expected f8_e4m3)", dtype_name(stored));
  if (stored != DType::f8_e4m3 && stored != DType::bf16 && stored != DType::f32)
    fail("upload_experts: experts of dtype {} are not supported on the GPU", dtype_name(first.w.dtype));
  Buffer stacked = alloc(stored, n * rows, cols);
  owned_.push_back(stacked.owner);
  out.stacked = stacked.t;
  const int64_t scale_rows = first.quantized() ? first.scale.rows : 0, scale_cols = first.scale.cols;
  if (first.quantized()) {
    Buffer s = alloc(DType::f32, n * scale_rows, scale_cols);
    owned_.push_back(s.owner);
    out.stacked_scale = s.t;
  }
  for (int64_t e = 0; e < n; ++e) {
    const Weight& w = host[size_t(e)];
    Tensor dst = stacked.t.slice_rows(e * rows, rows);
    if (w.w.dtype == stored) {
      upload_rows(dst.data, w.w);
    } else {
      // f32 / f16 experts into bf16 (or f16 into f32): widen on the host, convert on the GPU.
      const auto wide = widened_f32(w.w);  // exact for f32 and f16 alike
      Tensor h = Tensor::matrix(const_cast<float*>(wide.data()), DType::f32, rows, cols);
      auto tmp = to_device(h);
      convert({Tensor::matrix(tmp->data(), DType::f32, rows, cols), dst}, stream());
      synchronize();
    }
    Weight view;
    view.w = dst;
    view.block_rows = w.block_rows;
    view.block_cols = w.block_cols;
    view.row_offset = w.row_offset;
    if (w.quantized()) {
      // A tensor-parallel slice of an expert starts `row_offset` rows into its scale grid; the
      // grouped GEMM takes one offset for all experts, which every rank's slice shares.
      if (w.row_offset != first.row_offset || w.scale.rows != scale_rows || w.scale.cols != scale_cols)
        fail("upload_experts: expert {} has a scale grid [{}, {}] at row offset {} (expected [{}, {}] at {})", e,
             w.scale.rows, w.scale.cols, w.row_offset, scale_rows, scale_cols, first.row_offset);
      Tensor sdst = out.stacked_scale.slice_rows(e * scale_rows, scale_rows);
      upload_rows(sdst.data, w.scale);
      view.scale = sdst;
    }
    out.experts.push_back(view);
  }
  synchronize();
  return out;
}

void CudaBackend::copy_from_host(const void* src, Tensor dst) {
  bind();
  if (dst.numel() == 0) return;
  const auto t = timed("copy_from_host");
  const size_t row = size_t(dst.cols) * dtype_size(dst.dtype);
  // Contiguous rows as one linear copy: a 2D copy of many narrow rows (the step context's
  // [n, 1] words) runs row by row, ~80 us for a decode step's 130-260 KB.
  if (dst.contiguous())
    DSI_CUDA_CHECK(cudaMemcpyAsync(dst.data, src, row * size_t(dst.rows), cudaMemcpyHostToDevice, stream()));
  else
    DSI_CUDA_CHECK(cudaMemcpy2DAsync(dst.data, size_t(dst.row_stride) * dtype_size(dst.dtype), src, row, row,
                                     size_t(dst.rows), cudaMemcpyHostToDevice, stream()));
}

void CudaBackend::copy_to_host(const Tensor& src, void* dst) {
  bind();
  if (src.numel() > 0) {
    const auto t = timed("copy_to_host");
    const size_t row = size_t(src.cols) * dtype_size(src.dtype);
    if (src.contiguous())
      DSI_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, row * size_t(src.rows), cudaMemcpyDeviceToHost, stream()));
    else
      DSI_CUDA_CHECK(cudaMemcpy2DAsync(dst, row, src.data, size_t(src.row_stride) * dtype_size(src.dtype), row,
                                       size_t(src.rows), cudaMemcpyDeviceToHost, stream()));
  }
  stream_->synchronize();
}

namespace {

// buf holds at least `bytes` (grown to twice what it was, or more).
void reserve(DeviceBuffer& buf, size_t bytes) {
  if (buf.size() < bytes) buf = DeviceBuffer(std::max(bytes, 2 * buf.size()));
}

}  // namespace

void CudaBackend::sample(const Tensor& logits, std::span<const sampling::SamplingRow> rows,
                         std::span<const sampling::SamplingPenalty> penalties,
                         std::span<sampling::SamplingResult> results) {
  bind();
  const auto t = timed("sample");
  reserve(sample_rows_, rows.size_bytes());
  reserve(sample_penalties_, std::max<size_t>(penalties.size_bytes(), sizeof(sampling::SamplingPenalty)));
  reserve(sample_results_, results.size_bytes());
  DSI_CUDA_CHECK(cudaMemcpyAsync(sample_rows_.data(), rows.data(), rows.size_bytes(), cudaMemcpyHostToDevice, stream()));
  if (!penalties.empty())
    DSI_CUDA_CHECK(cudaMemcpyAsync(sample_penalties_.data(), penalties.data(), penalties.size_bytes(),
                                   cudaMemcpyHostToDevice, stream()));
  SampleParams p{static_cast<float*>(logits.data),
                 int64_t(rows.size()),
                 logits.cols,
                 logits.row_stride,
                 sample_rows_.as<sampling::SamplingRow>(),
                 sample_penalties_.as<sampling::SamplingPenalty>(),
                 int64_t(penalties.size()),
                 sample_results_.as<sampling::SamplingResult>()};
  cuda::sample(p, stream());
  DSI_CUDA_CHECK(cudaMemcpyAsync(results.data(), sample_results_.data(), results.size_bytes(), cudaMemcpyDeviceToHost,
                                 stream()));
  stream_->synchronize();
}

void CudaBackend::synchronize() {
  bind();
  stream_->synchronize();
}

void CudaBackend::begin_op_timing() {
  bind();
  timer_.begin(stream());
}

std::vector<OpTiming> CudaBackend::end_op_timing() {
  bind();
  return timer_.end(stream());
}

void CudaBackend::run_recorded(uint64_t key, const std::function<void()>& ops) {
  bind();
  // An op-timed step times each op with its own events: it runs as it comes.
  if (options_.enforce_eager || timer_.running()) return ops();
  graphs_.run(key, stream(), ops);
}

}  // namespace dsi::cuda
