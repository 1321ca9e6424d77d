#pragma once
// Argument checks of the kernels' host wrappers (plain C++, usable from .cu files): each throws
// dsi::Error naming the op and the operand at fault.
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace dsi::cuda::detail {

// Argument checks of the host wrappers (check.cpp; they throw dsi::Error naming op and operand).
std::string shape_str(const Tensor& t);
void require_dtype(const Tensor& t, bool ok, const char* op, const char* name, const char* allowed);
void require_float(const Tensor& t, const char* op, const char* name);  // f32 or bf16
// rows x cols, a row stride >= cols, and data unless empty.
void require_shape(const Tensor& t, int64_t rows, int64_t cols, const char* op, const char* name);

}  // namespace dsi::cuda::detail
