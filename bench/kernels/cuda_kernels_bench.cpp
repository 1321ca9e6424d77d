// cuda_kernels_bench: times the MLA attention and MoE kernels at the real models' shapes (CUDA
// events, median of repeated launches after a warm-up) and prints each against its floors:
// the bytes it must move at the measured copy bandwidth and its FLOPs at the bf16 tensor /
// f32 FMA rates. Inputs are random (a 64 MB random pattern repeated, larger than L2), never
// zeros. Needs a GPU. See docs/design/cuda_notes.md for the predictions these check.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/device.h"
#include "backend/cuda/mla_attention.h"
#include "backend/cuda/moe.h"
#include "core/dtype.h"

namespace {

using namespace dsi;
using namespace dsi::cuda;

struct Mem {
  void* p = nullptr;
  explicit Mem(size_t bytes) { DSI_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 16))); }
  ~Mem() { cudaFree(p); }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p); }
};

// Fills `bytes` of device memory with a repeated 64 MB pattern of random values of `dtype`.
void fill_random(void* dst, size_t bytes, DType dtype, std::mt19937& gen) {
  const size_t chunk = std::min<size_t>(bytes, size_t(64) << 20);
  std::vector<unsigned char> host(chunk);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const size_t es = dtype_size(dtype);
  for (size_t i = 0; i + es <= chunk; i += es) {
    const float v = d(gen);
    if (dtype == DType::bf16) {
      const uint16_t h = f32_to_bf16(v);
      std::memcpy(&host[i], &h, 2);
    } else if (dtype == DType::f8_e4m3) {
      host[i] = f32_to_fp8_e4m3(v * 64.0f);
    } else {
      std::memcpy(&host[i], &v, 4);
    }
  }
  DSI_CUDA_CHECK(cudaMemcpy(dst, host.data(), chunk, cudaMemcpyHostToDevice));
  for (size_t off = chunk; off < bytes; off += chunk)
    DSI_CUDA_CHECK(cudaMemcpy(static_cast<char*>(dst) + off, dst, std::min(chunk, bytes - off), cudaMemcpyDeviceToDevice));
}

