// The pieces the losses share (cross_entropy, nll_loss, focal_loss, the
// Fenchel-Young losses, binary_cross_entropy_with_logits): checking class
// targets, and reducing per-row losses and their gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/cross_entropy.h"

namespace bridle {

// Throws, naming the row, unless every target is in [0, C) or equals
// ignore_index. Returns kMean's denominator: the sum of w_y over the rows not
// ignored (their count when weight is null).
template <typename Target>
double check_class_targets(const char* op, const Target* targets, int64_t B, int64_t C,
                           int64_t ignore_index, const float* weight = nullptr);

// kMean's scale, 1 / denominator (0 when nothing counts: an all-ignored batch
// gives a loss of 0, not NaN); 1 for the other reductions.
float mean_scale(Reduction reduction, double denominator);

// The loss from its per-row (or per-element) values: those (kNone), or their sum
// times scale as a scalar.
Tensor reduce_loss(const Tensor& per_row, Reduction reduction, float scale);

// Each row's upstream gradient: dout's elements (kNone), or dout * scale for each
// of the n rows.
std::vector<float> row_gradients(const Tensor& dout, Reduction reduction, float scale, int64_t n);

}  // namespace bridle
