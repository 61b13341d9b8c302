// The run-time choice of fast_math.h's row kernels (see simd_path there).
#include "ops/fast_math.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

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

// The largest data or unified cache that cpuid's cache leaf lists (Intel's 4,
// AMD's 0x8000001D: the same layout), one instance of it; 0 if there is none.
// Read here rather than through sysconf: glibc reports AMD's L3 from leaf
// 0x80000006, which need not be one core complex's.
size_t cpuid_last_level_cache_bytes() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return 0;
  unsigned leaf = 4;
  if (cpu_vendor() == CpuVendor::kAmd) {
    // The leaf exists with the topology extensions (0x80000001 ECX bit 22).
    if (__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) == 0 || (ecx & (1u << 22)) == 0) return 0;
    leaf = 0x8000001D;
  } else if (eax < 4) {
    return 0;
  }
  size_t largest = 0;
  int largest_level = 0;
  for (unsigned index = 0; index < 16; ++index) {
    if (__get_cpuid_count(leaf, index, &eax, &ebx, &ecx, &edx) == 0) break;
    const unsigned type = eax & 31;  // 0: no more caches; 1 data, 2 instruction, 3 unified
    if (type == 0) break;
    if (type == 2) continue;
    const int level = static_cast<int>((eax >> 5) & 7);
    const size_t ways = (ebx >> 22) + 1, partitions = ((ebx >> 12) & 0x3ff) + 1,
                 line = (ebx & 0xfff) + 1, sets = size_t{ecx} + 1;
    if (level >= largest_level) {
      largest_level = level;
      largest = ways * partitions * line * sets;
    }
  }
  return largest;
#else
  return 0;
#endif
}

CpuVendor find_cpu_vendor() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // libgcc's CPU model, as cpu_has_avx512 reads it
  if (__builtin_cpu_is("intel")) return CpuVendor::kIntel;
  if (__builtin_cpu_is("amd")) return CpuVendor::kAmd;
#endif
  return CpuVendor::kOther;
}

size_t find_last_level_cache_bytes() {
  if (const size_t bytes = cpuid_last_level_cache_bytes(); bytes > 0) return bytes;
#ifdef _SC_LEVEL3_CACHE_SIZE
  if (const long bytes = sysconf(_SC_LEVEL3_CACHE_SIZE); bytes > 0)
    return static_cast<size_t>(bytes);
#endif
  return size_t{32} << 20;
}

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

CpuVendor cpu_vendor() {
  static const CpuVendor vendor = find_cpu_vendor();
  return vendor;
}

size_t last_level_cache_bytes() {
  static const size_t bytes = find_last_level_cache_bytes();
  return bytes;
}

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
