// The AVX-512 versions of fast_math.h's row kernels: the same arithmetic as the
// AVX2 code there, 16 lanes at a time, with masked loads and stores for a row's
// tail. This file alone is built with -mavx512f/dq/bw/vl (see lib/CMakeLists.txt);
// fast_math.h calls into it only when the CPU has AVX-512 and set_simd_path has
// not turned it off, so the library still runs on AVX2-only machines.
//
// Why a second copy of the exponential: the softmax family's forward passes and
// log_softmax's backward are bound by e^x, not by memory, and twice the lanes per
// instruction (and vscalefps for the 2^n step) roughly doubles their throughput.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "ops/fast_math.h"

namespace bridle::avx512 {

namespace {

// fast_exp on 16 lanes: the same range reduction and polynomial as fast_exp8, in
// fewer instructions. The polynomial runs as one Horner chain (its last two steps
// fuse "* r + 1" twice, where fast_exp8 spends a multiply and an add more), and
// vscalefps does the 2^n step and the range's top end at once: it overflows to
// +inf by itself, so x needs no clamp there (e^88.5 comes out finite and right,
// where fast_exp8 clamps). Below -87.3 (and for -inf, whose reduction is NaN) the
// result is masked to an exact 0, as fast_exp's, which also keeps denormals out of
// the sums. Results agree with fast_exp8 to rounding (within 2e-7 of e^x; tested);
// +inf and NaN in give NaN: the softmax family only calls it on x - max <= 0.
inline __m512 fast_exp16(__m512 x) {
  const __mmask16 in_range = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(in_range, p, n);
}

// Lanes [0, count) of the last, partial vector of a row (0 < count < 16).
inline __mmask16 tail(int64_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

}  // namespace

float row_max(const float* x, int64_t n, bool& has_nan) {
  const __m512 minus_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 max0 = minus_inf, max1 = minus_inf;
  __mmask16 nan = 0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16);
    max0 = _mm512_max_ps(max0, a);
    max1 = _mm512_max_ps(max1, b);
    nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);  // unordered: either is NaN
  }
  for (; j < n; j += 16) {
    const __mmask16 mask = n - j < 16 ? tail(n - j) : static_cast<__mmask16>(0xffff);
    const __m512 a = _mm512_mask_loadu_ps(minus_inf, mask, x + j);
    max0 = _mm512_max_ps(max0, a);
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
  }
  has_nan = nan != 0;
  return _mm512_reduce_max_ps(_mm512_max_ps(max0, max1));
}

float row_exp_sum(const float* x, int64_t n, float shift, float scale, float* e) {
  const __m512 vshift = _mm512_set1_ps(shift), vscale = _mm512_set1_ps(scale);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {  // two chains, so the adds overlap
    const __m512 e0 =
        fast_exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), vshift), vscale));
    const __m512 e1 =
        fast_exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vshift), vscale));
    if (e) {
      _mm512_storeu_ps(e + j, e0);
      _mm512_storeu_ps(e + j + 16, e1);
    }
    acc0 = _mm512_add_ps(acc0, e0);
    acc1 = _mm512_add_ps(acc1, e1);
  }
  for (; j < n; j += 16) {  // the last 1 to 31 elements, masked past the end
    const __mmask16 mask = n - j < 16 ? tail(n - j) : static_cast<__mmask16>(0xffff);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
    const __m512 e0 =
        _mm512_maskz_mov_ps(mask, fast_exp16(_mm512_mul_ps(_mm512_sub_ps(v, vshift), vscale)));
    if (e) _mm512_mask_storeu_ps(e + j, mask, e0);
    acc0 = _mm512_add_ps(acc0, e0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

float row_exp_sum_max(const float* x, int64_t n, float shift, float scale, float* e, float& max,
                      bool& has_nan) {
  const __m512 vshift = _mm512_set1_ps(shift), vscale = _mm512_set1_ps(scale);
  const __m512 minus_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), max0 = minus_inf, max1 = minus_inf;
  __mmask16 nan = 0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16);
    max0 = _mm512_max_ps(max0, a);
    max1 = _mm512_max_ps(max1, b);
    nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
    const __m512 e0 = fast_exp16(_mm512_mul_ps(_mm512_sub_ps(a, vshift), vscale));
    const __m512 e1 = fast_exp16(_mm512_mul_ps(_mm512_sub_ps(b, vshift), vscale));
    if (e) {
      _mm512_storeu_ps(e + j, e0);
      _mm512_storeu_ps(e + j + 16, e1);
    }
    acc0 = _mm512_add_ps(acc0, e0);
    acc1 = _mm512_add_ps(acc1, e1);
  }
  for (; j < n; j += 16) {
    const __mmask16 mask = n - j < 16 ? tail(n - j) : static_cast<__mmask16>(0xffff);
    const __m512 v = _mm512_mask_loadu_ps(minus_inf, mask, x + j);
    max0 = _mm512_max_ps(max0, v);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512 e0 =
        _mm512_maskz_mov_ps(mask, fast_exp16(_mm512_mul_ps(_mm512_sub_ps(v, vshift), vscale)));
    if (e) _mm512_mask_storeu_ps(e + j, mask, e0);
    acc0 = _mm512_add_ps(acc0, e0);
  }
  has_nan = nan != 0;
  max = _mm512_reduce_max_ps(_mm512_max_ps(max0, max1));
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

float row_dot(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 a0 = _mm512_loadu_ps(a + j), a1 = _mm512_loadu_ps(a + j + 16);
    if (b) {
      acc0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + j), acc0);
      acc1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(b + j + 16), acc1);
    } else {
      acc0 = _mm512_add_ps(acc0, a0);
      acc1 = _mm512_add_ps(acc1, a1);
    }
  }
  for (; j < n; j += 16) {  // masked loads give 0 past the end
    const __mmask16 mask = n - j < 16 ? tail(n - j) : static_cast<__mmask16>(0xffff);
    const __m512 a0 = _mm512_maskz_loadu_ps(mask, a + j);
    acc0 =
        b ? _mm512_fmadd_ps(a0, _mm512_maskz_loadu_ps(mask, b + j), acc0) : _mm512_add_ps(acc0, a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void row_exp_axpy(float* dst, const float* x, int64_t n, float shift, float coef, const float* b,
                  float b_coef, bool accumulate) {
  const __m512 vshift = _mm512_set1_ps(shift), vcoef = _mm512_set1_ps(coef),
               vb_coef = _mm512_set1_ps(b_coef);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mask = n - j < 16 ? tail(n - j) : static_cast<__mmask16>(0xffff);
    const __m512 e = fast_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + j), vshift));
    const __m512 bj = b ? _mm512_maskz_loadu_ps(mask, b + j) : _mm512_set1_ps(1.0f);
    __m512 v = _mm512_add_ps(_mm512_mul_ps(e, vcoef), _mm512_mul_ps(vb_coef, bj));
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst + j), v);
    _mm512_mask_storeu_ps(dst + j, mask, v);
  }
}

}  // namespace bridle::avx512
