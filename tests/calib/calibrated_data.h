// Synthetic held-out data for the calibration tests: logits and labels drawn
// from softmax(logits), so the logits are calibrated as they are (T = 1) and any
// known distortion of them (x 3, per-class scales) is a known miscalibration.
#pragma once

#include <utility>

#include "../test_util.h"

namespace bridle::testing {

// Logits z [N, C] (standard normal x 2) and labels [N] int64 drawn from softmax(z).
inline std::pair<Tensor, Tensor> calibrated_data(int64_t N, int64_t C, uint64_t seed) {
  Generator gen(seed);
  Tensor logits = randn({N, C}, gen) * 2.0f;
  Tensor p = softmax(logits, 1);
  Tensor labels = Tensor::empty({N}, kInt64);
  for (int64_t i = 0; i < N; ++i) {
    const double u = static_cast<double>(gen.next_u64() >> 11) * 0x1.0p-53;
    double cumulative = 0.0;
    int64_t label = C - 1;
    for (int64_t j = 0; j < C; ++j) {
      cumulative += p.at({i, j});
      if (u < cumulative) {
        label = j;
        break;
      }
    }
    labels.data<int64_t>()[i] = label;
  }
  return {logits, labels};
}

}  // namespace bridle::testing
