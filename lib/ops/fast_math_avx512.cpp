// The AVX-512 versions of fast_math.h's row kernels: the AVX2 code there, 16 lanes
// at a time, with masked loads and stores for a row's tail. This file alone is
// built with -mavx512f/dq/bw/vl (see lib/CMakeLists.txt); fast_math.h calls into
// it only when the CPU has AVX-512 and set_simd_path has not turned it off, so the
// library still runs on AVX2-only machines.
//
// Why a second copy of the exponential: the softmax family's forward passes and
// log_softmax's backward are bound by e^x, not by memory, and twice the lanes per
// instruction roughly doubles their throughput; and fast_exp16 below is a cheaper
// algorithm than fast_exp8's (a table lookup with vpermps, a cubic, vscalefps for
// the 2^k step), to the same accuracy bound.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ops/fast_math.h"

namespace bridle::avx512 {

namespace {

// e^x on 16 lanes by the table method (after Tang, 1989):
// x = (k + j/32) ln2 + r with n = 32k + j = round(32 x / ln2), j in [0, 32), so
// e^x = 2^k * 2^(j/32) * e^r. The 32 values 2^(j/32) fill two registers and are
// looked up with vpermt2ps (one instruction, as vpermps for 16); |r| <= ln2/64 ~
// 0.0108 leaves e^r to a quadratic (the Horner chain fast_exp8 runs needs degree
// 7 on |r| <= ln2/2), and vscalefps does the 2^k. 9 instructions per 16 lanes,
// where the Cephes form took 13 (14 micro-ops: vrndscaleps is two); they are
// most of the loop body of every exp-bound kernel below, and each one taken out
// measured 8% more exps per second.
//
// The steps: one FMA adds 1.5 * 2^18 to x log2(e), which rounds it to a multiple
// of 1/32: z - 1.5 * 2^18 is n/32 exactly, and z's low 5 mantissa bits are n mod
// 32 = j, which vpermt2ps reads as the index as they are. vscalefps multiplies by
// 2^floor(n/32) = 2^k, so n/32 goes to it unchanged. r = x - (n/32) ln2 in one
// FMA with ln2 rounded to float: that misses by (n/32) 1.9e-9, at most 3e-9 |x|,
// which is e^x for x moved by 1/20 of the rounding x itself carries (the
// Cody-Waite split into two FMAs would take it to 0, for an instruction more).
// e^r = 1 + c1 r + c2 r^2 with c1 = 1.0000147, c2 = 1/2, the minimax pair for
// |r| <= ln2/64 (error 5.3e-8). The result t + (t r)(c1 + c2 r) keeps the table
// value t as the leading term; with the rounding of the table (up to 6e-8 of
// 2^(j/32)) and of the final FMA: measured over every float in [-87.3, 88.72]
// against double exp, at most 1.65e-7 + 3e-9 |x| relative (glibc's expf and the
// Cephes form: below 1e-7), which the tests hold to 2e-7 + 3e-9 |x|.
//
// Range: below -87.3 (and -inf) the result is masked to an exact 0, as fast_exp's,
// which also keeps denormals out of the sums; above the largest finite exp
// (88.72) vscalefps overflows to +inf by itself (no clamp: e^88.5 comes out
// finite and right, where fast_exp8 clamps at 88.3); NaN gives NaN. From x ~ 4.6e7
// up (+inf included) z's rounding no longer keeps r small, but the value is still
// +inf, -inf or NaN, never finite (the tests check every float from 61): the online
// softmax counts on it to see, from the sum alone, a block whose shift was too low.
inline __m512 fast_exp16(__m512 x) {
  // 2^(j/32), j = 0..31, rounded to nearest: j < 16 in one register, j >= 16 in the other.
  const __m512 table_lo = _mm512_setr_ps(
      0x1p+0f, 0x1.059b0ep+0f, 0x1.0b5586p+0f, 0x1.11301ep+0f, 0x1.172b84p+0f, 0x1.1d4874p+0f,
      0x1.2387a6p+0f, 0x1.29e9e0p+0f, 0x1.306fe0p+0f, 0x1.371a74p+0f, 0x1.3dea64p+0f,
      0x1.44e086p+0f, 0x1.4bfdaep+0f, 0x1.5342b6p+0f, 0x1.5ab07ep+0f, 0x1.6247ecp+0f);
  const __m512 table_hi =
      _mm512_setr_ps(0x1.6a09e6p+0f, 0x1.71f75ep+0f, 0x1.7a1148p+0f, 0x1.82589ap+0f, 0x1.8ace54p+0f,
                     0x1.93737cp+0f, 0x1.9c4918p+0f, 0x1.a5503cp+0f, 0x1.ae89fap+0f, 0x1.b7f770p+0f,
                     0x1.c199bep+0f, 0x1.cb720ep+0f, 0x1.d5818ep+0f, 0x1.dfc974p+0f, 0x1.ea4afap+0f,
                     0x1.f50766p+0f);
  const __m512 shifter = _mm512_set1_ps(0x1.8p18f);  // 1.5 * 2^18: its ulp is 1/32
  const __mmask16 in_range = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter);
  const __m512 n32 = _mm512_sub_ps(z, shifter);  // n / 32
  const __m512 r = _mm512_fnmadd_ps(n32, _mm512_set1_ps(0.693147180559945309f), x);
  const __m512 t = _mm512_permutex2var_ps(table_lo, _mm512_castps_si512(z), table_hi);
  const __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), r, _mm512_set1_ps(1.000014663f));
  return _mm512_maskz_scalef_ps(in_range, _mm512_fmadd_ps(_mm512_mul_ps(t, r), q, t), n32);
}

