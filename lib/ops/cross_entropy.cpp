// Fused softmax cross-entropy: op, backward and CPU kernels (see cross_entropy.h).
//
// Derivation, for one row z with p = softmax(z), lse = logsumexp(z) and
// d lse / d z_j = p_j:
//   nll    = w_y (lse - z_y)             d/dz_j = w_y (p_j - [j == y])
//   smooth = sum_c w_c (lse - z_c)       d/dz_j = p_j sum_c w_c - w_j
//   soft   = sum_c w_c t'_c (lse - z_c)  d/dz_j = p_j sum_c w_c t'_c - w_j t'_j
// Each is "p times a per-row constant, minus a per-class term", so with lse saved
// by the forward the backward is one pass over the logits: p_j = exp(z_j - lse).
// The reduction only scales each row's gradient (kMean: by 1 / the denominator).
#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/fast_math.h"
#include "ops/loss_utils.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/softmax.h"

namespace bridle {
namespace cpu {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // B * C below this: one thread

double row_lse_naive(const float* z, int64_t C) {
  double max = z[0];
  for (int64_t j = 1; j < C; ++j) max = std::max<double>(max, z[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < C; ++j) sum += std::exp(z[j] - max);
  return max + std::log(sum);
}

double weight_sum(const float* weight, int64_t C) {
  if (!weight) return static_cast<double>(C);
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) sum += weight[c];
  return sum;
}

}  // namespace

template <typename Target>
void cross_entropy_forward(float* nll, float* smooth, float* lse, const float* logits,
                           const Target* targets, const float* weight, int64_t B, int64_t C,
                           int64_t ignore_index) {
#pragma omp parallel for if (B * C > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    if (targets[b] == ignore_index) {
      nll[b] = lse[b] = 0.0f;
      if (smooth) smooth[b] = 0.0f;
      continue;
    }
    const float l = row_logsumexp(z, C);
    const int64_t y = static_cast<int64_t>(targets[b]);
    lse[b] = l;
    nll[b] = (weight ? weight[y] : 1.0f) * (l - z[y]);
    if (smooth) {
      float sum = 0.0f;  // sum_c w_c (lse - z_c)
      if (weight) {
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < C; ++j) sum += weight[j] * (l - z[j]);
      } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < C; ++j) sum += l - z[j];
      }
      smooth[b] = sum;
    }
  }
}

template <typename Target>
void cross_entropy_forward_naive(float* nll, float* smooth, float* lse, const float* logits,
                                 const Target* targets, const float* weight, int64_t B, int64_t C,
                                 int64_t ignore_index) {
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    if (targets[b] == ignore_index) {
      nll[b] = lse[b] = 0.0f;
      if (smooth) smooth[b] = 0.0f;
      continue;
    }
    const double l = row_lse_naive(z, C);
    const int64_t y = static_cast<int64_t>(targets[b]);
    lse[b] = static_cast<float>(l);
    nll[b] = static_cast<float>((weight ? weight[y] : 1.0) * (l - z[y]));
    if (smooth) {
      double sum = 0.0;
      for (int64_t j = 0; j < C; ++j) sum += (weight ? weight[j] : 1.0) * (l - z[j]);
      smooth[b] = static_cast<float>(sum);
    }
  }
}

template <typename Target>
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const Target* targets, const float* weight, const float* nll_scale,
                            const float* smooth_scale, int64_t B, int64_t C, int64_t ignore_index,
                            bool accumulate) {
  const auto total_weight = static_cast<float>(weight_sum(weight, C));
#pragma omp parallel for if (B * C > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    float* dz = dlogits + b * C;
    if (targets[b] == ignore_index) {
      if (!accumulate) std::fill(dz, dz + C, 0.0f);
      continue;
    }
    const float* z = logits + b * C;
    const int64_t y = static_cast<int64_t>(targets[b]);
    const float a = nll_scale[b] * (weight ? weight[y] : 1.0f);  // nll: w_y (p - onehot)
    const float s = smooth_scale ? smooth_scale[b] : 0.0f;       // smooth: p W - w
    const float p_coefficient = a + s * total_weight, l = lse[b];
    // dz_j = p_j * p_coefficient - s w_j (w_j = 1 without weights)
    row_exp_axpy(dz, z, C, l, p_coefficient, s != 0.0f ? weight : nullptr, -s, accumulate);
    dz[y] -= a;
  }
}

