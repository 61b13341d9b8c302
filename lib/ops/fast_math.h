// Branch-free float math for the hot loops of the softmax family: fast_exp,
// which the compiler vectorizes (std::exp is exact to 1 ulp but does not
// vectorize without -ffast-math, which would also break inf handling), and the
// row reductions those loops need (max, sum, dot, sum of exps), written with
// AVX2 + FMA intrinsics when the build targets them and as plain loops
// otherwise. Intrinsics, because GCC's `omp simd` reductions spill their partial
// sums to the stack and cost several times the arithmetic on short rows.
//
// On a CPU with AVX-512 the row kernels (row_max, row_exp_sum, row_dot,
// row_exp_axpy, row_affine_min, row_mul_diff) run the 16-lane versions in
// fast_math_avx512.cpp instead; the choice is made once at start-up (simd_path
// below) and can be changed for comparisons: BRIDLE_SIMD=avx2 in the
// environment, or set_simd_path.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/store.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define BRIDLE_AVX2 1
#endif
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace bridle {

// The size of one instance of this CPU's last-level cache, in bytes, as the CPU
// describes it (cpuid leaf 4 on Intel, 0x8000001D on AMD; else what the OS
// says; else 32 MiB), read once. Streaming stores pay only for an output larger
// than this: a smaller one would still be in the cache for its next reader, and
// a streaming store into a line the cache holds must first evict it.
size_t last_level_cache_bytes();

// Who made this CPU (cpuid's vendor string), for the choices whose best setting
// was measured to differ between Intel's and AMD's cores.
enum class CpuVendor { kIntel, kAmd, kOther };
CpuVendor cpu_vendor();

// Makes this thread's streaming stores visible before its later stores (sfence).
inline void store_fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

// Which instructions the row kernels use: kPortable (plain loops; builds without
// AVX2), kAvx2 (AVX2 + FMA, the build's baseline on x86-64) or kAvx512 (chosen at
// run time when the CPU and the build both have it).
enum class SimdPath { kPortable, kAvx2, kAvx512 };
const char* simd_path_name(SimdPath path);
// The best path this build can run on this CPU.
SimdPath best_simd_path();
// The path in use: best_simd_path(), or kAvx2 when BRIDLE_SIMD=avx2 is set (a
// value the build or CPU cannot run is reported on stderr and ignored).
SimdPath simd_path();
// Selects a path for the whole process (not thread-safe against running
// kernels); a path the build or the CPU lacks is an error naming it.
void set_simd_path(SimdPath path);

#ifdef BRIDLE_AVX512_KERNELS
namespace detail {
extern bool use_avx512;  // simd_path() == kAvx512, read once per row
}
namespace avx512 {
float row_max(const float* x, int64_t n, bool& has_nan);
float row_exp_sum(const float* x, int64_t n, float shift, float scale, float* e);
float row_dot(const float* a, const float* b, int64_t n);
void row_exp_axpy(float* dst, const float* x, int64_t n, float shift, float coef, const float* b,
                  float b_coef, bool accumulate);
void row_affine_min(float* y, const float* x, int64_t n, float shift, float mul, float sub,
                    float upper);
void row_mul_diff(float* dst, const float* a, const float* b, int64_t n, float c, float scale,
                  bool accumulate, Store store);
}  // namespace avx512
#define BRIDLE_DISPATCH_AVX512(call) \
  if (detail::use_avx512) return avx512::call
#else
#define BRIDLE_DISPATCH_AVX512(call)
#endif

// e^x with a relative error below 2e-7 on [-87.3, 88.3]; exact 0 below (including
// -inf), e^88.3 up to 88.73 and +inf above; NaN gives NaN. Cephes-style: split
// x = n ln2 + r with |r| <= ln2/2, approximate e^r by a degree-6 polynomial,
// then scale by 2^n through the exponent bits.
[[gnu::always_inline]] inline float fast_exp(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  // Ternaries, not fmin/fmax: they vectorize to min/max instructions. NaN is
  // clamped too (no NaN reaches the integer conversion) and put back at the end.
  float clamped = x >= -87.3f ? (x > 88.3f ? 88.3f : x) : -87.3f;
  float n = std::nearbyint(clamped * kLog2e);
  float r = clamped - n * kLn2Hi - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float result = p * scale;
  result = x < -87.3f ? 0.0f : result;
  result = x > 88.73f ? INFINITY : result;
  return x == x ? result : x;
}

#ifdef BRIDLE_AVX2
// fast_exp on 8 lanes, step for step. NaN lanes stay NaN: maxps and minps return
// their second operand when either is NaN, so x goes second.
inline __m256 fast_exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.3f);
  const __m256 clamped = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(clamped, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), clamped);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  result = _mm256_blendv_ps(result, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  return _mm256_blendv_ps(result, _mm256_set1_ps(INFINITY),
                          _mm256_cmp_ps(x, _mm256_set1_ps(88.73f), _CMP_GT_OQ));
}

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// Lanes [0, count) set, for the last, partial vector of a row (0 < count <= 8).
inline __m256i tail_mask(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

// The largest of x[0..n) (-inf when n = 0); has_nan is set when any is NaN.
inline float row_max(const float* x, int64_t n, bool& has_nan) {
  BRIDLE_DISPATCH_AVX512(row_max(x, n, has_nan));
  float max = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  has_nan = false;
#ifdef BRIDLE_AVX2
  __m256 vmax = _mm256_set1_ps(max), nan = _mm256_setzero_ps();
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    vmax = _mm256_max_ps(vmax, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (j < n) {  // the tail, with -inf in the lanes past the end
    const __m256i mask = tail_mask(n - j);
    const __m256 v = _mm256_blendv_ps(_mm256_set1_ps(-std::numeric_limits<float>::infinity()),
                                      _mm256_maskload_ps(x + j, mask), _mm256_castsi256_ps(mask));
    vmax = _mm256_max_ps(vmax, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    j = n;
  }
  max = horizontal_max(vmax);
  has_nan = _mm256_movemask_ps(nan) != 0;
#endif
  for (; j < n; ++j) {
    max = x[j] > max ? x[j] : max;
    has_nan |= x[j] != x[j];
  }
  return max;
}

// sum_j e_j with e_j = fast_exp((x_j - shift) * scale), j in [0, n); also
// stores e_j into e unless it is null. Every path keeps this promise, which the
// online softmax builds on instead of a max pass (checked over every float in
// the tests): a NaN x_j makes the sum NaN, and an argument (x_j - shift) * scale
// of 61 or more (+inf included) makes it above e^60 or not finite (+inf, NaN or,
// for arguments past 4.6e7 on AVX-512, -inf).
inline float row_exp_sum(const float* x, int64_t n, float shift, float scale, float* e) {
  BRIDLE_DISPATCH_AVX512(row_exp_sum(x, n, shift, scale, e));
  float sum = 0.0f;
  int64_t j = 0;
#ifdef BRIDLE_AVX2
  const __m256 vshift = _mm256_set1_ps(shift), vscale = _mm256_set1_ps(scale);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; j + 16 <= n; j += 16) {  // two chains, so the adds overlap
    const __m256 e0 =
        fast_exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vshift), vscale));
    const __m256 e1 =
        fast_exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vshift), vscale));
    if (e) {
      _mm256_storeu_ps(e + j, e0);
      _mm256_storeu_ps(e + j + 8, e1);
    }
    acc0 = _mm256_add_ps(acc0, e0);
    acc1 = _mm256_add_ps(acc1, e1);
  }
  for (; j < n; j += 8) {  // the last 1 to 15 elements, 8 at a time, masked past the end
    const __m256i mask = tail_mask(n - j < 8 ? n - j : 8);
    const __m256 v =
        fast_exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, mask), vshift), vscale));
    const __m256 e0 = _mm256_and_ps(v, _mm256_castsi256_ps(mask));
    if (e) _mm256_maskstore_ps(e + j, mask, e0);
    acc0 = _mm256_add_ps(acc0, e0);
  }
  sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