// The exp argument (x - shift) * scale; without the multiply when scale is 1 (the
// softmax family's usual temperature), an instruction of the 15 or so per vector.
template <bool kScaled>
inline __m512 exp_arg(__m512 x, __m512 shift, __m512 scale) {
  const __m512 d = _mm512_sub_ps(x, shift);
  return kScaled ? _mm512_mul_ps(d, scale) : d;
}

// Lanes [0, count) of the last, partial vector of a row (0 < count < 16). Only
// that vector is masked: a masked store costs far more than a plain one on AMD's
// Zen cores even with every lane set (a row loop storing through a full mask
// measured half the bandwidth of the same loop with plain stores on Zen 5).
inline __mmask16 tail(int64_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

// How many of x's first n elements come before a 64-byte boundary (0 to 15).
// An exp-bound loop takes them as one masked vector first, so that its full
// vectors are loaded from single cache lines: a load across two lines costs two,
// and a row of 1000 floats starts half-way into a line every other row (the
// cross-entropy forward on [4096 x 1000] measured 15% faster with this).
inline int64_t aligned_head(const float* x, int64_t n) {
  const auto misalignment = static_cast<int64_t>(reinterpret_cast<uintptr_t>(x) & 63);
  return std::min<int64_t>(n, ((64 - misalignment) & 63) / static_cast<int64_t>(sizeof(float)));
}

// dst[j] = value(j, mask) for j in [0, n), value computing lanes [j, j + 16) that
// mask selects: Store::kStreaming's writes. The vectors of whole cache lines go
// out as non-temporal stores (vmovntps needs a 64-byte aligned address); the
// partial lines at either end, which a neighbouring row may share, as plain
// masked stores.
template <typename Value>
inline void stream_row(float* dst, int64_t n, Value value) {
  constexpr auto kAll = static_cast<__mmask16>(0xffff);
  int64_t j = aligned_head(dst, n);
  if (j > 0) _mm512_mask_storeu_ps(dst, tail(j), value(0, tail(j)));
  for (; j + 16 <= n; j += 16) _mm512_stream_ps(dst + j, value(j, kAll));
  if (j < n) _mm512_mask_storeu_ps(dst + j, tail(n - j), value(j, tail(n - j)));
}

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

namespace {

// row_exp_sum, compiled twice: with and without the multiply by scale (see
// exp_arg).
template <bool kScaled>
float exp_sum(const float* x, int64_t n, float shift, float scale, float* e) {
  const __m512 vshift = _mm512_set1_ps(shift), vscale = _mm512_set1_ps(scale);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  // Elements [j, j + count), 0 < count <= 16, masked.
  auto partial = [&](int64_t j, int64_t count) {
    const __mmask16 mask = count < 16 ? tail(count) : static_cast<__mmask16>(0xffff);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
    const __m512 e0 = _mm512_maskz_mov_ps(mask, fast_exp16(exp_arg<kScaled>(v, vshift, vscale)));
    if (e) _mm512_mask_storeu_ps(e + j, mask, e0);
    acc1 = _mm512_add_ps(acc1, e0);
  };
  int64_t j = aligned_head(x, n);
  if (j > 0) partial(0, j);
  for (; j + 32 <= n; j += 32) {  // two chains, so the adds overlap
    const __m512 e0 = fast_exp16(exp_arg<kScaled>(_mm512_loadu_ps(x + j), vshift, vscale));
    const __m512 e1 = fast_exp16(exp_arg<kScaled>(_mm512_loadu_ps(x + j + 16), vshift, vscale));
    if (e) {
      _mm512_storeu_ps(e + j, e0);
      _mm512_storeu_ps(e + j + 16, e1);
    }
    acc0 = _mm512_add_ps(acc0, e0);
    acc1 = _mm512_add_ps(acc1, e1);
  }
  for (; j < n; j += 16) partial(j, std::min<int64_t>(16, n - j));  // the last 1 to 31
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

}  // namespace

float row_exp_sum(const float* x, int64_t n, float shift, float scale, float* e) {
  return scale == 1.0f ? exp_sum<false>(x, n, shift, scale, e)
                       : exp_sum<true>(x, n, shift, scale, e);
}

namespace {

// A row read through 64-byte aligned loads, one cache line each, rebuilt into the
// row's own vectors with vpermt2ps: x[j, j + 16) and x[j + 16, j + 32) come out
// of the three aligned vectors covering them, the first of which the previous
// call loaded. For a loop bound by the cache (row_dot, the first pass of
// softmax's backward), a load that straddles two lines costs two, and a row of
// 1000 floats starts half-way into a line every other row; the rebuilt vectors
// are the same as unaligned loads give, so the sums keep their grouping and
// their bits wherever the row starts (topk on hierarchical log-probabilities
// compares near-tied sums computed from rows at different addresses).
class AlignedRow {
 public:
  // x must be 4-byte aligned and the row at least 48 floats long; the first
  // vector is loaded masked, so no byte before x is read.
  explicit AlignedRow(const float* x) {
    const auto shift = static_cast<int>((reinterpret_cast<uintptr_t>(x) & 63) / sizeof(float));
    line_ = x - shift;
    index_ =
        _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(shift));
    carry_ = _mm512_maskz_load_ps(static_cast<__mmask16>(0xffffu << shift), line_);
  }
  // x[j, j + 16) and x[j + 16, j + 32), for j = 0, 32, 64, ... in turn while
  // j + 48 <= n (the aligned loads then stay inside the row).
  void next(int64_t j, __m512& first, __m512& second) {
    const __m512 middle = _mm512_load_ps(line_ + j + 16), last = _mm512_load_ps(line_ + j + 32);
    first = _mm512_permutex2var_ps(carry_, index_, middle);
    second = _mm512_permutex2var_ps(middle, index_, last);
    carry_ = last;
  }

 private:
  const float* line_;  // x rounded down to a 64-byte boundary
  __m512i index_;      // lane m takes element m + shift of two consecutive lines
  __m512 carry_;
};

bool float_aligned(const float* x) { return (reinterpret_cast<uintptr_t>(x) & 3) == 0; }
bool line_aligned(const float* x) { return (reinterpret_cast<uintptr_t>(x) & 63) == 0; }

}  // namespace

float row_dot(const float* a, const float* b, int64_t n) {
  // Two accumulators: acc0 takes elements [32i, 32i + 16) and the tail, acc1
  // [32i + 16, 32i + 32), whichever loads fetch them.
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  // Rebuilding costs two shuffles per vector: worth it only for a row that
  // does not start on a line (rows of 50000 floats all do).
  const bool realign = n >= 48 && float_aligned(a) && (!b || float_aligned(b)) &&
                       !(line_aligned(a) && (!b || line_aligned(b)));
  if (realign) {
    AlignedRow row_a(a);
    if (b) {
      AlignedRow row_b(b);
      for (; j + 48 <= n; j += 32) {
        __m512 a0, a1, b0, b1;
        row_a.next(j, a0, a1);
        row_b.next(j, b0, b1);
        acc0 = _mm512_fmadd_ps(a0, b0, acc0);
        acc1 = _mm512_fmadd_ps(a1, b1, acc1);
      }
    } else {
      for (; j + 48 <= n; j += 32) {
        __m512 a0, a1;
        row_a.next(j, a0, a1);
        acc0 = _mm512_add_ps(acc0, a0);
        acc1 = _mm512_add_ps(acc1, a1);
      }
    }
  }
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
  auto value = [&](__m512 xj, __m512 bj) {
    return _mm512_fmadd_ps(fast_exp16(_mm512_sub_ps(xj, vshift)), vcoef,
                           _mm512_mul_ps(vb_coef, bj));
  };
  const __m512 ones = _mm512_set1_ps(1.0f);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {  // plain loads and stores: only the tail is masked
    __m512 v = value(_mm512_loadu_ps(x + j), b ? _mm512_loadu_ps(b + j) : ones);
    if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(dst + j), v);
    _mm512_storeu_ps(dst + j, v);
  }
  if (j < n) {
    const __mmask16 mask = tail(n - j);
    __m512 v =
        value(_mm512_maskz_loadu_ps(mask, x + j), b ? _mm512_maskz_loadu_ps(mask, b + j) : ones);
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst + j), v);
    _mm512_mask_storeu_ps(dst + j, mask, v);
  }
}