void cross_entropy_soft_forward(float* loss, float* lse, float* target_mass, const float* logits,
                                const float* targets, const float* weight, float smoothing,
                                int64_t B, int64_t C) {
  const float keep = 1.0f - smoothing, spread = smoothing / static_cast<float>(C);
#pragma omp parallel for if (B * C > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    const float* t = targets + b * C;
    const float l = row_logsumexp(z, C);
    float sum = 0.0f, mass = 0.0f;  // sum_c w_c t'_c (lse - z_c), sum_c w_c t'_c
#pragma omp simd reduction(+ : sum, mass)
    for (int64_t j = 0; j < C; ++j) {
      const float wt = (weight ? weight[j] : 1.0f) * (keep * t[j] + spread);
      sum += wt * (l - z[j]);
      mass += wt;
    }
    loss[b] = sum;
    lse[b] = l;
    target_mass[b] = mass;
  }
}

void cross_entropy_soft_forward_naive(float* loss, float* lse, float* target_mass,
                                      const float* logits, const float* targets,
                                      const float* weight, float smoothing, int64_t B, int64_t C) {
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    const double l = row_lse_naive(z, C);
    double sum = 0.0, mass = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      double smoothed = (1.0 - smoothing) * targets[b * C + j] + smoothing / static_cast<double>(C);
      double wt = (weight ? weight[j] : 1.0) * smoothed;
      sum += wt * (l - z[j]);
      mass += wt;
    }
    loss[b] = static_cast<float>(sum);
    lse[b] = static_cast<float>(l);
    target_mass[b] = static_cast<float>(mass);
  }
}

void cross_entropy_soft_backward(float* dlogits, const float* logits, const float* lse,
                                 const float* target_mass, const float* targets,
                                 const float* weight, float smoothing, const float* dloss,
                                 int64_t B, int64_t C, bool accumulate) {
  const float keep = 1.0f - smoothing, spread = smoothing / static_cast<float>(C);
#pragma omp parallel for if (B * C > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    const float* t = targets + b * C;
    float* dz = dlogits + b * C;
    const float g = dloss[b], p_coefficient = g * target_mass[b], l = lse[b];
    add_or_store(dz, C, accumulate, [=](int64_t j) {
      const float wt = (weight ? weight[j] : 1.0f) * (keep * t[j] + spread);
      return fast_exp(z[j] - l) * p_coefficient - g * wt;
    });
  }
}

#define BRIDLE_CROSS_ENTROPY_KERNELS(Target)                                                       \
  template void cross_entropy_forward<Target>(float*, float*, float*, const float*, const Target*, \
                                              const float*, int64_t, int64_t, int64_t);            \
  template void cross_entropy_forward_naive<Target>(float*, float*, float*, const float*,          \
                                                    const Target*, const float*, int64_t, int64_t, \
                                                    int64_t);                                      \
  template void cross_entropy_backward<Target>(float*, const float*, const float*, const Target*,  \
                                               const float*, const float*, const float*, int64_t,  \
                                               int64_t, int64_t, bool);
BRIDLE_CROSS_ENTROPY_KERNELS(int32_t)
BRIDLE_CROSS_ENTROPY_KERNELS(int64_t)
#undef BRIDLE_CROSS_ENTROPY_KERNELS

}  // namespace cpu