#endif
  for (; j < n; ++j) {
    const float v = fast_exp((x[j] - shift) * scale);
    if (e) e[j] = v;
    sum += v;
  }
  return sum;
}

// sum_j a_j, or sum_j a_j b_j when b is not null, j in [0, n).
inline float row_dot(const float* a, const float* b, int64_t n) {
  BRIDLE_DISPATCH_AVX512(row_dot(a, b, n));
  float sum = 0.0f;
  int64_t j = 0;
#ifdef BRIDLE_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; j + 16 <= n; j += 16) {
    const __m256 a0 = _mm256_loadu_ps(a + j), a1 = _mm256_loadu_ps(a + j + 8);
    if (b) {
      acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + j), acc0);
      acc1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + j + 8), acc1);
    } else {
      acc0 = _mm256_add_ps(acc0, a0);
      acc1 = _mm256_add_ps(acc1, a1);
    }
  }
  for (; j < n; j += 8) {  // masked loads give 0 past the end
    const __m256i mask = tail_mask(n - j < 8 ? n - j : 8);
    const __m256 a0 = _mm256_maskload_ps(a + j, mask);
    acc0 = b ? _mm256_fmadd_ps(a0, _mm256_maskload_ps(b + j, mask), acc0) : _mm256_add_ps(acc0, a0);
  }
  sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
