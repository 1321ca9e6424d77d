// Entry points of the CPU GEMM: checks, then tiling and threads. Every product is cut into
// output tiles; all tiles of all problems of a call share one OpenMP parallel region (dynamic
// schedule, one tile per grab). Which tile executor runs (gemm_tiles.cpp) depends on the
// number of tokens: the dot path streams the weight once for a few tokens, the packed path
// widens it into panels reused by many.
#include "backend/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/gemm_detail.h"
#include "core/error.h"
#include "core/int_math.h"

namespace dsi::cpu {
namespace {

using gemm_detail::kDotRows;
using gemm_detail::kMr;
using gemm_detail::kNr;

// Up to this many tokens take the dot path: it re-reads a row group (from L1/L2) once per
// kDotTokens tokens, while the packed path pays for widening and transposing once. Measured
// with bench_gemm: the packed path wins from about 12 tokens.
constexpr int64_t kDotMaxTokens = 8;
// Tokens per packed tile at most: x[tokens, chunk] stays in L2 (192 KiB) while the tile runs;
// more tokens make more tiles, which re-widen the same panel.
constexpr int64_t kMaxTileTokens = 192;
// Weight rows per dot tile at most (a tile is a unit of scheduling).
constexpr int64_t kMaxDotTileRows = 32;
// Multiply-adds below which a call stays on the calling thread: a fork and join costs more.
constexpr double kMinParallelWork = 32768;


// One problem as the tiles see it.
struct Job {
  const GemmProblem* problem = nullptr;
  int64_t m = 0, n_out = 0, k = 0;  // tokens, outputs, contraction length
  bool dot = false;
  int64_t tile_out = 1, tile_tok = 1;
  int64_t n_tiles_out = 0, n_tiles = 0;
};

Job plan(const GemmProblem& p, int n_threads) {
  Job j;
  j.problem = &p;
  j.m = p.x.rows;
  j.n_out = p.transposed ? p.w.cols() : p.w.rows();
  j.k = p.transposed ? p.w.rows() : p.w.cols();
  if (j.m == 0 || j.n_out == 0) return j;
  j.dot = !p.transposed && j.m <= kDotMaxTokens;
  if (j.dot) {
    j.tile_tok = j.m;
    j.tile_out = std::min(kMaxDotTileRows, round_up(ceil_div(j.n_out, n_threads), kDotRows));
  } else {
    // Transposed panels are pieces of W's rows: packing several at once reads whole lines.
    j.tile_out = p.transposed ? gemm_detail::kPackedPanels * kNr : kNr;
    j.tile_tok = round_up(ceil_div(j.m, ceil_div(j.m, kMaxTileTokens)), kMr);
  }
  j.n_tiles_out = ceil_div(j.n_out, j.tile_out);
  j.n_tiles = j.n_tiles_out * ceil_div(j.m, j.tile_tok);
  return j;
}

void run_tile(const Job& j, int64_t tile) {
  const int64_t out0 = (tile % j.n_tiles_out) * j.tile_out;
  const int64_t tok0 = (tile / j.n_tiles_out) * j.tile_tok;
  const int64_t n_out = std::min(j.tile_out, j.n_out - out0);
  const int64_t n_tok = std::min(j.tile_tok, j.m - tok0);
  const GemmProblem& p = *j.problem;
  if (j.k == 0) {  // an empty sum
    for (int64_t t = tok0; t < tok0 + n_tok; ++t)
      std::fill(p.y.row<float>(t) + out0, p.y.row<float>(t) + out0 + n_out, 0.0f);
  } else if (j.dot) {
    gemm_detail::run_dot_tile(p, out0, n_out);
  } else {
    gemm_detail::run_packed_tile(p, out0, int(n_out), tok0, n_tok);
  }
}

void run_jobs(std::span<const Job> jobs) {
  // first_tile[i]: index of job i's first tile in the flat list of all tiles.
  thread_local std::vector<int64_t> first_tile_buffer;
  std::vector<int64_t>& first_tile = first_tile_buffer;  // the caller's, shared by the team
  first_tile.clear();
  int64_t n_tiles = 0;
  double work = 0;
  for (const Job& j : jobs) {
    first_tile.push_back(n_tiles);
    n_tiles += j.n_tiles;
    work += double(j.m) * double(j.n_out) * double(j.k);
  }
  if (n_tiles == 0) return;
  const bool parallel = n_tiles > 1 && work >= kMinParallelWork;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < n_tiles; ++t) {
    // The last job starting at or before t (jobs without tiles share the next one's start).
    const size_t i =
        size_t(std::upper_bound(first_tile.begin(), first_tile.end(), t) - first_tile.begin()) - 1;
    run_tile(jobs[i], t - first_tile[i]);
  }
}

void run_single(const GemmProblem& p, std::string_view op) {
  gemm_detail::check_problem(p, op);
  gemm_detail::check_no_overlap({&p, 1}, op);
  const Job job = plan(p, omp_get_max_threads());
  run_jobs({&job, 1});
}

}  // namespace

void linear(const Tensor& x, const Weight& w, Tensor y) { run_single(GemmProblem{x, w, y, false}, "linear"); }

void linear_transposed(const Tensor& x, const Weight& w, Tensor y) {
  run_single(GemmProblem{x, w, y, true}, "linear_transposed");
}

void linear_batch(std::span<const GemmProblem> problems) {
  for (size_t i = 0; i < problems.size(); ++i) {
    try {
      gemm_detail::check_problem(problems[i], "linear_batch");
    } catch (const Error& e) {
      fail("{} (problem {} of {})", e.what(), i, problems.size());
    }
  }
  gemm_detail::check_no_overlap(problems, "linear_batch");
  thread_local std::vector<Job> jobs;  // reused: no allocation per call once grown
  jobs.clear();
  const int n_threads = omp_get_max_threads();
  for (const GemmProblem& p : problems) jobs.push_back(plan(p, n_threads));
  run_jobs(jobs);
}

std::string_view gemm_isa() { return DSI_GEMM_AVX2 ? "avx2" : "portable"; }

}  // namespace dsi::cpu
