// Branch-free float math that the compiler vectorizes (AVX2/AVX-512), for the
// hot loops of the softmax family. std::exp is exact to 1 ulp but does not
// vectorize without -ffast-math (which would also break inf handling).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace bridle {

// e^x with a relative error below 2e-7 on [-87.3, 88.3]; exact 0 below (including
// -inf) and +inf above 88.73. The softmax family only calls it on x - max <= 0.
// NaN is not propagated: callers check their inputs. Cephes-style: split
// x = n ln2 + r with |r| <= ln2/2, approximate e^r by a degree-6 polynomial,
// then scale by 2^n through the exponent bits.
inline float fast_exp(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  // Ternaries, not fmin/fmax: they vectorize to min/max instructions.
  float clamped = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
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
  return x > 88.73f ? INFINITY : result;
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

}  // namespace bridle
