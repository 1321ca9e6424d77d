#include "core/dtype.h"

#include <array>

namespace dsi {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::f8_e4m3: return "F8_E4M3";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::i32, DType::i64})
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    float v = float(mant) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint8_t f32_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  // The 127 non-negative finite codes are increasing in value: binary search the nearest.
  int lo = 0, hi = 126;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (fp8_e4m3_to_f32(uint8_t(mid)) <= a) lo = mid; else hi = mid - 1;
  }
  if (lo < 126) {
    float below = fp8_e4m3_to_f32(uint8_t(lo)), above = fp8_e4m3_to_f32(uint8_t(lo + 1));
    if (a - below > above - a || (a - below == above - a && (lo & 1))) ++lo;
  }
  return uint8_t(sign | lo);
}

}  // namespace dsi