namespace {

const float* check_weight(const char* op, const Tensor& weight, int64_t C) {
  if (!weight.defined()) return nullptr;
  check_float(op, weight, "weight");
  BRIDLE_CHECK(weight.shape() == Shape{C}, "{}: weight must be [{}] (one per class), got {}", op, C,
               shape_str(weight.shape()));
  BRIDLE_CHECK(!weight.requires_grad(),
               "{}: class weights are constants here; detach() the weight (PyTorch has no "
               "gradient for it either)",
               op);
  return weight.data<float>();
}

void check_rows_finite(const char* op, const float* loss, int64_t B, const Tensor& logits) {
  for (int64_t b = 0; b < B; ++b)
    BRIDLE_CHECK(!std::isnan(loss[b]),
                 "{}: row {} of {} gives a NaN loss (the row contains NaN or +inf, or is all -inf)",
                 op, b, shape_str(logits.shape()));
}

template <typename Target>
Tensor cross_entropy_class(const Tensor& logits, const Tensor& targets,
                           const CrossEntropyOptions& options) {
  const int64_t B = logits.shape()[0], C = logits.shape()[1];
  const float* weight = check_weight("cross_entropy", options.weight, C);
  const double denominator = check_class_targets("cross_entropy", targets.data<Target>(), B, C,
                                                 options.ignore_index, weight);
  const float eps = options.label_smoothing;
  Tensor nll = Tensor::empty({B}), lse = Tensor::empty({B});
  Tensor smooth = eps > 0.0f ? Tensor::empty({B}) : Tensor();
  cpu::cross_entropy_forward(nll.data<float>(), eps > 0.0f ? smooth.data<float>() : nullptr,
                             lse.data<float>(), logits.data<float>(), targets.data<Target>(),
                             weight, B, C, options.ignore_index);
  Tensor row_loss = nll;
  if (eps > 0.0f) {
    row_loss = Tensor::empty({B});
    float* l = row_loss.data<float>();
    for (int64_t b = 0; b < B; ++b)
      l[b] = (1.0f - eps) * nll.data<float>()[b] +
             eps / static_cast<float>(C) * smooth.data<float>()[b];
  }
  check_rows_finite("cross_entropy", row_loss.data<float>(), B, logits);
  const float scale = mean_scale(options.reduction, denominator);
  return record(reduce_loss(row_loss, options.reduction, scale), "cross_entropy", {logits},
                [logits, targets, lse, options, scale, B, C](const Tensor& dout, const Tensor&) {
                  const float eps = options.label_smoothing;
                  std::vector<float> nll_scale = row_gradients(dout, options.reduction, scale, B);
                  std::vector<float> smooth_scale;
                  for (float& g : nll_scale) {
                    if (eps > 0.0f) smooth_scale.push_back(g * eps / static_cast<float>(C));
                    g *= 1.0f - eps;
                  }
                  const Tensor& w = options.weight;
                  write_grad(logits, [&](float* dlogits, bool accumulate) {
                    cpu::cross_entropy_backward(
                        dlogits, logits.data<float>(), lse.data<float>(), targets.data<Target>(),
                        w.defined() ? w.data<float>() : nullptr, nll_scale.data(),
                        eps > 0.0f ? smooth_scale.data() : nullptr, B, C, options.ignore_index,
                        accumulate);
                  });
                });
}

// cross_entropy with class targets on a GPU (cross_entropy.cu). The targets and
// class weights are copied to the host to validate them and to find kMean's
// denominator, and the per-row losses to check them for NaN, as the CPU op does:
// two small copies that wait for the GPU, the price of the same errors.
template <typename Target>
Tensor cross_entropy_class_cuda(const Tensor& logits, const Tensor& targets,
                                const CrossEntropyOptions& options) {
  if constexpr (!kCudaBuild) {
    BRIDLE_FAIL("cross_entropy: this build has no CUDA backend");
  } else {
    const int64_t B = logits.shape()[0], C = logits.shape()[1];
    const Tensor weight_host = options.weight.defined() ? options.weight.cpu() : Tensor();
    const float* host_weight = check_weight("cross_entropy", weight_host, C);
    const Tensor targets_host = targets.cpu();
    const double denominator = check_class_targets("cross_entropy", targets_host.data<Target>(), B,
                                                   C, options.ignore_index, host_weight);
    const auto total_weight = static_cast<float>(cpu::weight_sum(host_weight, C));
    const float scale = mean_scale(options.reduction, denominator);

    cuda::DeviceGuard guard(logits.device());
    const Device device = logits.device();
    Tensor row_loss = Tensor::empty({B}, device), lse = Tensor::empty({B}, device);
    const Tensor& w = options.weight;
    cuda::cross_entropy_forward(row_loss.data<float>(), lse.data<float>(), logits.data<float>(),
                                targets.data<Target>(), w.defined() ? w.data<float>() : nullptr, B,
                                C, options.ignore_index, options.label_smoothing);
    check_rows_finite("cross_entropy", row_loss.cpu().data<float>(), B, logits);
    Tensor loss = row_loss;
    if (options.reduction != Reduction::kNone) {
      loss = Tensor::empty({}, device);
      cuda::sum_forward(loss.data<float>(), row_loss.data<float>(), 1, B, 1, scale);
    }
    return record(loss, "cross_entropy", {logits},
                  [logits, targets, lse, options, scale, total_weight, B, C](const Tensor& dout,
                                                                             const Tensor&) {
                    cuda::DeviceGuard guard(logits.device());
                    const Tensor& w = options.weight;
                    write_grad(logits, [&](float* dlogits, bool accumulate) {
                      cuda::cross_entropy_backward(
                          dlogits, logits.data<float>(), lse.data<float>(), targets.data<Target>(),
                          w.defined() ? w.data<float>() : nullptr, total_weight, dout.data<float>(),
                          scale, options.reduction == Reduction::kNone, B, C, options.ignore_index,
                          options.label_smoothing, accumulate);
                    });
                  });
  }
}

// The checks of probability targets, the same on every device.
void check_soft_targets(const Tensor& logits, const Tensor& targets,
                        const CrossEntropyOptions& options) {
  BRIDLE_CHECK(targets.shape() == logits.shape(),
               "cross_entropy: float32 targets are probabilities and must have the logits' shape "
               "{}, got {} (class indices must be int32 or int64)",
               shape_str(logits.shape()), shape_str(targets.shape()));
  BRIDLE_CHECK(options.ignore_index < 0,
               "cross_entropy: ignore_index ({}) is not supported with probability targets",
               options.ignore_index);
  BRIDLE_CHECK(!targets.requires_grad(),
               "cross_entropy: probability targets are constants here; detach() them");
}

Tensor cross_entropy_soft(const Tensor& logits, const Tensor& targets,
                          const CrossEntropyOptions& options) {
  const int64_t B = logits.shape()[0], C = logits.shape()[1];
  check_soft_targets(logits, targets, options);
  const float* weight = check_weight("cross_entropy", options.weight, C);
  Tensor row_loss = Tensor::empty({B}), lse = Tensor::empty({B}), mass = Tensor::empty({B});
  cpu::cross_entropy_soft_forward(row_loss.data<float>(), lse.data<float>(), mass.data<float>(),
                                  logits.data<float>(), targets.data<float>(), weight,
                                  options.label_smoothing, B, C);
  check_rows_finite("cross_entropy", row_loss.data<float>(), B, logits);
  const float scale = mean_scale(options.reduction, static_cast<double>(B));
  return record(
      reduce_loss(row_loss, options.reduction, scale), "cross_entropy", {logits},
      [logits, targets, lse, mass, options, scale, B, C](const Tensor& dout, const Tensor&) {
        std::vector<float> dloss = row_gradients(dout, options.reduction, scale, B);
        const Tensor& w = options.weight;
        write_grad(logits, [&](float* dlogits, bool accumulate) {
          cpu::cross_entropy_soft_backward(dlogits, logits.data<float>(), lse.data<float>(),
                                           mass.data<float>(), targets.data<float>(),
                                           w.defined() ? w.data<float>() : nullptr,
                                           options.label_smoothing, dloss.data(), B, C, accumulate);
        });
      });
}

// cross_entropy with probability targets on a GPU (cross_entropy.cu): the class
// weights are checked on a host copy and the per-row losses copied back to check
// them for NaN, as in cross_entropy_class_cuda.
Tensor cross_entropy_soft_cuda(const Tensor& logits, const Tensor& targets,
                               const CrossEntropyOptions& options) {
#ifndef BRIDLE_WITH_CUDA
  (void)logits, (void)targets, (void)options;
  BRIDLE_FAIL("cross_entropy: this build has no CUDA backend");
#else
  const int64_t B = logits.shape()[0], C = logits.shape()[1];
  check_soft_targets(logits, targets, options);
  const Tensor weight_host = options.weight.defined() ? options.weight.cpu() : Tensor();
  check_weight("cross_entropy", weight_host, C);
  const float scale = mean_scale(options.reduction, static_cast<double>(B));

  cuda::DeviceGuard guard(logits.device());
  const Device device = logits.device();
  Tensor row_loss = Tensor::empty({B}, device), lse = Tensor::empty({B}, device),
         mass = Tensor::empty({B}, device);
  const Tensor& w = options.weight;
  cuda::cross_entropy_soft_forward(row_loss.data<float>(), lse.data<float>(), mass.data<float>(),
                                   logits.data<float>(), targets.data<float>(),
                                   w.defined() ? w.data<float>() : nullptr, B, C,
                                   options.label_smoothing);
  check_rows_finite("cross_entropy", row_loss.cpu().data<float>(), B, logits);
  Tensor loss = row_loss;
  if (options.reduction != Reduction::kNone) {
    loss = Tensor::empty({}, device);
    cuda::sum_forward(loss.data<float>(), row_loss.data<float>(), 1, B, 1, scale);
  }
  return record(
      loss, "cross_entropy", {logits},
      [logits, targets, lse, mass, options, scale, B, C](const Tensor& dout, const Tensor&) {
        cuda::DeviceGuard guard(logits.device());
        const Tensor& w = options.weight;
        write_grad(logits, [&](float* dlogits, bool accumulate) {
          cuda::cross_entropy_soft_backward(
              dlogits, logits.data<float>(), lse.data<float>(), mass.data<float>(),
              targets.data<float>(), w.defined() ? w.data<float>() : nullptr, dout.data<float>(),
              scale, options.reduction == Reduction::kNone, B, C, options.label_smoothing,
              accumulate);
        });
      });
#endif
}

template <typename Target>
Tensor nll_loss_typed(const Tensor& log_probs, const Tensor& targets,
                      const NllLossOptions& options) {
  const int64_t B = log_probs.shape()[0], C = log_probs.shape()[1];
  const float* weight = check_weight("nll_loss", options.weight, C);
  const Target* y = targets.data<Target>();
  const double denominator = check_class_targets("nll_loss", y, B, C, options.ignore_index, weight);
  Tensor row_loss = Tensor::empty({B});
  const float* lp = log_probs.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const auto yb = static_cast<int64_t>(y[b]);
    row_loss.data<float>()[b] =
        yb == options.ignore_index ? 0.0f : -(weight ? weight[yb] : 1.0f) * lp[b * C + yb];
  }
  const float scale = mean_scale(options.reduction, denominator);
  return record(reduce_loss(row_loss, options.reduction, scale), "nll_loss", {log_probs},
                [log_probs, targets, options, scale, B, C](const Tensor& dout, const Tensor&) {
                  // d loss_b / d log_probs_bj = -w_y [j == y]
                  std::vector<float> g = row_gradients(dout, options.reduction, scale, B);
                  float* d = grad_buffer(log_probs).data<float>();
                  const Target* y = targets.data<Target>();
                  const Tensor& w = options.weight;
                  for (int64_t b = 0; b < B; ++b) {
                    const auto yb = static_cast<int64_t>(y[b]);
                    if (yb == options.ignore_index) continue;
                    d[b * C + yb] -= (w.defined() ? w.data<float>()[yb] : 1.0f) * g[b];
                  }
                });
}

