#pragma once
// Element types of checkpoints and tensors, and exact conversions to float32.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace dsi {

enum class DType : uint8_t { f32, f16, bf16, f8_e4m3, i32, i64 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::f8_e4m3: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

// The names safetensors headers use ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_safetensors(std::string_view name);

inline float bf16_to_f32(uint16_t v) { return std::bit_cast<float>(uint32_t(v) << 16); }

// Round to nearest even, NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t v);

// FP8 e4m3 ("fn" variant: no infinities, 0x7f/0xff are NaN). Placing the 7 magnitude bits at
// bit 20 of a float32 gives the value times 2^-120 for normals and subnormals alike, so the
// kernels widen with a shift and fold 2^120 into the block scale.
constexpr float kFp8ShiftCompensation = 1.329227995784916e36f;  // 2^120
inline float fp8_e4m3_to_f32(uint8_t v) {
  if ((v & 0x7f) == 0x7f) return std::nanf("");
  float mag = std::bit_cast<float>(uint32_t(v & 0x7f) << 20) * kFp8ShiftCompensation;
  return (v & 0x80) ? -mag : mag;
}
// Nearest e4m3 value (ties to even), saturating at +-448; used to make dummy FP8 weights.
uint8_t f32_to_fp8_e4m3(float f);

// Reads element i of a buffer of type t as float32 (scalar path; kernels vectorise their own).
inline float load_as_f32(const void* data, DType t, int64_t i) {
  const auto* p = static_cast<const unsigned char*>(data);
  switch (t) {
    case DType::f32: { float f; std::memcpy(&f, p + 4 * i, 4); return f; }
    case DType::bf16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h); }
    case DType::f16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return f16_to_f32(h); }
    case DType::f8_e4m3: return fp8_e4m3_to_f32(p[i]);
    case DType::i32: { int32_t v; std::memcpy(&v, p + 4 * i, 4); return float(v); }
    case DType::i64: { int64_t v; std::memcpy(&v, p + 8 * i, 8); return float(v); }
  }
  return 0;
}

}  // namespace dsi
