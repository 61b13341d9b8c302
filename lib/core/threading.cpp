// Thread-count control; see threading.h.
#include "core/threading.h"

#include <cblas.h>
#include <fmt/format.h>
#include <omp.h>

namespace bridle {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

bool openblas_uses_openmp() { return openblas_get_parallel() == 2; }

std::string threading_info() {
  const char* kinds[] = {"sequential", "pthreads", "OpenMP"};
  int parallel = openblas_get_parallel();
  return fmt::format("{} ({}), {} threads", openblas_get_config(),
                     parallel >= 0 && parallel <= 2 ? kinds[parallel] : "unknown",
                     get_num_threads());
}

}  // namespace bridle
