#pragma once
// Worker threads of the CPU kernels (OpenMP). 0 means one per available core.
namespace dsi {
void set_num_threads(int n);
int num_threads();
}  // namespace dsi