#endif
  for (; j < n; ++j) sum += b ? a[j] * b[j] : a[j];
  return sum;
}

// tanh(x) with a relative error below 3e-7, NaN propagated, +-1 at +-inf. The
// Cephes tanhf split: an odd polynomial below |x| = 0.625, where 1 - 2 / (e^2|x| + 1)
// would cancel, and that formula above, through fast_exp. Both branches are
// computed and one selected, so a loop over it vectorizes (libm's tanhf does not).
[[gnu::always_inline]] inline float fast_tanh(float x) {
  const float z = std::fabs(x);
  const float s = x * x;
  float small = -5.70498872745e-3f;
  small = small * s + 2.06390887954e-2f;
  small = small * s - 5.37397155531e-2f;
  small = small * s + 1.33314422036e-1f;
  small = small * s - 3.33332819422e-1f;
  small = small * s * x + x;
  float large = 1.0f - 2.0f / (fast_exp(2.0f * (z > 44.0f ? 44.0f : z)) + 1.0f);
  large = x < 0.0f ? -large : large;
  const float result = z < 0.625f ? small : large;
  return x != x ? x : result;  // NaN in, NaN out
}

// 1 / (1 + e^-x) without overflow: for x < 0 it is computed as e^x / (1 + e^x).
inline float stable_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

// dst[j] += value(j) (accumulate) or dst[j] = value(j), j in [0, n): how a
// backward kernel writes into a gradient it either adds to or fills fresh. The
// branch sits outside the loop, and value inlines into it, so both vectorize.
template <typename Value>
inline void add_or_store(float* dst, int64_t n, bool accumulate, Value value) {
  if (accumulate) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dst[j] += value(j);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dst[j] = value(j);
  }
}

// dst[j] (+)= coef e^(x_j - shift) + b_coef b_j (b_j = 1 when b is null), j in
// [0, n): the exp-bound backward loops of log_softmax and cross_entropy.
inline void row_exp_axpy(float* dst, const float* x, int64_t n, float shift, float coef,
                         const float* b, float b_coef, bool accumulate) {
#ifdef BRIDLE_AVX512_KERNELS
  if (detail::use_avx512) {
    avx512::row_exp_axpy(dst, x, n, shift, coef, b, b_coef, accumulate);
    return;
  }
#endif
  if (b)
    add_or_store(dst, n, accumulate,
                 [=](int64_t j) { return fast_exp(x[j] - shift) * coef + b_coef * b[j]; });
  else
    add_or_store(dst, n, accumulate,
                 [=](int64_t j) { return fast_exp(x[j] - shift) * coef + b_coef; });
}

// y[j] = min((x_j - shift) * mul - sub, upper), j in [0, n): the second pass of
// softmax (from the exps: shift 0, sub 0, upper 1) and of log_softmax (from x:
// upper 0), where the output is written; y may be x.
inline void row_affine_min(float* y, const float* x, int64_t n, float shift, float mul, float sub,
                           float upper) {
#ifdef BRIDLE_AVX512_KERNELS
  if (detail::use_avx512) {
    avx512::row_affine_min(y, x, n, shift, mul, sub, upper);
    return;
  }
#endif
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float v = (x[j] - shift) * mul - sub;
    y[j] = v < upper ? v : upper;
  }
}

// dst[j] (+)= a_j (b_j - c) scale, j in [0, n): the write pass of softmax's
// backward (a = y, b = dy, c = sum_k dy_k y_k, scale = 1 / T).
inline void row_mul_diff(float* dst, const float* a, const float* b, int64_t n, float c,
                         float scale, bool accumulate, Store store = Store::kCached) {
#ifdef BRIDLE_AVX512_KERNELS
  if (detail::use_avx512) {
    avx512::row_mul_diff(dst, a, b, n, c, scale, accumulate, store);
    return;
  }
#endif
  add_or_store(dst, n, accumulate, [=](int64_t j) { return a[j] * (b[j] - c) * scale; });
}

#undef BRIDLE_DISPATCH_AVX512

}  // namespace bridle
