// Fused softmax cross-entropy: op, backward and CPU kernels (see cross_entropy.h).
//
// Derivation, for one row with p = softmax(z) and target y:
//   loss = -log p_y = lse(z) - z_y
//   d loss / d z_j = p_j - [j == y]
// so dlogits = (softmax(logits) - onehot(targets)) * dloss_b, with dloss_b = g for
// kSum, g / (rows not ignored) for kMean and g_b for kNone. The forward saves
// lse per row, so the backward is one pass over the logits: p_j = exp(z_j - lse).
#include "ops/cross_entropy.h"

#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "ops/fast_math.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

template <typename Target>
void cross_entropy_forward(float* loss, float* lse, const float* logits, const Target* targets,
                           int64_t B, int64_t C, int64_t ignore_index) {
#pragma omp parallel for if (B * C > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    if (targets[b] == ignore_index) {
      loss[b] = 0.0f;
      lse[b] = 0.0f;
      continue;
    }
    float max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : max)
    for (int64_t j = 0; j < C; ++j) max = z[j] > max ? z[j] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < C; ++j) sum += fast_exp(z[j] - max);
    lse[b] = max + std::log(sum);
    loss[b] = lse[b] - z[targets[b]];
  }
}

template <typename Target>
void cross_entropy_forward_naive(float* loss, float* lse, const float* logits,
                                 const Target* targets, int64_t B, int64_t C,
                                 int64_t ignore_index) {
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * C;
    if (targets[b] == ignore_index) {
      loss[b] = lse[b] = 0.0f;
      continue;
    }
    double max = z[0];
    for (int64_t j = 1; j < C; ++j) max = std::max<double>(max, z[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) sum += std::exp(z[j] - max);
    lse[b] = static_cast<float>(max + std::log(sum));
    loss[b] = static_cast<float>(max + std::log(sum) - z[targets[b]]);
  }
}

template <typename Target>
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const Target* targets, const float* dloss, int64_t B, int64_t C,
                            int64_t ignore_index) {
#pragma omp parallel for if (B * C > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    if (targets[b] == ignore_index) continue;
    const float* z = logits + b * C;
    float* dz = dlogits + b * C;
    const float g = dloss[b], row_lse = lse[b];
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) dz[j] += fast_exp(z[j] - row_lse) * g;
    dz[targets[b]] -= g;
  }
}

template void cross_entropy_forward<int32_t>(float*, float*, const float*, const int32_t*, int64_t,
                                             int64_t, int64_t);
template void cross_entropy_forward<int64_t>(float*, float*, const float*, const int64_t*, int64_t,
                                             int64_t, int64_t);
template void cross_entropy_forward_naive<int32_t>(float*, float*, const float*, const int32_t*,
                                                   int64_t, int64_t, int64_t);
template void cross_entropy_forward_naive<int64_t>(float*, float*, const float*, const int64_t*,
                                                   int64_t, int64_t, int64_t);
template void cross_entropy_backward<int32_t>(float*, const float*, const float*, const int32_t*,
                                              const float*, int64_t, int64_t, int64_t);
template void cross_entropy_backward<int64_t>(float*, const float*, const float*, const int64_t*,
                                              const float*, int64_t, int64_t, int64_t);

}  // namespace cpu

namespace {

// Validates targets and counts the rows that are not ignored.
template <typename Target>
int64_t check_targets(const Target* targets, int64_t B, int64_t C, int64_t ignore_index) {
  int64_t counted = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t y = static_cast<int64_t>(targets[b]);
    if (y == ignore_index) continue;
    BRIDLE_CHECK(y >= 0 && y < C,
                 "cross_entropy: target {} at row {} is out of range for {} classes (valid: 0..{}, "
                 "or ignore_index {})",
                 y, b, C, C - 1, ignore_index);
    ++counted;
  }
  return counted;
}

template <typename Target>
Tensor cross_entropy_typed(const Tensor& logits, const Tensor& targets,
                           const CrossEntropyOptions& options) {
  const int64_t B = logits.shape()[0], C = logits.shape()[1];
  const Target* y = targets.data<Target>();
  const int64_t counted = check_targets(y, B, C, options.ignore_index);
  Tensor row_loss = Tensor::empty({B});
  Tensor lse = Tensor::empty({B});
  cpu::cross_entropy_forward(row_loss.data<float>(), lse.data<float>(), logits.data<float>(), y, B,
                             C, options.ignore_index);

  const float* l = row_loss.data<float>();
  for (int64_t b = 0; b < B; ++b)
    BRIDLE_CHECK(!std::isnan(l[b]),
                 "cross_entropy: row {} of logits {} gives a NaN loss (the row contains NaN, or is "
                 "all -inf)",
                 b, shape_str(logits.shape()));

  // Reduce; the scale is what each row's loss is multiplied by (for backward).
  Tensor out;
  float scale = 1.0f;
  if (options.reduction == Reduction::kNone) {
    out = row_loss;
  } else {
    double total = 0.0;
    for (int64_t b = 0; b < B; ++b) total += l[b];
    if (options.reduction == Reduction::kMean)
      scale = counted > 0 ? 1.0f / static_cast<float>(counted) : 0.0f;
    out = Tensor::empty({});
    out.data<float>()[0] = static_cast<float>(total * scale);
  }
  Reduction reduction = options.reduction;
  int64_t ignore_index = options.ignore_index;
  return record(out, "cross_entropy", {logits},
                [logits, targets, lse, reduction, scale, ignore_index, B, C](const Tensor& dout,
                                                                             const Tensor&) {
                  // Per-row upstream gradient dloss_b.
                  Tensor dloss = dout;
                  if (reduction != Reduction::kNone) {
                    dloss = Tensor::empty({B});
                    float g = dout.data<float>()[0] * scale;
                    float* d = dloss.data<float>();
                    for (int64_t b = 0; b < B; ++b) d[b] = g;
                  }
                  cpu::cross_entropy_backward(
                      grad_buffer(logits).data<float>(), logits.data<float>(), lse.data<float>(),
                      targets.data<Target>(), dloss.data<float>(), B, C, ignore_index);
                });
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const CrossEntropyOptions& options) {
  check_float("cross_entropy", logits, "logits");
  check_device("cross_entropy", {logits, targets});
  BRIDLE_CHECK(logits.dim() == 2, "cross_entropy: logits must be [B, C], got {}",
               shape_str(logits.shape()));
  BRIDLE_CHECK(targets.defined() && is_integer(targets.dtype()),
               "cross_entropy: targets must be int32 or int64 class indices{}",
               targets.defined() ? fmt::format(", got {}", dtype_name(targets.dtype())) : "");
  BRIDLE_CHECK(targets.dim() == 1 && targets.shape()[0] == logits.shape()[0],
               "cross_entropy: targets must be [{}] for logits {}, got {}", logits.shape()[0],
               shape_str(logits.shape()), shape_str(targets.shape()));
  BRIDLE_CHECK(logits.shape()[1] > 0, "cross_entropy: logits {} have no classes",
               shape_str(logits.shape()));
  if (targets.dtype() == DType::kInt32)
    return cross_entropy_typed<int32_t>(logits, targets, options);
  return cross_entropy_typed<int64_t>(logits, targets, options);
}

}  // namespace bridle
