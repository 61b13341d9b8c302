// The run-time choice of fast_math.h's row kernels (see simd_path there).
#include "ops/fast_math.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace bridle {

namespace {

bool cpu_has_avx512() {
#if defined(BRIDLE_AVX512_KERNELS)
  // libgcc's checks include the OS saving the AVX-512 registers (XGETBV).
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

SimdPath initial_path() {
  const char* forced = std::getenv("BRIDLE_SIMD");
  const SimdPath best = best_simd_path();
  if (forced == nullptr || std::string(forced).empty()) return best;
  const std::string wanted = forced;
  if (wanted == "avx2" && best == SimdPath::kAvx512) return SimdPath::kAvx2;
  if (wanted != simd_path_name(best))  // start-up: no exception to throw, so say it
    std::fprintf(stderr, "bridle: BRIDLE_SIMD=%s is not available here; using %s\n", wanted.c_str(),
                 simd_path_name(best));
  return best;
}

SimdPath current_path = initial_path();

}  // namespace

#ifdef BRIDLE_AVX512_KERNELS
bool detail::use_avx512 = current_path == SimdPath::kAvx512;
#endif

const char* simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::kPortable:
      return "portable";
    case SimdPath::kAvx2:
      return "avx2";
    case SimdPath::kAvx512:
      return "avx512";
  }
  return "?";
}

SimdPath best_simd_path() {
  if (cpu_has_avx512()) return SimdPath::kAvx512;
#ifdef BRIDLE_AVX2
  return SimdPath::kAvx2;
#else
  return SimdPath::kPortable;
#endif
}

SimdPath simd_path() { return current_path; }

void set_simd_path(SimdPath path) {
  const SimdPath best = best_simd_path();
  // The AVX2 code is compiled in whenever AVX-512 is, so any path up to the best.
  if (static_cast<int>(path) > static_cast<int>(best) ||
      (path == SimdPath::kPortable && best != SimdPath::kPortable))
    throw Error(fmt::format(
        "set_simd_path: '{}' is not available (this build on this CPU runs "
        "'{}'{})",
        simd_path_name(path), simd_path_name(best), best == SimdPath::kAvx512 ? " or 'avx2'" : ""));
  current_path = path;
#ifdef BRIDLE_AVX512_KERNELS
  detail::use_avx512 = path == SimdPath::kAvx512;
#endif
}

}  // namespace bridle
