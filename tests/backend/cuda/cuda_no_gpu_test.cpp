// What the CUDA backend does on any machine, GPU or not (CI has none): counting devices never
// crashes, and the kernels' wrappers reject bad operands by name before touching the device.
#include <gtest/gtest.h>

#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/fp8.h"
#include "backend/cuda/sampling.h"
#include "core/error.h"

namespace dsi::cuda {
namespace {

TEST(CudaNoGpu, DeviceCountIsANumberNeverACrash) {
  const int n = cuda_device_count();
  EXPECT_GE(n, 0);
  EXPECT_EQ(cuda_device_count(), n);  // a second call (after any sticky error) agrees
  EXPECT_THROW(query_device(n), Error);
}

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Fake device addresses: the wrappers must reject these calls before any launch.
void* const kFake = reinterpret_cast<void*>(uintptr_t(1) << 40);

TEST(CudaNoGpu, WrappersNameTheBadOperand) {
  const Tensor x{kFake, DType::f32, 4, 64, 64};
  const Tensor w{kFake, DType::f32, 1, 64, 64};
  const Tensor out_bad{kFake, DType::f32, 4, 32, 32};
  EXPECT_NE(error_of([&] { rms_norm({x, Tensor{}, w, 1e-6f, out_bad}, nullptr); }).find("rms_norm: out is [4, 32] F32"),
            std::string::npos);
  const Tensor w_bf16{kFake, DType::bf16, 1, 64, 64};
  EXPECT_NE(error_of([&] { rms_norm({x, Tensor{}, w_bf16, 1e-6f, x}, nullptr); }).find("weight"), std::string::npos);
  const Tensor i32{kFake, DType::i32, 4, 64, 64};
  EXPECT_NE(error_of([&] { add({x, i32}, nullptr); }).find("add: y is [4, 64] I32, expected f32 or bf16"),
            std::string::npos);
  EXPECT_NE(error_of([&] { rope({x, 2, 40, 0, nullptr, nullptr, 16, 1.0f}, nullptr); }).find("exceed the row of 64"),
            std::string::npos);
  const Tensor q{kFake, DType::f8_e4m3, 4, 100, 100};
  const Tensor x100{kFake, DType::f32, 4, 100, 100};
  EXPECT_NE(error_of([&] { quantize_fp8({x100, q, nullptr, 1, 4}, nullptr); }).find("not a multiple of 128"),
            std::string::npos);
  const Tensor strided{kFake, DType::f32, 4, 64, 32};
  EXPECT_NE(error_of([&] { add({x, strided}, nullptr); }).find("row stride 32 < 64"), std::string::npos);
}

TEST(CudaNoGpu, SampleNamesTheBadArgument) {
  auto* logits = static_cast<float*>(kFake);
  auto* rows = static_cast<const sampling::SamplingRow*>(kFake);
  auto* results = static_cast<sampling::SamplingResult*>(kFake);
  const SampleParams ok{logits, 2, 100, 100, rows, nullptr, 0, results};
  auto with = [&](auto change) {
    SampleParams p = ok;
    change(p);
    return error_of([&] { sample(p, nullptr); });
  };
  EXPECT_EQ(with([](SampleParams& p) { p.vocab = 0; }), "sample: vocab is 0, expected 1 .. 1048576");
  EXPECT_EQ(with([](SampleParams& p) { p.vocab = int64_t(1) << 21; p.row_stride = p.vocab; }),
            "sample: vocab is 2097152, expected 1 .. 1048576");
  EXPECT_EQ(with([](SampleParams& p) { p.row_stride = 99; }), "sample: logits row stride 99 < vocab 100");
  EXPECT_EQ(with([](SampleParams& p) { p.n_rows = -1; }), "sample: n_rows is -1");
  EXPECT_EQ(with([](SampleParams& p) { p.logits = nullptr; }), "sample: no logits");
  EXPECT_EQ(with([](SampleParams& p) { p.rows = nullptr; }), "sample: no rows");
  EXPECT_EQ(with([](SampleParams& p) { p.results = nullptr; }), "sample: no results");
  EXPECT_EQ(with([](SampleParams& p) { p.n_penalties = 3; }), "sample: no penalties for n_penalties 3");
  // No rows: nothing to check on the device, nothing launched.
  EXPECT_EQ(with([](SampleParams& p) { p.n_rows = 0; p.logits = nullptr; }), "");
}

}  // namespace
}  // namespace dsi::cuda
