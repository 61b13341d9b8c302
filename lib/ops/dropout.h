// Dropout: zeroes each element with probability p while training and scales the
// survivors by 1 / (1 - p) ("inverted" dropout), so the expected value of every
// element is unchanged and evaluation needs no rescaling.
//
// Shapes: any x -> y of the same shape.
//   y = x * mask,  mask_i = 1 / (1 - p) with probability 1 - p, else 0
//   dx += dy * mask                                    (the saved mask)
// The mask is drawn from the given Generator, one uniform draw per element in
// order, so a seed fixes it on any thread count, and on either device: for a CUDA
// tensor the mask is drawn the same way on the host and copied over (dropout.cu).
// Not training, or p = 0, returns x itself; p = 1 returns zeros (with zero
// gradient); p outside [0, 1] is an error.
#pragma once

#include "core/factory.h"
#include "core/tensor.h"

namespace bridle {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen);
// With the global generator (manual_seed()).
Tensor dropout(const Tensor& x, float p = 0.5f, bool training = true);

namespace cpu {

// mask[i] = scale with probability 1 - p, else 0; scale = 1 / (1 - p). p < 1.
void dropout_mask(float* mask, int64_t n, float p, Generator& gen);
// y = x * mask and its backward dx += dy * mask.
void dropout_forward(float* y, const float* x, const float* mask, int64_t n);
void dropout_backward(float* dx, const float* dy, const float* mask, int64_t n);

}  // namespace cpu
}  // namespace bridle