double median_ms(const std::function<void()>& f, int reps) {
  cudaEvent_t a, b;
  DSI_CUDA_CHECK(cudaEventCreate(&a));
  DSI_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    DSI_CUDA_CHECK(cudaEventRecord(a));
    f();
    DSI_CUDA_CHECK(cudaEventRecord(b));
    DSI_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    DSI_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  DSI_CUDA_CHECK(cudaEventDestroy(a));
  DSI_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Rates {
  double bytes_per_ms;   // measured device-to-device copy, read + write
  double bf16_flop_ms;   // datasheet-ish leads (H200.md / KINDS.md): 790 TFLOP/s measured bf16
  double f32_flop_ms;    // 67 TFLOP/s f32 FMA (datasheet)
};

void report(const char* name, double ms, double bytes, double flops, const Rates& r, bool tensor) {
  const double mem_floor = bytes / r.bytes_per_ms, flop_floor = flops / (tensor ? r.bf16_flop_ms : r.f32_flop_ms);
  std::printf("%-52s %9.3f ms   floor mem %8.3f  %s %8.3f   (%.0f%% of the larger)\n", name, ms, mem_floor,
              tensor ? "bf16-mma" : "f32-fma ", flop_floor, 100.0 * std::max(mem_floor, flop_floor) / ms);
}

// splits: 0 = mla_attention_pick_splits's.
void bench_attention(int n_heads, int batch, int ctx, bool tensor_cores, int splits, const Rates& rates,
                     std::mt19937& gen, int reps) {
  const int r = 512, dr = 64, D = r + dr, bs = 64, blocks_per_seq = (ctx + bs - 1) / bs;
  const int n_blocks = batch * blocks_per_seq;
  Mem q(size_t(batch) * n_heads * D * 2), pool(size_t(n_blocks) * bs * D * 2), out(size_t(batch) * n_heads * r * 2);
  fill_random(q.p, size_t(batch) * n_heads * D * 2, DType::bf16, gen);
  fill_random(pool.p, size_t(n_blocks) * bs * D * 2, DType::bf16, gen);
  std::vector<int32_t> first(static_cast<size_t>(batch)), ntok(static_cast<size_t>(batch), 1),
      cached(static_cast<size_t>(batch), ctx - 1), table(static_cast<size_t>(n_blocks));
  for (int s = 0; s < batch; ++s) first[size_t(s)] = s;
  for (int i = 0; i < n_blocks; ++i) table[size_t(i)] = i;
  std::shuffle(table.begin(), table.end(), gen);
  Mem d_first(first.size() * 4), d_ntok(ntok.size() * 4), d_cached(cached.size() * 4), d_table(table.size() * 4);
  DSI_CUDA_CHECK(cudaMemcpy(d_first.p, first.data(), first.size() * 4, cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemcpy(d_ntok.p, ntok.data(), ntok.size() * 4, cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemcpy(d_cached.p, cached.data(), cached.size() * 4, cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemcpy(d_table.p, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  MlaAttentionParams p;
  p.act_dtype = p.kv_dtype = DType::bf16;
  p.q_full = q.p;
  p.q_ld = int64_t(n_heads) * D;
  p.kv_pool = pool.p;
  p.kv_ld = D;
  p.o_latent = out.p;
  p.o_ld = int64_t(n_heads) * r;
  p.seq_first_row = d_first.as<int32_t>();
  p.seq_n_tokens = d_ntok.as<int32_t>();
  p.seq_n_cached = d_cached.as<int32_t>();
  p.block_table = d_table.as<int32_t>();
  p.n_seqs = batch;
  p.block_table_ld = blocks_per_seq;
  p.n_tokens = batch;
  p.n_heads = n_heads;
  p.kv_lora_rank = r;
  p.rope_dim = dr;
  p.block_size = bs;
  p.softmax_scale = 0.07f;
  p.tensor_cores = tensor_cores;
  p.n_splits = splits > 0 ? splits : mla_attention_pick_splits(batch, n_heads, ctx, query_device(0).n_sms);
  Mem scratch(size_t(std::max<int64_t>(mla_attention_scratch_floats(p), 1)) * 4);
  p.split_scratch = scratch.as<float>();
  const double ms = median_ms([&] { mla_attention(p, nullptr); }, reps);
  const double bytes = double(batch) * ctx * D * 2, flops = 2.0 * batch * n_heads * double(ctx) * (D + r);
  char name[128];
  std::snprintf(name, sizeof name, "mla_attention %s decode %d heads, %d x ctx %d (%d splits)",
                tensor_cores ? "mma" : "fma", n_heads, batch, ctx, p.n_splits);
  report(name, ms, bytes, flops, rates, tensor_cores);
}

void bench_moe(int n_tokens, int n_experts, int top_k, int64_t hidden, int64_t inter, DType wdtype, const Rates& rates,
               std::mt19937& gen, int reps) {
  const int64_t m = int64_t(n_tokens) * top_k, wsize = int64_t(dtype_size(wdtype));
  const int64_t w_elems = int64_t(n_experts) * inter * hidden;
  Mem gate(size_t(w_elems * wsize)), up(size_t(w_elems * wsize)), down(size_t(w_elems * wsize));
  for (Mem* w : {&gate, &up, &down}) fill_random(w->p, size_t(w_elems * wsize), wdtype, gen);
  const int64_t srow_i = (inter + 127) / 128, scol_h = (hidden + 127) / 128;
  std::vector<float> scales(size_t(n_experts * srow_i * scol_h), 1.0f / 2048.0f);
  Mem s_gu(scales.size() * 4), s_down(scales.size() * 4);
  DSI_CUDA_CHECK(cudaMemcpy(s_gu.p, scales.data(), scales.size() * 4, cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemcpy(s_down.p, scales.data(), scales.size() * 4, cudaMemcpyHostToDevice));
  auto weight = [&](const Mem& w, const Mem& s, int64_t rows, int64_t cols) {
    GroupedWeight g;
    g.data = w.p;
    g.dtype = wdtype;
    g.ld = cols;
    g.group_stride = rows * cols;
    if (wdtype == DType::f8_e4m3) {
      g.scale = s.as<float>();
      g.scale_ld = (cols + 127) / 128;
      g.scale_group_stride = ((rows + 127) / 128) * g.scale_ld;
    }
    return g;
  };
  // Uniform random routing: each token's k experts distinct.
  std::vector<int32_t> ids;
  std::vector<float> wts(size_t(m), 0.125f);
  std::vector<int32_t> all(static_cast<size_t>(n_experts));
  for (int e = 0; e < n_experts; ++e) all[size_t(e)] = e;
  for (int t = 0; t < n_tokens; ++t) {
    std::shuffle(all.begin(), all.end(), gen);
    ids.insert(ids.end(), all.begin(), all.begin() + top_k);
  }
  Mem d_ids(ids.size() * 4), d_w(wts.size() * 4), x(size_t(n_tokens * hidden * 2)), xs(size_t(m * hidden * 2)),
      h(size_t(m * inter * 2)), ys(size_t(m * hidden * 2)), out(size_t(n_tokens * hidden * 2)),
      off(size_t(n_experts + 1) * 4), map(size_t(m) * 4);
  DSI_CUDA_CHECK(cudaMemcpy(d_ids.p, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  DSI_CUDA_CHECK(cudaMemcpy(d_w.p, wts.data(), wts.size() * 4, cudaMemcpyHostToDevice));
  fill_random(x.p, size_t(n_tokens * hidden * 2), DType::bf16, gen);
  MoeDispatchParams dp;
  dp.n_tokens = n_tokens;
  dp.top_k = top_k;
  dp.n_experts = n_experts;
  dp.expert_ids = d_ids.as<int32_t>();
  dp.expert_offsets = off.as<int32_t>();
  dp.row_map = map.as<int32_t>();
  dp.act_dtype = DType::bf16;
  dp.hidden = hidden;
  dp.x = x.p;
  dp.x_ld = hidden;
  dp.x_sorted = xs.p;
  dp.x_sorted_ld = hidden;
  MoeExpertsParams ep;
  ep.act_dtype = DType::bf16;
  ep.n_experts = n_experts;
  ep.hidden = hidden;
  ep.inter = inter;
  ep.n_rows = m;
  ep.expert_offsets = off.as<int32_t>();
  ep.x_sorted = xs.p;
  ep.gate = weight(gate, s_gu, inter, hidden);
  ep.up = weight(up, s_gu, inter, hidden);
  ep.down = weight(down, s_down, hidden, inter);
  ep.h = h.p;
  ep.y_sorted = ys.p;
  MoeCombineParams cp;
  cp.act_dtype = DType::bf16;
  cp.n_tokens = n_tokens;
  cp.top_k = top_k;
  cp.hidden = hidden;
  cp.expert_ids = d_ids.as<int32_t>();
  cp.expert_weights = d_w.as<float>();
  cp.row_map = map.as<int32_t>();
  cp.y_sorted = ys.p;
  cp.out = out.p;
  cp.out_ld = hidden;
  char name[128];
  const double act_bytes = double(m) * double(hidden) * 2 * 2;
  std::snprintf(name, sizeof name, "moe_dispatch %d tokens x top-%d, hidden %lld", n_tokens, top_k, (long long)hidden);
  report(name, median_ms([&] { moe_dispatch(dp, nullptr); }, reps), act_bytes, 0, rates, false);
  moe_dispatch(dp, nullptr);
  const double used = double(std::min<int64_t>(n_experts, m));  // experts with rows, at most
  const double wbytes = 3.0 * used * double(inter) * double(hidden) * double(wsize),
               flops = 6.0 * double(m) * double(hidden) * double(inter);
  std::snprintf(name, sizeof name, "moe_experts %lld rows, %d experts %s, %lld x %lld", (long long)m, n_experts,
                wdtype == DType::f8_e4m3 ? "fp8" : "bf16", (long long)hidden, (long long)inter);
  report(name, median_ms([&] { moe_experts(ep, nullptr); }, reps), wbytes + act_bytes, flops, rates, true);
  std::snprintf(name, sizeof name, "moe_combine %d tokens x top-%d", n_tokens, top_k);
  report(name, median_ms([&] { moe_combine(cp, nullptr); }, reps), act_bytes, 0, rates, false);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cuda_kernels_bench: MLA attention and MoE kernels at the real models' shapes"};
  int reps = 20;
  app.add_option("--reps", reps, "timed repetitions per case (median printed)");
  CLI11_PARSE(app, argc, argv);
  try {
    std::printf("%s\n", describe(query_device(0)).c_str());
    std::mt19937 gen(1234);
    Rates rates{};
    {  // the copy bandwidth, measured: 2 GB read + 2 GB written
      const size_t bytes = size_t(2) << 30;
      Mem a(bytes), b(bytes);
      fill_random(a.p, bytes, DType::f32, gen);
      const double ms = median_ms([&] { DSI_CUDA_CHECK(cudaMemcpy(b.p, a.p, bytes, cudaMemcpyDeviceToDevice)); }, 10);
      rates.bytes_per_ms = 2.0 * double(bytes) / ms;
      std::printf("device copy: %.0f GB/s (read + write)\n", rates.bytes_per_ms / 1e6);
    }
    rates.bf16_flop_ms = 790e9;
    rates.f32_flop_ms = 67e9;
    // Each shape on the tensor-core kernel and the CUDA-core one (DSINFER_CUDA_MLA=fma).
    struct Shape {
      int heads, batch, ctx;
    };
    for (Shape a : {Shape{16, 1, 128}, Shape{16, 64, 128}, Shape{16, 64, 768}, Shape{16, 64, 4096},
                    Shape{128, 1, 128}, Shape{128, 64, 128}, Shape{128, 64, 4096}, Shape{128, 1, 32768}})
      for (bool tc : {true, false}) bench_attention(a.heads, a.batch, a.ctx, tc, 0, rates, gen, reps);
    // The tensor-core kernel at other split counts than the picker's (one wave of two CTAs an SM
    // is 4 splits of 64 rows on 132 SMs).
    for (Shape a : {Shape{16, 64, 768}, Shape{16, 64, 4096}, Shape{128, 64, 4096}})
      for (int splits : {1, 2, 4, 8}) bench_attention(a.heads, a.batch, a.ctx, true, splits, rates, gen, reps);
    bench_moe(64, 256, 8, 7168, 2048, DType::f8_e4m3, rates, gen, reps);
    bench_moe(4096, 256, 8, 7168, 2048, DType::f8_e4m3, rates, gen, std::max(3, reps / 4));
    bench_moe(64, 64, 6, 2048, 1408, DType::bf16, rates, gen, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_kernels_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
