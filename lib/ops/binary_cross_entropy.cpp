// Binary cross-entropy from logits (fused kernel, CPU here and CUDA in
// binary_cross_entropy.cu) and the sigmoid focal loss (composed from ops); see
// binary_cross_entropy.h for the formulas.
//
// Derivation of the stable form, with s = sigmoid(x), log s = -softplus(-x) and
// log(1 - s) = -x - softplus(-x), where softplus(-x) = log1p(exp(-|x|)) + max(-x, 0):
//   -[pw y log s + (1 - y) log(1 - s)] = pw y sp + (1 - y)(x + sp)
//                                      = (1 - y) x + (1 + (pw - 1) y) sp
// and d sp / dx = s - 1, so d/dx = (1 - y) + L (s - 1) = L s - pw y.
#include "ops/binary_cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/fast_math.h"
#include "ops/loss_utils.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"

namespace bridle {
namespace cpu {

namespace {
constexpr int64_t kParallelGrain = 1 << 15;

}  // namespace

void bce_with_logits_forward(float* loss, const float* x, const float* y, const float* weight,
                             const float* pos_weight, int64_t n) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const float L = pos_weight ? 1.0f + (pos_weight[i] - 1.0f) * y[i] : 1.0f;
    const float softplus = std::log1p(std::exp(-std::abs(x[i]))) + std::max(-x[i], 0.0f);
    loss[i] = (weight ? weight[i] : 1.0f) * ((1.0f - y[i]) * x[i] + L * softplus);
  }
}

void bce_with_logits_forward_naive(float* loss, const float* x, const float* y, const float* weight,
                                   const float* pos_weight, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    const double pw = pos_weight ? pos_weight[i] : 1.0, w = weight ? weight[i] : 1.0;
    loss[i] = static_cast<float>(-w * (pw * y[i] * std::log(s) + (1.0 - y[i]) * std::log(1.0 - s)));
  }
}

void bce_with_logits_backward(float* dx, const float* x, const float* y, const float* weight,
                              const float* pos_weight, const float* dloss, int64_t n) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const float pw = pos_weight ? pos_weight[i] : 1.0f;
    const float L = 1.0f + (pw - 1.0f) * y[i];
    dx[i] += dloss[i] * (weight ? weight[i] : 1.0f) * (L * stable_sigmoid(x[i]) - pw * y[i]);
  }
}

}  // namespace cpu

