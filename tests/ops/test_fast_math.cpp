// fast_math.h: fast_exp against std::exp, and the row kernels (max with NaN
// detection, sum of exps, dot, exp-axpy) against plain double loops on every
// SIMD path and every tail length, so the AVX-512 and AVX2 code are both held to
// the same reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "../test_util.h"
#include "ops/fast_math.h"

namespace bridle {
namespace {

using testing::for_each_simd_path;

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(FastMath, ExpRelativeErrorAndRange) {
  double worst = 0.0;
  for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
    const double exact = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(fast_exp(x) - exact) / exact);
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_EQ(fast_exp(-kInf), 0.0f);
  EXPECT_EQ(fast_exp(-100.0f), 0.0f);
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  EXPECT_EQ(fast_exp(89.0f), kInf);
  EXPECT_EQ(fast_exp(kInf), kInf);
  EXPECT_TRUE(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
}

// Values in [-20, 0] with a -inf and a large negative here and there.
std::vector<float> row_values(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> x(n);
  for (int64_t j = 0; j < n; ++j) x[j] = gen.uniform(-20.0f, 0.0f);
  if (n > 3) x[3] = -kInf;
  if (n > 5) x[n - 2] = -150.0f;
  return x;
}

// The vector exps through row_exp_sum (scale 1, so the AVX-512 loops without the
// multiply) at the ends of the range and where the AVX-512 exp's table method
// changes regime. Ends: -87.3 is in range, the float below it and -inf give an
// exact 0, and past e^88.72 the result is +inf. Inside: x = (n/32) ln2, where
// r = 0 and the table entry 2^(j/32) alone gives the result, for every n in range
// (every j = 0..31 with every 2^k); the midpoints (n + 1/2)/32 ln2, where n
// rounds the other way and |r| is largest; and the float either side of each, all
// within 2e-7 + 3e-9 |x| of e^x (up to 88.3, where the AVX2 exp clamps; the second
// term is the AVX-512 exp's one-FMA reduction, as if x moved by 3e-9 |x|). Every
// prefix length up to 40 runs the masked tails.
TEST(FastMath, RowExpAtTableBoundariesAndRangeEnds) {
  // The range ends first, so the short prefixes put them in the masked tails.
  std::vector<float> x = {std::nextafter(-87.3f, -kInf), -100.0f, -kInf, 88.75f, 89.0f, 1000.0f};
  const std::vector<float> want = {0.0f, 0.0f, 0.0f, kInf, kInf, kInf};
  x.push_back(-87.3f);
  for (int n = -4030; n <= 4076; ++n) {
    for (double m : {n / 32.0, (n + 0.5) / 32.0}) {
      const float v = static_cast<float>(m * 0.693147180559945309);
      for (float w : {std::nextafter(v, -kInf), v, std::nextafter(v, kInf)})
        if (w >= -87.3f && w <= 88.3f) x.push_back(w);
    }
  }
  const int64_t size = static_cast<int64_t>(x.size());
  ASSERT_GT(size, 40000);
  for_each_simd_path([&] {
    for (int64_t len = 0;; len = len < 40 ? len + 1 : len * 2) {
      const int64_t n = std::min(len, size);
      SCOPED_TRACE(::testing::Message() << "n=" << n);
      std::vector<float> e(n + 1, -1.0f);
      row_exp_sum(x.data(), n, 0.0f, 1.0f, e.data());
      double worst = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        if (j < static_cast<int64_t>(want.size())) {
          EXPECT_EQ(e[j], want[j]) << "x = " << x[j];
        } else {
          const double exact = std::exp(static_cast<double>(x[j]));
          const double bound = 2e-7 + 3e-9 * std::abs(x[j]);
          worst = std::max(worst, std::abs(e[j] - exact) / exact / bound);
        }
      }
      EXPECT_LT(worst, 1.0);   // in units of the bound
      EXPECT_EQ(e[n], -1.0f);  // nothing stored past the end
      if (n == size) break;
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> with_nan = {0.0f, nan, -1.0f}, e(3);
    row_exp_sum(with_nan.data(), 3, 0.0f, 1.0f, e.data());
    EXPECT_TRUE(std::isnan(e[1]));
    EXPECT_EQ(e[0], 1.0f);
  });
}

// What the online softmax builds on instead of a max pass (see row_exp_sum): an
// argument of 61 or more gives an exp above e^60 or not finite (+inf, NaN, and
// on AVX-512 past 4.6e7 also -inf), on every path.
// Every float from 61 up to +inf, in strides (the whole range, 9.7e8 floats, was
// checked once; a stride keeps the test short), then each one's neighbours.
TEST(FastMath, RowExpAboveSixtyOneIsLargeOrNotFinite) {
  const float e60 = static_cast<float>(std::exp(60.0));
  uint32_t first = 0, last = 0;
  const float sixty_one = 61.0f, inf = kInf;
  std::memcpy(&first, &sixty_one, sizeof(first));
  std::memcpy(&last, &inf, sizeof(last));
  std::vector<float> x;
  for (uint64_t bits = first; bits <= last; bits += 997) {
    for (uint64_t near = bits; near < bits + 3 && near <= last; ++near) {
      const auto word = static_cast<uint32_t>(near);
      float v = 0.0f;
      std::memcpy(&v, &word, sizeof(v));
      x.push_back(v);
    }
  }
  x.push_back(inf);
  const int64_t n = static_cast<int64_t>(x.size());
  for_each_simd_path([&] {
    std::vector<float> e(n);
    row_exp_sum(x.data(), n, 0.0f, 1.0f, e.data());
    int64_t failures = 0;
    for (int64_t j = 0; j < n; ++j)
      if (std::isfinite(e[j]) && !(e[j] >= e60) && failures++ < 5)
        ADD_FAILURE() << "exp(" << x[j] << ") came out " << e[j];
    // With a shift and a scale, through the sum: one such element among small ones.
    for (int64_t len : {1, 15, 16, 17, 33, 1000}) {
      for (float big : {61.0f, 88.0f, 89.0f, 1e5f, 4.7e7f, 3e38f, kInf}) {
        std::vector<float> row(len, -2.0f);
        row[len / 2] = big * 0.5f - 3.0f;
        const float sum = row_exp_sum(row.data(), len, -3.0f, 2.0f, nullptr);
        EXPECT_FALSE(std::isfinite(sum) && sum <= e60)
            << "len " << len << ", argument " << big << ": sum " << sum;
      }
    }
  });
}

// The AVX-512 exp loop takes the elements before a 64-byte boundary as a masked
// vector of their own: every start offset in a line, every length up to past two
// full vectors, each exp and the sum against double, nothing stored outside.
TEST(FastMath, RowExpSumAtEveryAlignment) {
  alignas(64) static float buffer[128];
  alignas(64) static float out[128];
  for (int i = 0; i < 128; ++i) buffer[i] = -0.13f * static_cast<float>(i % 37);
  for_each_simd_path([] {
    for (int64_t offset = 0; offset < 16; ++offset) {
      for (int64_t n = 0; n <= 70; ++n) {
        std::fill(std::begin(out), std::end(out), -1.0f);
        const float sum = row_exp_sum(buffer + offset, n, 0.5f, 1.0f, out + offset);
        double want = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          const double exact = std::exp(static_cast<double>(buffer[offset + j]) - 0.5);
          want += exact;
          ASSERT_NEAR(out[offset + j], exact, 3e-7 * exact) << "offset " << offset << ", n " << n;
        }
        EXPECT_NEAR(sum, want, 1e-6 * (1.0 + want)) << "offset " << offset << ", n " << n;
        for (int64_t j = 0; j < 128; ++j) {
          const bool outside = j < offset || j >= offset + n;
          ASSERT_TRUE(!outside || out[j] == -1.0f) << "wrote element " << j;
        }
      }
    }
  });
}

// The dot and write kernels (plain vectors, then a masked tail): at every start
// within a cache line and every short length, they must read, write and add
// exactly the row, in both write modes, and touch nothing around it.
TEST(FastMath, RowWriteKernelsAtEveryAlignment) {
  alignas(64) static float a[128], b[128], out[128];
  for (int i = 0; i < 128; ++i) {
    a[i] = 0.3f - 0.07f * static_cast<float>(i % 23);
    b[i] = 0.01f * static_cast<float>(i % 41) - 0.2f;
  }
  for_each_simd_path([] {
    for (int64_t offset = 0; offset < 16; ++offset) {
      for (int64_t n = 0; n <= 70; ++n) {
        const std::string where = fmt::format("offset {}, n {}", offset, n);
        double dot = 0.0;
        for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(a[offset + j]) * b[offset + j];
        EXPECT_NEAR(row_dot(a + offset, b + offset, n), dot, 1e-5 * (1.0 + std::abs(dot))) << where;
        for (bool accumulate : {false, true}) {
          for (Store store : {Store::kCached, Store::kStreaming}) {
            // Each kernel with its reference for element j.
            const std::vector<std::pair<std::function<void()>, std::function<double(int64_t)>>>
                kernels = {
                    {[&] {
                       row_mul_diff(out + offset, a + offset, b + offset, n, 0.1f, 2.0f, accumulate,
                                    store);
                     },
                     [](int64_t j) { return static_cast<double>(a[j]) * (b[j] - 0.1) * 2.0; }},
                    {[&] {
                       row_exp_axpy(out + offset, a + offset, n, 0.2f, 0.5f, b + offset, -1.5f,
                                    accumulate);
                     },
                     [](int64_t j) { return 0.5 * std::exp(a[j] - 0.2) - 1.5 * b[j]; }},
                    {[&] {  // no b: b_j = 1
                       row_exp_axpy(out + offset, a + offset, n, 0.2f, 0.5f, nullptr, -1.5f,
                                    accumulate);
                     },
                     [](int64_t j) { return 0.5 * std::exp(a[j] - 0.2) - 1.5; }}};
            for (const auto& [kernel, want] : kernels) {
              std::fill(std::begin(out), std::end(out), 4.0f);
              kernel();
              store_fence();
              for (int64_t j = 0; j < 128; ++j) {
                const bool inside = j >= offset && j < offset + n;
                const double expected = inside ? (accumulate ? 4.0 : 0.0) + want(j) : 4.0;
                ASSERT_NEAR(out[j], expected, 1e-6 * (1.0 + std::abs(expected)))
                    << where << ", accumulate " << accumulate << ", streaming "
                    << (store == Store::kStreaming) << ", element " << j;
              }
            }
          }
        }
        std::fill(std::begin(out), std::end(out), 4.0f);
        row_affine_min(out + offset, a + offset, n, 0.1f, 3.0f, 0.2f, 0.0f);
        for (int64_t j = 0; j < 128; ++j) {
          const bool inside = j >= offset && j < offset + n;
          const double expected = inside ? std::min((a[j] - 0.1) * 3.0 - 0.2, 0.0) : 4.0;
          ASSERT_NEAR(out[j], expected, 1e-6 * (1.0 + std::abs(expected)))
              << where << ", element " << j;
        }
      }
    }
  });
}

TEST(FastMath, RowExpSumIsNanWithANanAtAnyPosition) {
  for_each_simd_path([] {
    for (int64_t len : {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 70, 1000}) {
      for (int64_t at = 0; at<len; at += len> 40 ? 37 : 1) {
        std::vector<float> x = row_values(len, 5 + len);
        for (float& v : x) v = std::isinf(v) ? -1.0f : v;
        x[at] = std::numeric_limits<float>::quiet_NaN();
        EXPECT_TRUE(std::isnan(row_exp_sum(x.data(), len, 1.0f, 0.5f, nullptr)))
            << "NaN at " << at << " of " << len;
      }
    }
  });
}

TEST(FastMath, TanhRelativeErrorAndSpecialValues) {
  double worst = 0;
  for (double x = -20.0; x <= 20.0; x += 1.0 / 4096) {
    for (double v : {x, x * 1e-6}) {  // and tiny arguments, where tanh(x) ~ x
      const float xf = static_cast<float>(v);
      const double exact = std::tanh(static_cast<double>(xf));
      const double error = std::fabs(fast_tanh(xf) - exact);
      if (exact != 0) worst = std::max(worst, error / std::fabs(exact));
    }
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(fast_tanh(0.0f), 0.0f);
  EXPECT_EQ(fast_tanh(INFINITY), 1.0f);
  EXPECT_EQ(fast_tanh(-INFINITY), -1.0f);
  EXPECT_EQ(fast_tanh(100.0f), 1.0f);
  EXPECT_TRUE(std::isnan(fast_tanh(NAN)));
}

TEST(FastMath, RowKernelsMatchDoubleLoopsOnEveryPath) {
  for_each_simd_path([] {
    for (int64_t n = 0; n <= 70; ++n) {
      for (int64_t big : {int64_t{0}, int64_t{1000}}) {
        const int64_t len = n + big;
        SCOPED_TRACE(::testing::Message() << "n=" << len);
        std::vector<float> x = row_values(len, 10 + len), b = row_values(len, 99 + len);
        for (float& v : b) v = std::isinf(v) ? 0.5f : v * 0.1f;
        double max = -kInf, exp_sum = 0.0, sum_b = 0.0, dot = 0.0;
        for (int64_t j = 0; j < len; ++j) {
          max = std::max<double>(max, x[j]);
          exp_sum += std::exp((static_cast<double>(x[j]) + 3.0) * 0.5);
          sum_b += b[j];
          dot += static_cast<double>(b[j]) * (std::isinf(x[j]) ? 0.0 : x[j]);
        }
        bool has_nan = true;
        EXPECT_EQ(row_max(x.data(), len, has_nan), static_cast<float>(max));
        EXPECT_FALSE(has_nan);
        std::vector<float> e(len, -1.0f);
        EXPECT_NEAR(row_exp_sum(x.data(), len, -3.0f, 0.5f, e.data()), exp_sum, 1e-5 * exp_sum);
        for (int64_t j = 0; j < len; ++j) {
          const double arg = (static_cast<double>(x[j]) + 3.0) * 0.5;
          const double exact = std::exp(arg);  // 0 for -inf
          EXPECT_NEAR(e[j], exact, exact == 0.0 ? 0.0 : (2e-7 + 3e-9 * std::abs(arg)) * exact)
              << "element " << j;
        }
        EXPECT_NEAR(row_dot(b.data(), nullptr, len), sum_b, 1e-5 * (1.0 + std::abs(sum_b)));
        std::vector<float> finite_x = x;
        for (float& v : finite_x) v = std::isinf(v) ? 0.0f : v;
        EXPECT_NEAR(row_dot(b.data(), finite_x.data(), len), dot, 1e-4 * (1.0 + std::abs(dot)));
        // dst (+)= coef e^(x - shift) + b_coef b, with and without b, both write modes.
        for (bool accumulate : {false, true}) {
          for (bool with_b : {false, true}) {
            std::vector<float> dst(len + 1, 2.0f);  // one past the end must stay untouched
            row_exp_axpy(dst.data(), x.data(), len, -1.0f, 0.25f, with_b ? b.data() : nullptr,
                         -3.0f, accumulate);
            for (int64_t j = 0; j < len; ++j) {
              const double want = (accumulate ? 2.0 : 0.0) +
                                  0.25 * std::exp(static_cast<double>(x[j]) + 1.0) -
                                  3.0 * (with_b ? b[j] : 1.0);
              EXPECT_NEAR(dst[j], want, 1e-6 * (1.0 + std::abs(want))) << "element " << j;
            }
            EXPECT_EQ(dst[len], 2.0f);
          }
          // dst (+)= a (b - c) scale: softmax's backward write.
          std::vector<float> dst(len + 1, 2.0f);
          row_mul_diff(dst.data(), finite_x.data(), b.data(), len, 0.75f, 0.5f, accumulate);
          for (int64_t j = 0; j < len; ++j) {
            const double want =
                (accumulate ? 2.0 : 0.0) + static_cast<double>(finite_x[j]) * (b[j] - 0.75) * 0.5;
            EXPECT_NEAR(dst[j], want, 1e-6 * (1.0 + std::abs(want))) << "element " << j;
          }
          EXPECT_EQ(dst[len], 2.0f);
        }
        // y = min((x - shift) mul - sub, upper): the softmax forward's write pass.
        std::vector<float> y(len + 1, 2.0f);
        row_affine_min(y.data(), finite_x.data(), len, 0.5f, 2.0f, 1.0f, 3.0f);
        for (int64_t j = 0; j < len; ++j) {
          const double want = std::min((static_cast<double>(finite_x[j]) - 0.5) * 2.0 - 1.0, 3.0);
          EXPECT_NEAR(y[j], want, 1e-6 * (1.0 + std::abs(want))) << "element " << j;
        }
        EXPECT_EQ(y[len], 2.0f);
      }
    }
  });
}

TEST(FastMath, RowMaxFindsNanAtEveryPosition) {
  for_each_simd_path([] {
    for (int64_t n : {1, 15, 16, 17, 31, 32, 33, 100}) {
      for (int64_t at = 0; at < n; ++at) {
        std::vector<float> x(n, 1.0f);
        x[at] = std::numeric_limits<float>::quiet_NaN();
        bool has_nan = false;
        row_max(x.data(), n, has_nan);
        EXPECT_TRUE(has_nan) << "n=" << n << " NaN at " << at;
      }
      std::vector<float> all_neg_inf(n, -kInf);
      bool has_nan = true;
      EXPECT_EQ(row_max(all_neg_inf.data(), n, has_nan), -kInf);
      EXPECT_FALSE(has_nan);
    }
  });
}

TEST(FastMath, SimdPathSelection) {
  const SimdPath best = best_simd_path();
  EXPECT_STREQ(simd_path_name(SimdPath::kAvx512), "avx512");
  if (best != SimdPath::kAvx512)
    testing::expect_error([] { set_simd_path(SimdPath::kAvx512); }, {"avx512", "not available"});
  if (best != SimdPath::kPortable)
    testing::expect_error([] { set_simd_path(SimdPath::kPortable); }, {"portable"});
  const SimdPath selected = simd_path();
  set_simd_path(best);
  EXPECT_EQ(simd_path(), best);
  set_simd_path(selected);
}

}  // namespace
}  // namespace bridle