// nll_loss on a GPU (cross_entropy.cu): the targets and weights are checked on
// host copies, as in cross_entropy_class_cuda, with the CPU op's errors.
template <typename Target>
Tensor nll_loss_cuda(const Tensor& log_probs, const Tensor& targets,
                     const NllLossOptions& options) {
  if constexpr (!kCudaBuild) {
    BRIDLE_FAIL("nll_loss: this build has no CUDA backend");
  } else {
    const int64_t B = log_probs.shape()[0], C = log_probs.shape()[1];
    const Tensor weight_host = options.weight.defined() ? options.weight.cpu() : Tensor();
    const float* host_weight = check_weight("nll_loss", weight_host, C);
    const Tensor targets_host = targets.cpu();
    const double denominator = check_class_targets("nll_loss", targets_host.data<Target>(), B, C,
                                                   options.ignore_index, host_weight);
    const float scale = mean_scale(options.reduction, denominator);

    cuda::DeviceGuard guard(log_probs.device());
    const Device device = log_probs.device();
    Tensor row_loss = Tensor::empty({B}, device);
    const Tensor& w = options.weight;
    cuda::nll_loss_forward(row_loss.data<float>(), log_probs.data<float>(), targets.data<Target>(),
                           w.defined() ? w.data<float>() : nullptr, B, C, options.ignore_index);
    Tensor loss = row_loss;
    if (options.reduction != Reduction::kNone) {
      loss = Tensor::empty({}, device);
      cuda::sum_forward(loss.data<float>(), row_loss.data<float>(), 1, B, 1, scale);
    }
    return record(loss, "nll_loss", {log_probs},
                  [log_probs, targets, options, scale, B, C](const Tensor& dout, const Tensor&) {
                    cuda::DeviceGuard guard(log_probs.device());
                    const Tensor& w = options.weight;
                    write_grad(log_probs, [&](float* dlog_probs, bool accumulate) {
                      cuda::nll_loss_backward(dlog_probs, targets.data<Target>(),
                                              w.defined() ? w.data<float>() : nullptr,
                                              dout.data<float>(), scale,
                                              options.reduction == Reduction::kNone, B, C,
                                              options.ignore_index, accumulate);
                    });
                  });
  }
}