namespace {

// A constant broadcast to shape (a materialized copy), or undefined.
Tensor broadcast_constant(const char* op, const char* what, const Tensor& t, const Shape& shape) {
  if (!t.defined()) return t;
  check_float(op, t, what);
  BRIDLE_CHECK(!t.requires_grad(), "{}: {} is a constant here; detach() it", op, what);
  NoGradGuard no_grad;
  return mul(ones(shape, t.device()), t);  // broadcasting checks and names the shapes
}

// The loss on a GPU, with weight and pos_weight already materialized there.
#ifdef BRIDLE_WITH_CUDA
const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

Tensor bce_with_logits_cuda(const Tensor& logits, const Tensor& targets, const Tensor& weight,
                            const Tensor& pos_weight, Reduction reduction) {
  const char* op = "binary_cross_entropy_with_logits";
  cuda::DeviceGuard guard(logits.device());
  const int64_t n = logits.numel();
  Tensor loss = Tensor::empty(logits.shape(), logits.device());
  cuda::bce_with_logits_forward(loss.data<float>(), logits.data<float>(), targets.data<float>(),
                                data_or_null(weight), data_or_null(pos_weight), n);
  const float scale = mean_scale(reduction, static_cast<double>(n));
  if (reduction != Reduction::kNone) {
    Tensor total = Tensor::empty({}, logits.device());
    cuda::sum_forward(total.data<float>(), loss.data<float>(), 1, n, 1, scale);
    loss = total;
  }
  return record(loss, op, {logits},
                [logits, targets, weight, pos_weight, reduction, scale, n](const Tensor& dout,
                                                                           const Tensor&) {
                  cuda::DeviceGuard guard(logits.device());
                  write_grad(logits, [&](float* dx, bool accumulate) {
                    cuda::bce_with_logits_backward(dx, logits.data<float>(), targets.data<float>(),
                                                   data_or_null(weight), data_or_null(pos_weight),
                                                   dout.data<float>(), scale,
                                                   reduction == Reduction::kNone, n, accumulate);
                  });
                });
}
#else
Tensor bce_with_logits_cuda(const Tensor&, const Tensor&, const Tensor&, const Tensor&, Reduction) {
  BRIDLE_FAIL("binary_cross_entropy_with_logits: this build has no CUDA backend");
}
#endif

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        const BinaryCrossEntropyOptions& options) {
  const char* op = "binary_cross_entropy_with_logits";
  check_float(op, logits, "logits");
  BRIDLE_CHECK(targets.defined() && targets.is_float(), "{}: targets must be float32{}", op,
               targets.defined() ? fmt::format(", got {}", dtype_name(targets.dtype())) : "");
  check_device(op, {logits, targets, options.weight, options.pos_weight}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(targets.shape() == logits.shape(), "{}: targets {} must have the logits' shape {}",
               op, shape_str(targets.shape()), shape_str(logits.shape()));
  BRIDLE_CHECK(!targets.requires_grad(), "{}: targets are constants here; detach() them", op);
  if (options.pos_weight.defined()) {
    const int64_t C = logits.dim() > 0 ? logits.size(-1) : 1;
    BRIDLE_CHECK(options.pos_weight.dim() == 1 && options.pos_weight.size(0) == C,
                 "{}: pos_weight must be [{}] (the logits' last dim of {}), got {}", op, C,
                 shape_str(logits.shape()), shape_str(options.pos_weight.shape()));
  }
  Tensor weight = broadcast_constant(op, "weight", options.weight, logits.shape());
  Tensor pos_weight = broadcast_constant(op, "pos_weight", options.pos_weight, logits.shape());
  if (logits.device().is_cuda())
    return bce_with_logits_cuda(logits, targets, weight, pos_weight, options.reduction);
  auto ptr = [](const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
  const int64_t n = logits.numel();
  Tensor loss = Tensor::empty(logits.shape());
  cpu::bce_with_logits_forward(loss.data<float>(), logits.data<float>(), targets.data<float>(),
                               ptr(weight), ptr(pos_weight), n);
  const float scale = mean_scale(options.reduction, static_cast<double>(n));
  const Reduction reduction = options.reduction;
  return record(reduce_loss(loss, reduction, scale), op, {logits},
                [logits, targets, weight, pos_weight, reduction, scale, n, ptr](const Tensor& dout,
                                                                                const Tensor&) {
                  const std::vector<float> dloss = row_gradients(dout, reduction, scale, n);
                  cpu::bce_with_logits_backward(grad_buffer(logits).data<float>(),
                                                logits.data<float>(), targets.data<float>(),
                                                ptr(weight), ptr(pos_weight), dloss.data(), n);
                });
}

Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets,
                          const SigmoidFocalOptions& options) {
  BRIDLE_CHECK(options.gamma >= 0.0f && std::isfinite(options.gamma),
               "sigmoid_focal_loss: gamma must be >= 0, got {}", options.gamma);
  Tensor loss = binary_cross_entropy_with_logits(logits, targets, {.reduction = Reduction::kNone});
  if (options.gamma > 0.0f) {
    Tensor p = sigmoid(logits);
    Tensor p_t = p * targets + (1.0f - p) * (1.0f - targets);
    loss = loss * pow(1.0f - p_t, options.gamma);
  }
  if (options.alpha >= 0.0f)
    loss = loss * (options.alpha * targets + (1.0f - options.alpha) * (1.0f - targets));
  if (options.reduction == Reduction::kMean) return mean(loss);
  if (options.reduction == Reduction::kSum) return sum(loss);
  return loss;
}

}  // namespace bridle
