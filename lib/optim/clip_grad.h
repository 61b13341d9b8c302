// Gradient clipping, PyTorch's torch.nn.utils.clip_grad_norm_ / clip_grad_value_:
// call between backward() and the optimizer's step(). Both change the
// parameters' .grad in place and skip parameters without one.
//
//   loss.backward();
//   double norm = clip_grad_norm(model.parameters(), 1.0);  // the norm before clipping
//   sgd.step();
//
// clip_grad_norm: total = the norm_type-norm of all gradients together, as one
// vector (norm_type inf: max |g|); when max_norm / (total + 1e-6) < 1, every
// gradient is multiplied by that coefficient. The norm is summed in double over
// fixed blocks, so it does not depend on the thread count. A non-finite total
// (an inf or NaN gradient) throws with error_if_nonfinite; otherwise, as in
// PyTorch, the scaling makes the gradients NaN (or zero, for an inf total).
// Gradients must be float32, on the CPU or a GPU (clip_grad.cu).
// Tests: tests/optim/test_clip_grad.cpp against tests/fixtures/clip_grad.json
// (scripts/make_clip_grad_fixtures.py).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace bridle {

// Returns the total norm of the gradients before clipping (0 when none has one).
// norm_type: any p > 0, or std::numeric_limits<double>::infinity().
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

// Clamps every gradient element to [-clip_value, clip_value] (NaN stays NaN).
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

namespace cpu {
constexpr int64_t kNormBlock = 4096;
// One partial per block of kNormBlock elements of g (partials holds
// ceil(n / kNormBlock)): for p = inf the block's max |g| (NaN if it holds a NaN),
// otherwise the sum of (|g| * inv_scale)^p in double.
void grad_norm_partials(const float* g, int64_t n, double p, double inv_scale, double* partials);
void scale_(float* x, int64_t n, float factor);
void clamp_(float* x, int64_t n, float lo, float hi);
}  // namespace cpu

}  // namespace bridle
