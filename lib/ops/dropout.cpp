// Dropout: the op, its backward and CPU kernels; see dropout.h.
//
// Backward: y = x * mask with mask fixed by the forward's draws, so
//   dx += dy * mask.
#include "ops/dropout.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

// Serial on purpose: the draws come from one generator in element order, which
// is what makes a seed reproduce the same mask with any number of threads.
void dropout_mask(float* mask, int64_t n, float p, Generator& gen) {
  const float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) mask[i] = gen.uniform(0.0f, 1.0f) < p ? 0.0f : scale;
}

void dropout_forward(float* y, const float* x, const float* mask, int64_t n) {
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * mask[i];
}

void dropout_backward(float* dx, const float* dy, const float* mask, int64_t n) {
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * mask[i];
}

}  // namespace cpu

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  check_float("dropout", x);
  check_device("dropout", {x});
  BRIDLE_CHECK(p >= 0.0f && p <= 1.0f, "dropout: probability p must be in [0, 1], got {}", p);
  if (!training || p == 0.0f) return x;
  const int64_t n = x.numel();
  Tensor mask = Tensor::empty(x.shape());
  if (p == 1.0f)
    mask.fill_(0.0);  // everything dropped; no draws, and no 1 / 0 scale
  else
    cpu::dropout_mask(mask.data<float>(), n, p, gen);
  Tensor y = Tensor::empty(x.shape());
  cpu::dropout_forward(y.data<float>(), x.data<float>(), mask.data<float>(), n);
  return record(y, "dropout", {x}, [x, mask](const Tensor& dy, const Tensor&) {
    cpu::dropout_backward(grad_buffer(x).data<float>(), dy.data<float>(), mask.data<float>(),
                          x.numel());
  });
}

Tensor dropout(const Tensor& x, float p, bool training) {
  return dropout(x, p, training, default_generator());
}

}  // namespace bridle
