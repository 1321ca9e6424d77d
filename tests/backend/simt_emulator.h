#pragma once
// Runs CUDA kernel source on CPU threads, for testing a kernel's logic where there is no GPU
// (CI): one std::thread per CUDA thread of a block, __syncthreads as a barrier of the block,
// warp shuffles / votes through a per-warp exchange slot between two barriers of the warp, and
// shared-memory atomics as std::atomic_ref. Blocks run one after another, so a kernel must loop
// over its work with a grid stride (launch with grid 1). It checks logic (indexing, barriers'
// placement, the collective algorithms), not the GPU's memory model or speed. Include it before
// the kernel's source; it defines the CUDA keywords the source uses.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace simt {

struct Dim {
  unsigned x = 0, y = 0, z = 0;
};

struct Block {
  explicit Block(int n) : n_threads(n), block_barrier(n) {
    for (int w = 0; w < (n + 31) / 32; ++w) warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32, n - 32 * w)));
    slots.resize(size_t(n));
  }
  int n_threads;
  std::barrier<> block_barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
  std::vector<uint64_t> slots;  // one exchange slot per thread
};

inline thread_local Dim thread_idx;
inline Dim block_idx, grid_dim, block_dim;
inline Block* current = nullptr;

inline int lane() { return int(thread_idx.x) & 31; }
inline int warp() { return int(thread_idx.x) >> 5; }
inline void warp_sync() { current->warp_barriers[size_t(warp())]->arrive_and_wait(); }

// Every lane publishes `v`; returns lane `src`'s value.
template <class T>
T exchange(T v, int src) {
  static_assert(sizeof(T) <= 8);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  current->slots[thread_idx.x] = bits;
  warp_sync();
  const uint64_t got = current->slots[size_t(warp() * 32 + (src & 31))];
  warp_sync();
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}

// Runs kernel(args...) on a grid of `grid` blocks of `threads` threads, block after block.
template <class Kernel, class... Args>
void launch(int grid, int threads, Kernel kernel, Args... args) {
  grid_dim = {unsigned(grid), 1, 1};
  block_dim = {unsigned(threads), 1, 1};
  for (int b = 0; b < grid; ++b) {
    block_idx = {unsigned(b), 0, 0};
    Block block(threads);
    current = &block;
    std::vector<std::thread> team;
    for (int t = 0; t < threads; ++t)
      team.emplace_back([&, t] {
        thread_idx = {unsigned(t), 0, 0};
        kernel(args...);
      });
    for (auto& th : team) th.join();
    current = nullptr;
  }
}

}  // namespace simt

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define threadIdx simt::thread_idx
#define blockIdx simt::block_idx
#define gridDim simt::grid_dim
#define blockDim simt::block_dim

inline void __syncthreads() { simt::current->block_barrier.arrive_and_wait(); }
template <class T>
T __shfl_sync(unsigned, T v, int src) { return simt::exchange(v, src); }
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask) { return simt::exchange(v, simt::lane() ^ mask); }
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned delta) {
  const int l = simt::lane();
  return simt::exchange(v, l >= int(delta) ? l - int(delta) : l);
}
inline unsigned __ballot_sync(unsigned, bool pred) {
  using namespace simt;
  current->slots[thread_idx.x] = pred ? 1 : 0;
  warp_sync();
  unsigned bits = 0;
  for (int l = 0; l < 32 && warp() * 32 + l < current->n_threads; ++l)
    bits |= unsigned(current->slots[size_t(warp() * 32 + l)] != 0) << l;
  warp_sync();
  return bits;
}
inline bool __all_sync(unsigned m, bool pred) { return __ballot_sync(m, !pred) == 0; }
inline int __ffs(unsigned v) { return __builtin_ffs(int(v)); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return std::atomic_ref<unsigned long long>(*p).fetch_add(v);
}
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline int atomicMin(int* p, int v) {
  std::atomic_ref<int> a(*p);
  int old = a.load();
  while (v < old && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
inline long long __double_as_longlong(double v) {
  long long r;
  std::memcpy(&r, &v, 8);
  return r;
}
inline double __longlong_as_double(long long v) {
  double r;
  std::memcpy(&r, &v, 8);
  return r;
}
using std::isnan;
using std::log;
using std::max;
using std::min;
