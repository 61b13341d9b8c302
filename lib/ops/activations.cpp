// GELU and leaky ReLU: ops, backward and CPU kernels; see activations.h.
//
// Derivatives (dx += dy * f'(x)):
//   exact gelu:  f'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//   tanh gelu:   with u = k (x + c x^3), t = tanh u, k = sqrt(2 / pi), c = 0.044715,
//                f'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
//   leaky_relu:  f'(x) = 1 if x > 0 else a   (a at the kink, as PyTorch)
//
// The CUDA kernels (activations.cu) compute the same in float.
#include "ops/activations.h"

#include <cmath>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/op_utils.h"

namespace bridle {

// Below this many elements a loop is not worth waking the thread pool for.
constexpr int64_t kActivationGrain = 1 << 16;

namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;     // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.39894228040143268f;   // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;

float gelu_exact(float x) { return 0.5f * x * (1.0f + std::erf(x * kSqrtHalf)); }
float gelu_exact_grad(float x) {
  float cdf = 0.5f * (1.0f + std::erf(x * kSqrtHalf));
  float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
  return cdf + x * pdf;
}

float gelu_tanh(float x) {
  float t = std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x));
  return 0.5f * x * (1.0f + t);
}
float gelu_tanh_grad(float x) {
  float t = std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x));
  return 0.5f * (1.0f + t) +
         0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
}

}  // namespace

namespace cpu {

void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form) {
#pragma omp parallel for if (n > kActivationGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = tanh_form ? gelu_tanh(x[i]) : gelu_exact(x[i]);
}

void gelu_backward(float* dx, const float* x, const float* dy, int64_t n, bool tanh_form) {
#pragma omp parallel for if (n > kActivationGrain)
  for (int64_t i = 0; i < n; ++i)
    dx[i] += dy[i] * (tanh_form ? gelu_tanh_grad(x[i]) : gelu_exact_grad(x[i]));
}

void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope) {
#pragma omp parallel for if (n > kActivationGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : x[i] * negative_slope;
}

void leaky_relu_backward(float* dx, const float* x, const float* dy, int64_t n,
                         float negative_slope) {
#pragma omp parallel for if (n > kActivationGrain)
  for (int64_t i = 0; i < n; ++i) dx[i] += x[i] > 0.0f ? dy[i] : dy[i] * negative_slope;
}

}  // namespace cpu

namespace {

// The GPU paths. Under #ifdef, not `if constexpr`: GCC at -O0 still emits
// lambdas inside discarded branches, and a CPU-only build has no activations.cu.
#ifdef BRIDLE_WITH_CUDA
Tensor gelu_cuda(const Tensor& x, bool tanh_form) {
  cuda::DeviceGuard guard(x.device());
  Tensor y = Tensor::empty(x.shape(), x.device());
  cuda::gelu_forward(y.data<float>(), x.data<float>(), x.numel(), tanh_form);
  return record(y, "gelu", {x}, [x, tanh_form](const Tensor& dy, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::gelu_backward(dx, x.data<float>(), dy.data<float>(), x.numel(), tanh_form, accumulate);
    });
  });
}

Tensor leaky_relu_cuda(const Tensor& x, float negative_slope) {
  cuda::DeviceGuard guard(x.device());
  Tensor y = Tensor::empty(x.shape(), x.device());
  cuda::leaky_relu_forward(y.data<float>(), x.data<float>(), x.numel(), negative_slope);
  return record(y, "leaky_relu", {x}, [x, negative_slope](const Tensor& dy, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::leaky_relu_backward(dx, x.data<float>(), dy.data<float>(), x.numel(), negative_slope,
                                accumulate);
    });
  });
}
#else
Tensor gelu_cuda(const Tensor&, bool) { BRIDLE_FAIL("gelu: this build has no CUDA backend"); }
Tensor leaky_relu_cuda(const Tensor&, float) {
  BRIDLE_FAIL("leaky_relu: this build has no CUDA backend");
}
#endif

}  // namespace

Tensor gelu(const Tensor& x, std::string_view approximate) {
  check_float("gelu", x);
  check_device("gelu", {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(approximate == "none" || approximate == "tanh",
               "gelu: approximate must be \"none\" or \"tanh\", got \"{}\"", approximate);
  const bool tanh_form = approximate == "tanh";
  if (x.device().is_cuda()) return gelu_cuda(x, tanh_form);
  Tensor y = Tensor::empty(x.shape());
  cpu::gelu_forward(y.data<float>(), x.data<float>(), x.numel(), tanh_form);
  return record(y, "gelu", {x}, [x, tanh_form](const Tensor& dy, const Tensor&) {
    cpu::gelu_backward(grad_buffer(x).data<float>(), x.data<float>(), dy.data<float>(), x.numel(),
                       tanh_form);
  });
}

Tensor leaky_relu(const Tensor& x, float negative_slope) {
  check_float("leaky_relu", x);
  check_device("leaky_relu", {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(std::isfinite(negative_slope), "leaky_relu: negative_slope must be finite, got {}",
               negative_slope);
  if (x.device().is_cuda()) return leaky_relu_cuda(x, negative_slope);
  Tensor y = Tensor::empty(x.shape());
  cpu::leaky_relu_forward(y.data<float>(), x.data<float>(), x.numel(), negative_slope);
  return record(y, "leaky_relu", {x}, [x, negative_slope](const Tensor& dy, const Tensor&) {
    cpu::leaky_relu_backward(grad_buffer(x).data<float>(), x.data<float>(), dy.data<float>(),
                             x.numel(), negative_slope);
  });
}

}  // namespace bridle