// Shared checks of the [B, C] input and, for class targets, the [B] targets.
void check_inputs(const char* op, const Tensor& input, const Tensor& targets, bool allow_soft,
                  Kernels kernels = Kernels::kCpuOnly) {
  check_float(op, input, "input");
  check_device(op, {input, targets}, kernels);
  BRIDLE_CHECK(input.dim() == 2, "{}: input must be [B, C], got {}", op, shape_str(input.shape()));
  BRIDLE_CHECK(input.shape()[1] > 0, "{}: input {} has no classes", op, shape_str(input.shape()));
  BRIDLE_CHECK(targets.defined(), "{}: no targets given", op);
  if (allow_soft && targets.is_float()) return;
  BRIDLE_CHECK(is_integer(targets.dtype()),
               "{}: targets must be int32 or int64 class indices{}, got {}", op,
               allow_soft ? " or float32 probabilities" : "", dtype_name(targets.dtype()));
  BRIDLE_CHECK(targets.dim() == 1 && targets.shape()[0] == input.shape()[0],
               "{}: class targets must be [{}] for input {}, got {}", op, input.shape()[0],
               shape_str(input.shape()), shape_str(targets.shape()));
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const CrossEntropyOptions& options) {
  check_inputs("cross_entropy", logits, targets, /*allow_soft=*/true, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(options.label_smoothing >= 0.0f && options.label_smoothing <= 1.0f,
               "cross_entropy: label_smoothing must be in [0, 1], got {}", options.label_smoothing);
  check_device("cross_entropy", {logits, options.weight}, Kernels::kCpuAndCuda);
  if (logits.device().is_cuda()) {
    if (targets.is_float()) return cross_entropy_soft_cuda(logits, targets, options);
    if (targets.dtype() == DType::kInt32)
      return cross_entropy_class_cuda<int32_t>(logits, targets, options);
    return cross_entropy_class_cuda<int64_t>(logits, targets, options);
  }
  if (targets.is_float()) return cross_entropy_soft(logits, targets, options);
  if (targets.dtype() == DType::kInt32)
    return cross_entropy_class<int32_t>(logits, targets, options);
  return cross_entropy_class<int64_t>(logits, targets, options);
}

Tensor focal_loss(const Tensor& logits, const Tensor& targets, const FocalLossOptions& options) {
  // Composed of ops that run on every device; only the checks and the one-hot
  // targets are made on the host.
  check_inputs("focal_loss", logits, targets, /*allow_soft=*/true, Kernels::kCpuAndCuda);
  check_device("focal_loss", {logits, options.class_alpha}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(options.gamma >= 0.0f && std::isfinite(options.gamma),
               "focal_loss: gamma must be >= 0, got {}", options.gamma);
  const int64_t B = logits.shape()[0], C = logits.shape()[1];
  Tensor t = targets;  // the target distribution, a constant
  if (targets.is_float()) {
    BRIDLE_CHECK(targets.shape() == logits.shape(),
                 "focal_loss: probability targets must have the logits' shape {}, got {}",
                 shape_str(logits.shape()), shape_str(targets.shape()));
  } else {
    Tensor y = targets.cpu().to(DType::kInt64);
    check_class_targets("focal_loss", y.data<int64_t>(), B, C, /*ignore_index=*/-1, nullptr);
    t = zeros({B, C});
    for (int64_t b = 0; b < B; ++b) t.data<float>()[b * C + y.data<int64_t>()[b]] = 1.0f;
    t = t.to(logits.device());
  }
  Tensor log_p = log_softmax(logits, 1);
  Tensor term = t * neg(log_p);
  // gamma = 0 skips the factor: its pow would differentiate 0^-1 where p = 1.
  if (options.gamma > 0.0f) term = term * pow(1.0f - exp(log_p), options.gamma);
  if (options.class_alpha.defined()) {
    check_weight("focal_loss", options.class_alpha.cpu(), C);  // [C], a constant
    term = term * options.class_alpha;
  } else {
    term = term * options.alpha;
  }
  Tensor per_row = sum(term, 1);
  if (options.reduction == Reduction::kMean) return mean(per_row);
  if (options.reduction == Reduction::kSum) return sum(per_row);
  return per_row;
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const NllLossOptions& options) {
  check_inputs("nll_loss", log_probs, targets, /*allow_soft=*/false, Kernels::kCpuAndCuda);
  check_device("nll_loss", {log_probs, options.weight}, Kernels::kCpuAndCuda);
  if (log_probs.device().is_cuda()) {
    if (targets.dtype() == DType::kInt32)
      return nll_loss_cuda<int32_t>(log_probs, targets, options);
    return nll_loss_cuda<int64_t>(log_probs, targets, options);
  }
  if (targets.dtype() == DType::kInt32) return nll_loss_typed<int32_t>(log_probs, targets, options);
  return nll_loss_typed<int64_t>(log_probs, targets, options);
}

}  // namespace bridle
