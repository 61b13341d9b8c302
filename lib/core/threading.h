// One thread-count setting for everything that runs in parallel.
//
// bridle's own kernels, OpenBLAS (its OpenMP build) and oneDNN (built on OpenMP
// in Debian) all share the one OpenMP pool, so set_num_threads() is the only knob.
#pragma once

#include <string>

namespace bridle {

// Sets the number of threads for bridle's kernels, OpenBLAS and oneDNN.
// n <= 0 means "all cores".
void set_num_threads(int n);
int get_num_threads();

// "OpenBLAS 0.3.21 (OpenMP), 2 threads": for logs and benchmark records.
std::string threading_info();

// Whether the OpenBLAS we run with is the OpenMP build (sharing our pool).
bool openblas_uses_openmp();

}  // namespace bridle
