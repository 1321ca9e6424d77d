// The CUDA MLA kernels (attention over the paged latent cache, W_UK absorption, W_UV
// expansion) against the CPU backend, the oracle, on fresh random inputs of the fixtures'
// head dims and the real models' (r = 512, dr = 64, 16 and 128 heads), mixed batches of
// prefill chunks and decodes whose contexts span several 64-token blocks and end in partial
// blocks, with one, several and automatically chosen KV splits.
//
// Tolerances. The CPU gets exactly the values the device holds (inputs rounded to the device
// dtype first), so differences come from the kernels' own arithmetic:
//  - f32 outputs: f32 sums in another order, exp2 of a scaled score instead of exp, block
//    scales applied in another order: a few dozen units of u = 2^-24; we allow 1e-5 (~170 u)
//    for both the normalised and the max error (an indexing or masking slip costs > 1e-2).
//  - bf16 outputs: one rounding of the f32 result (|err| <= u_bf16 |x|, u_bf16 = 2^-8), and in
//    the projections FP8 weights rounded to bf16 after scaling, in the tensor-core attention
//    kernel the probabilities rounded to bf16 before the second product (another u_bf16 per
//    weight, averaging out over K or the context): 2 u_bf16 for both metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/step_context.h"
#include "backend/cuda/device.h"
#include "backend/cuda/mla_attention.h"
#include "backend/cuda/launch.h"
#include "backend/cuda/mla_projections.h"
#include "kernels_test_util.h"

namespace dsi::cuda::ktest {
namespace {

constexpr double kF32Tol = 1e-5;
constexpr double kBf16Tol = 2 * kBf16U;
constexpr int kBlockSize = 64;

double tol_for(DType out) { return out == DType::bf16 ? kBf16Tol : kF32Tol; }
const char* dname(DType t) { return t == DType::bf16 ? "bf16" : t == DType::f8_e4m3 ? "fp8" : "f32"; }

struct SeqSpec {
  int n_cached, n_tokens;
};

struct AttentionCase {
  const char* name;
  int n_heads, r, dr;
  std::vector<SeqSpec> seqs;
};

int device_sms() { return query_device(0).n_sms; }

// One batch: sequences laid out in row order, listed in reverse (the kernels may not assume
// an order), blocks drawn at random from a pool with spare blocks of random values.
void run_attention_case(const AttentionCase& c, DType act, DType kv, Rng& rng) {
  const int D = c.r + c.dr;
  const float scale = 1.0f / std::sqrt(float(c.dr + 128));
  int n_tokens = 0, n_blocks = 3, max_blocks = 0, max_context = 0;
  for (const auto& s : c.seqs) {
    n_tokens += s.n_tokens;
    max_context = std::max(max_context, s.n_cached + s.n_tokens);
    const int nb = (s.n_cached + s.n_tokens + kBlockSize - 1) / kBlockSize;
    n_blocks += nb;
    max_blocks = std::max(max_blocks, nb);
  }
  std::vector<int32_t> perm(static_cast<size_t>(n_blocks));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng.gen);

  // The CPU oracle reads the step through a StepContext, whose batch lists the sequences in row
  // order with positions following their caches; the kernel gets the same sequences listed in
  // reverse (it may not assume an order).
  ForwardBatch batch;
  batch.token_ids.assign(size_t(n_tokens), 0);
  const int table_ld = max_blocks + 1;  // a row stride wider than any table, as in StepContext
  std::vector<int32_t> first_row, seq_tokens, cached, table;
  int row = 0, next_block = 0;
  for (const auto& s : c.seqs) {
    BatchSequence seq;
    seq.first_row = row;
    seq.n_tokens = s.n_tokens;
    seq.n_cached = s.n_cached;
    const int nb = (s.n_cached + s.n_tokens + kBlockSize - 1) / kBlockSize;
    for (int b = 0; b < nb; ++b) seq.block_table.push_back(perm[size_t(next_block++)]);
    for (int i = 0; i < s.n_tokens; ++i) {
      const int pos = s.n_cached + i;
      batch.positions.push_back(pos);
      batch.kv_slots.push_back(int64_t(seq.block_table[size_t(pos / kBlockSize)]) * kBlockSize + pos % kBlockSize);
    }
    row += s.n_tokens;
    batch.sequences.push_back(seq);
  }
  std::vector<BatchSequence> reversed = batch.sequences;
  std::reverse(reversed.begin(), reversed.end());
  for (const auto& seq : reversed) {
    first_row.push_back(seq.first_row);
    seq_tokens.push_back(seq.n_tokens);
    cached.push_back(seq.n_cached);
    std::vector<int32_t> padded(static_cast<size_t>(table_ld), -1);
    std::copy(seq.block_table.begin(), seq.block_table.end(), padded.begin());
    table.insert(table.end(), padded.begin(), padded.end());
  }

