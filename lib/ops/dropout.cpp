// Dropout: the op, its backward and CPU kernels; see dropout.h. On a GPU it is
// the elementwise multiply by a mask drawn here (dropout_cuda).
//
// Backward: y = x * mask with mask fixed by the forward's draws, so
//   dx += dy * mask.
#include "ops/dropout.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/elementwise.h"
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

namespace {

// The mask, on the host, for either device: 0 or 1 / (1 - p) per element.
Tensor draw_mask(const Shape& shape, float p, Generator& gen) {
  Tensor mask = Tensor::empty(shape);
  if (p == 1.0f)
    mask.fill_(0.0);  // everything dropped; no draws, and no 1 / 0 scale
  else
    cpu::dropout_mask(mask.data<float>(), mask.numel(), p, gen);
  return mask;
}

// Dropout on a GPU. The mask is drawn on the host, from the same generator in
// the same order as the CPU op's, and then copied over: a seed gives the same
// mask on either device, so a run on the GPU drops the same units as on the
// CPU, and a checkpoint's generator state means the same thing on both. Then
// y = x * mask is the elementwise multiply, whose CUDA kernel and backward
// (dx += dy * mask; the mask is a constant) exist already. The mask travels as
// float, the CPU op's own: multiplying by the very same floats makes y and dx
// bit-identical to the CPU op's. The price is 4 bytes per element over the bus
// each step (2.4 MB for mnist_cnn's first dropout at batch 64); a byte mask or
// a generator on the device would cut it if it ever shows up in a profile.
Tensor dropout_cuda(const Tensor& x, const Tensor& host_mask) {
  return x * host_mask.to(x.device());
}

}  // namespace

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  check_float("dropout", x);
  check_device("dropout", {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(p >= 0.0f && p <= 1.0f, "dropout: probability p must be in [0, 1], got {}", p);
  if (!training || p == 0.0f) return x;
  Tensor mask = draw_mask(x.shape(), p, gen);
  if (x.device().is_cuda()) return dropout_cuda(x, mask);
  Tensor y = Tensor::empty(x.shape());
  cpu::dropout_forward(y.data<float>(), x.data<float>(), mask.data<float>(), x.numel());
  return record(y, "dropout", {x}, [x, mask](const Tensor& dy, const Tensor&) {
    cpu::dropout_backward(grad_buffer(x).data<float>(), dy.data<float>(), mask.data<float>(),
                          x.numel());
  });
}

Tensor dropout(const Tensor& x, float p, bool training) {
  return dropout(x, p, training, default_generator());
}

}  // namespace bridle