void row_affine_min(float* y, const float* x, int64_t n, float shift, float mul, float sub,
                    float upper) {
  const __m512 vshift = _mm512_set1_ps(shift), vmul = _mm512_set1_ps(mul),
               vsub = _mm512_set1_ps(sub), vupper = _mm512_set1_ps(upper);
  auto value = [&](__m512 xj) {
    return _mm512_min_ps(_mm512_fmsub_ps(_mm512_sub_ps(xj, vshift), vmul, vsub), vupper);
  };
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(y + j, value(_mm512_loadu_ps(x + j)));
  if (j < n) {
    const __mmask16 mask = tail(n - j);
    _mm512_mask_storeu_ps(y + j, mask, value(_mm512_maskz_loadu_ps(mask, x + j)));
  }
}

void row_mul_diff(float* dst, const float* a, const float* b, int64_t n, float c, float scale,
                  bool accumulate, Store store) {
  const __m512 vc = _mm512_set1_ps(c), vscale = _mm512_set1_ps(scale);
  auto value = [&](__m512 aj, __m512 bj) {
    return _mm512_mul_ps(_mm512_mul_ps(aj, _mm512_sub_ps(bj, vc)), vscale);
  };
  if (!accumulate && store == Store::kStreaming) {
    stream_row(dst, n, [&](int64_t j, __mmask16 mask) {
      return value(_mm512_maskz_loadu_ps(mask, a + j), _mm512_maskz_loadu_ps(mask, b + j));
    });
    return;
  }
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 v = value(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j));
    if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(dst + j), v);
    _mm512_storeu_ps(dst + j, v);
  }
  if (j < n) {
    const __mmask16 mask = tail(n - j);
    __m512 v = value(_mm512_maskz_loadu_ps(mask, a + j), _mm512_maskz_loadu_ps(mask, b + j));
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst + j), v);
    _mm512_mask_storeu_ps(dst + j, mask, v);
  }
}

}  // namespace bridle::avx512