  const auto q = round_to(rng.normal(size_t(n_tokens) * c.n_heads * D), act);
  const auto pool = round_to(rng.normal(size_t(n_blocks) * kBlockSize * D), kv);

  cpu::CpuBackend cpu;
  StepContext ctx{cpu, StepLimits{n_tokens, int64_t(c.seqs.size()), max_blocks, 0}, StepBounds{1, n_blocks, kBlockSize}};
  ctx.begin(cpu, batch);
  std::vector<float> q_host = q, pool_host = pool, ref(size_t(n_tokens) * c.n_heads * c.r);
  KvCacheView cache{Tensor::matrix(pool_host.data(), DType::f32, int64_t(n_blocks) * kBlockSize, D), 1, n_blocks,
                    kBlockSize};
  const MlaShape shape{c.n_heads, 128, c.dr, 128, c.r, scale};
  cpu.mla_attention(Tensor::matrix(q_host.data(), DType::f32, n_tokens, int64_t(c.n_heads) * D), cache, 0, ctx,
                    shape, Tensor::matrix(ref.data(), DType::f32, n_tokens, int64_t(c.n_heads) * c.r));

  DeviceMem d_q = upload(q, act), d_pool = upload(pool, kv);
  DeviceMem d_first = upload_raw(first_row), d_ntok = upload_raw(seq_tokens), d_cached = upload_raw(cached),
            d_table = upload_raw(table);
  DeviceMem d_out(ref.size() * dtype_size(act));
  MlaAttentionParams p;
  p.act_dtype = act;
  p.kv_dtype = kv;
  p.q_full = d_q.get();
  p.q_ld = int64_t(c.n_heads) * D;
  p.kv_pool = d_pool.get();
  p.kv_ld = D;
  p.o_latent = d_out.get();
  p.o_ld = int64_t(c.n_heads) * c.r;
  p.seq_first_row = d_first.as<int32_t>();
  p.seq_n_tokens = d_ntok.as<int32_t>();
  p.seq_n_cached = d_cached.as<int32_t>();
  p.block_table = d_table.as<int32_t>();
  p.n_seqs = int(c.seqs.size());
  p.block_table_ld = table_ld;
  p.n_tokens = n_tokens;
  p.n_heads = c.n_heads;
  p.kv_lora_rank = c.r;
  p.rope_dim = c.dr;
  p.block_size = kBlockSize;
  p.softmax_scale = scale;
  const int auto_splits = mla_attention_pick_splits(n_tokens, c.n_heads, max_context, device_sms());
  // More splits than 32-row tiles: some splits are empty.
  std::vector<int> split_counts = {1, 3, (max_context + 31) / 32 + 2, auto_splits};
  std::sort(split_counts.begin(), split_counts.end());
  split_counts.erase(std::unique(split_counts.begin(), split_counts.end()), split_counts.end());
  // bf16 at DeepSeek's dims takes the tensor-core kernel by default: check the CUDA-core one too.
  std::vector<bool> kernels = {true};
  p.tensor_cores = true;
  if (mla_attention_mma_takes(p)) kernels.push_back(false);
  for (bool tensor_cores : kernels)
    for (int splits : split_counts) {
      p.n_splits = splits;
      p.tensor_cores = tensor_cores;
      DeviceMem scratch(size_t(std::max<int64_t>(mla_attention_scratch_floats(p), 1)) * 4);
      scratch.poison();
      p.split_scratch = splits > 1 ? scratch.as<float>() : nullptr;
      d_out.poison();
      mla_attention(p, nullptr);
      const auto got = download(d_out, act, ref.size());
      expect_close(got, ref, tol_for(act), tol_for(act),
                   std::string("attention ") + c.name + " q " + dname(act) + " kv " + dname(kv) + " splits " +
                       std::to_string(splits) + (splits == auto_splits ? " (auto)" : "") +
                       (kernels.size() > 1 ? (tensor_cores ? " mma" : " fma") : ""));
    }
}

TEST(CudaMla, AttentionMatchesCpuOnMixedBatches) {
  require_gpu();
  Rng rng;
  SCOPED_TRACE(rng.trace());
  // Prefill chunks behind a cache, decodes, a first token, contexts ending exactly on a block.
  const std::vector<SeqSpec> mixed = {{70, 37}, {200, 1}, {0, 1}, {0, 5}, {127, 1}, {63, 1}};
  const AttentionCase cases[] = {
      {"tiny-v2-lite (4 heads, r 64, dr 16)", 4, 64, 16, mixed},
      {"tiny-v2-group (4 heads, r 48, dr 16)", 4, 48, 16, mixed},
      {"tiny-v3-odd (3 heads, r 40, dr 8)", 3, 40, 8, mixed},
      {"V2-Lite (16 heads, r 512, dr 64)", 16, 512, 64, {{300, 40}, {1500, 1}, {0, 1}, {65, 1}}},
      // V2-Lite under TP2 and an odd count: a partly empty 16-head tile of the tensor-core kernel.
      {"V2-Lite TP2 (8 heads, r 512, dr 64)", 8, 512, 64, {{95, 3}, {31, 1}, {0, 2}}},
      {"24 heads, r 512, dr 64", 24, 512, 64, {{33, 1}, {700, 1}}},
  };
  for (const auto& c : cases)
    for (auto [act, kv] : {std::pair{DType::f32, DType::f32}, {DType::bf16, DType::bf16}, {DType::f32, DType::bf16}})
      run_attention_case(c, act, kv, rng);
}

TEST(CudaMla, AttentionMatchesCpuWithV3Heads) {
  require_gpu();
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const AttentionCase v3{"V3 (128 heads, r 512, dr 64)", 128, 512, 64, {{1000, 8}, {2000, 1}, {50, 1}}};
  run_attention_case(v3, DType::bf16, DType::bf16, rng);
  run_attention_case(v3, DType::f32, DType::f32, rng);
}

// ---- W_UK absorption and W_UV expansion

struct ProjectionCase {
  const char* name;
  int n_heads, dn, dr, dv, r;
};

// A kv_b_proj of random values in `wdtype` (FP8: codes with random 128 x 128 block scales), as
// host bytes for the CPU's Weight and device copies for the kernels.
struct KvB {
  std::vector<unsigned char> bytes;
  std::vector<float> scale;
  int64_t rows, cols, scale_cols;
  DType dtype;
  KvB(const ProjectionCase& c, DType wdtype, Rng& rng)
      : rows(int64_t(c.n_heads) * (c.dn + c.dv)), cols(c.r), scale_cols((c.r + 127) / 128), dtype(wdtype) {
    const float sigma = 1.0f / std::sqrt(float(std::max(c.dn, c.r)));
    if (wdtype == DType::f8_e4m3) {
      bytes = encode(rng.normal(size_t(rows * cols), 64.0f), wdtype);
      scale = rng.normal(size_t(((rows + 127) / 128) * scale_cols), 0.25f);
      for (auto& s : scale) s = (1.0f + std::fabs(s)) * sigma / 64.0f;
    } else {
      bytes = encode(rng.normal(size_t(rows * cols), sigma), wdtype);
    }
  }
  Weight host() {
    Weight w;
    w.w = Tensor::matrix(bytes.data(), dtype, rows, cols);
    if (!scale.empty()) w.scale = Tensor::matrix(scale.data(), DType::f32, (rows + 127) / 128, scale_cols);
    return w;
  }
};

// gemm: the prefill path's cuBLASLt context (per-head products from kMlaCublasTokens tokens).
void run_projection_case(const ProjectionCase& c, DType act, DType wdtype, int n_tokens, Rng& rng,
                         GemmContext* gemm = nullptr) {
  const int64_t qd = c.dn + c.dr, D = c.r + c.dr;
  KvB kvb(c, wdtype, rng);
  DeviceMem d_w = upload_raw(kvb.bytes);
  DeviceMem d_scale = upload_raw(kvb.scale.empty() ? std::vector<float>{0.0f} : kvb.scale);
  DeviceWeight dw;
  dw.data = d_w.get();
  dw.dtype = wdtype;
  dw.rows = kvb.rows;
  dw.cols = kvb.cols;
  dw.ld = kvb.cols;
  dw.scale = wdtype == DType::f8_e4m3 ? d_scale.as<float>() : nullptr;
  dw.scale_ld = kvb.scale_cols;
  cpu::CpuBackend cpu;
  const MlaShape shape{c.n_heads, c.dn, c.dr, c.dv, c.r, 1.0f};
  const std::string what = std::string(c.name) + " act " + dname(act) + " kv_b " + dname(wdtype) + " n " +
                           std::to_string(n_tokens);

  {  // absorb
    auto q = round_to(rng.normal(size_t(n_tokens) * c.n_heads * qd), act);
    std::vector<float> ref(size_t(n_tokens) * c.n_heads * D);
    cpu.mla_absorb_query(Tensor::matrix(q.data(), DType::f32, n_tokens, c.n_heads * qd), kvb.host(), shape,
                          Tensor::matrix(ref.data(), DType::f32, n_tokens, c.n_heads * D));
    DeviceMem d_q = upload(q, act), d_out(ref.size() * dtype_size(act));
    d_out.poison();
    MlaAbsorbParams p;
    p.act_dtype = act;
    p.n_tokens = n_tokens;
    p.n_heads = c.n_heads;
    p.qk_nope_head_dim = c.dn;
    p.qk_rope_head_dim = c.dr;
    p.v_head_dim = c.dv;
    p.kv_lora_rank = c.r;
    p.q = d_q.get();
    p.q_ld = c.n_heads * qd;
    p.kv_b = dw;
    p.q_full = d_out.get();
    p.q_full_ld = c.n_heads * D;
    p.gemm = gemm;
    mla_absorb_query(p, nullptr);
    expect_close(download(d_out, act, ref.size()), ref, tol_for(act), tol_for(act), "absorb " + what);
  }
  {  // expand
    auto o_latent = round_to(rng.normal(size_t(n_tokens) * c.n_heads * c.r), act);
    std::vector<float> ref(size_t(n_tokens) * c.n_heads * c.dv);
    cpu.mla_expand_output(Tensor::matrix(o_latent.data(), DType::f32, n_tokens, int64_t(c.n_heads) * c.r),
                           kvb.host(), shape, Tensor::matrix(ref.data(), DType::f32, n_tokens, int64_t(c.n_heads) * c.dv));
    DeviceMem d_in = upload(o_latent, act), d_out(ref.size() * dtype_size(act));
    d_out.poison();
    MlaExpandParams p;
    p.act_dtype = act;
    p.n_tokens = n_tokens;
    p.n_heads = c.n_heads;
    p.qk_nope_head_dim = c.dn;
    p.v_head_dim = c.dv;
    p.kv_lora_rank = c.r;
    p.o_latent = d_in.get();
    p.o_latent_ld = int64_t(c.n_heads) * c.r;
    p.kv_b = dw;
    p.o = d_out.get();
    p.o_ld = int64_t(c.n_heads) * c.dv;
    p.gemm = gemm;
    mla_expand_output(p, nullptr);
    expect_close(download(d_out, act, ref.size()), ref, tol_for(act), tol_for(act), "expand " + what);
  }
}

TEST(CudaMla, AbsorbAndExpandMatchCpu) {
  require_gpu();
  Rng rng;
  SCOPED_TRACE(rng.trace());
  const ProjectionCase tiny{"tiny-v2-lite", 4, 32, 16, 32, 64};
  const ProjectionCase odd{"tiny-v3-odd", 3, 24, 8, 28, 40};  // heads of 52 rows straddle scale blocks
  const ProjectionCase v2_lite{"V2-Lite", 16, 128, 64, 128, 512};
  const ProjectionCase v3{"V3", 128, 128, 64, 128, 512};
  for (DType act : {DType::f32, DType::bf16}) {
    for (int n : {1, 70}) run_projection_case(tiny, act, DType::bf16, n, rng);
    for (int n : {1, 70}) run_projection_case(odd, act, DType::f8_e4m3, n, rng);
    run_projection_case(tiny, act, DType::f32, 7, rng);
    run_projection_case(v2_lite, act, DType::bf16, 33, rng);
    run_projection_case(v3, act, DType::f8_e4m3, 9, rng);
    // Decode sizes: with bf16 activations these take the skinny kernels (the k-major CUDA-core
    // form for the absorb, up to 4 tokens; the tensor-core kernel for the expand, up to 64).
    for (int n : {1, 4, 16, 64}) run_projection_case(v2_lite, act, DType::bf16, n, rng);
  }
  // With a cuBLASLt context, bf16 past the skinny limits takes one batched product over the
  // heads (k-major W_UK as a transposed weight); f32 and FP8 keep the tiled kernel.
  DeviceMem workspace(size_t(32) << 20);
  GemmContext gemm(workspace.get(), size_t(32) << 20);
  for (DType act : {DType::f32, DType::bf16}) {
    for (int n : {3, 5, 16, 64}) run_projection_case(v2_lite, act, DType::bf16, n, rng, &gemm);
    run_projection_case(v2_lite, act, DType::bf16, 300, rng, &gemm);
    run_projection_case(v3, act, DType::f8_e4m3, 130, rng, &gemm);
  }
}

}  // namespace
}  // namespace dsi::cuda::ktest
