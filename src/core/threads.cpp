#include "core/threads.h"

#include <omp.h>

#include "core/error.h"

namespace dsi {

void set_num_threads(int n) {
  if (n < 0) fail("--threads must be >= 0, got {}", n);
  omp_set_num_threads(n == 0 ? omp_get_num_procs() : n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace dsi
