// sparsemax, 1.5-entmax and alpha-entmax with their Fenchel-Young losses; the
// formulas are in sparsemax.h.
//
// Thresholds. Sorting the row descending, z_(1) >= z_(2) >= ..., the support is a
// prefix of the sorted row, so tau is found by trying each prefix length k:
//   sparsemax: the largest k with 1 + k z_(k) > sum_{j<=k} z_(j); then
//              tau = (sum_{j<=k} z_(j) - 1) / k.
//   1.5-entmax (on x = (z - max) / 2): for each k the tau that makes
//              sum_{j<=k} (x_(j) - tau)^2 = 1 is mean_k - sqrt((1 - k var_k) / k);
//              the support is the number of k with tau_k <= x_(k).
// Bisection (any alpha): sum_j [(alpha - 1) z_j - tau]_+^(1/(alpha-1)) falls as tau
// rises, is >= 1 at tau = max - 1 and <= 1 at tau = max - (1/n)^(alpha-1), so each
// step halves that bracket; the result is renormalized to sum to 1.
// The CUDA kernels (sparsemax.cu) find the support by bisection instead of a sort
// and then tau by the same closed forms.
#include "ops/sparsemax.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/loss_utils.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace bridle {
namespace cpu {

namespace {
constexpr int64_t kParallelWork = 1 << 14;
}

void sparsemax_rows(float* out, const float* in, int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = in + r * n;
    std::vector<float> sorted(z, z + n);
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    double cumsum = 0.0, support_sum = 0.0;
    int64_t support = 0;
    for (int64_t k = 1; k <= n; ++k) {
      cumsum += sorted[k - 1];
      if (1.0 + static_cast<double>(k) * sorted[k - 1] > cumsum) {
        support = k;
        support_sum = cumsum;
      }
    }
    const double tau = (support_sum - 1.0) / static_cast<double>(support);
    for (int64_t j = 0; j < n; ++j)
      out[r * n + j] = static_cast<float>(std::max(static_cast<double>(z[j]) - tau, 0.0));
  }
}

void entmax15_rows(float* out, const float* in, int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = in + r * n;
    const double max = *std::max_element(z, z + n);
    std::vector<double> x(n);
    for (int64_t j = 0; j < n; ++j) x[j] = (z[j] - max) / 2.0;
    std::vector<double> sorted = x;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    double sum = 0.0, sum_sq = 0.0, tau_star = 0.0;
    for (int64_t k = 1; k <= n; ++k) {
      sum += sorted[k - 1];
      sum_sq += sorted[k - 1] * sorted[k - 1];
      const double kd = static_cast<double>(k), mean = sum / kd;
      const double ss = kd * (sum_sq / kd - mean * mean);
      const double tau = mean - std::sqrt(std::max((1.0 - ss) / kd, 0.0));
      if (tau <= sorted[k - 1]) tau_star = tau;  // k is within the support
    }
    for (int64_t j = 0; j < n; ++j) {
      const double v = std::max(x[j] - tau_star, 0.0);
      out[r * n + j] = static_cast<float>(v * v);
    }
  }
}

void entmax_bisect_rows(float* out, const float* in, int64_t rows, int64_t n, float alpha,
                        int n_iter) {
  const double am1 = static_cast<double>(alpha) - 1.0, power = 1.0 / am1;
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = in + r * n;
    std::vector<double> x(n), p(n);
    for (int64_t j = 0; j < n; ++j) x[j] = am1 * z[j];
    const double max = *std::max_element(x.begin(), x.end());
    auto mass = [&](double tau) {  // sum_j p_j(tau), filling p
      double total = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double v = x[j] - tau;
        p[j] = v > 0.0 ? std::pow(v, power) : 0.0;
        total += p[j];
      }
      return total;
    };
    double tau_lo = max - 1.0;
    const double tau_hi = max - std::pow(1.0 / static_cast<double>(n), am1);
    const double f_lo = mass(tau_lo) - 1.0;
    double width = tau_hi - tau_lo, total = 0.0;
    for (int it = 0; it < n_iter; ++it) {
      width /= 2.0;
      const double tau_mid = tau_lo + width;
      total = mass(tau_mid);
      if ((total - 1.0) * f_lo >= 0.0) tau_lo = tau_mid;
    }
    if (n_iter == 0) total = mass(tau_lo);
    for (int64_t j = 0; j < n; ++j) out[r * n + j] = static_cast<float>(p[j] / total);
  }
}

void entmax_backward_rows(float* din, const float* out, const float* dout, int64_t rows, int64_t n,
                          float alpha) {
  const double exponent = 2.0 - static_cast<double>(alpha);
#pragma omp parallel for if (rows * n > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = out + r * n;
    const float* dp = dout + r * n;
    double g_dp = 0.0, g_sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      if (p[j] <= 0.0f) continue;
      const double g = exponent == 0.0 ? 1.0 : std::pow(static_cast<double>(p[j]), exponent);
      g_dp += g * dp[j];
      g_sum += g;
    }
    const double q = g_dp / g_sum;
    for (int64_t j = 0; j < n; ++j) {
      if (p[j] <= 0.0f) continue;
      const double g = exponent == 0.0 ? 1.0 : std::pow(static_cast<double>(p[j]), exponent);
      din[r * n + j] += static_cast<float>(g * (dp[j] - q));
    }
  }
}

}  // namespace cpu

namespace {

using RowsKernel = std::function<void(float*, const float*, int64_t, int64_t)>;

// Which mapping an op computes: its alpha, its CPU row kernel and the kind of
// its CUDA kernel (with the bisection's steps).
struct Entmax {
  float alpha;
  RowsKernel cpu;
  cuda::EntmaxKind kind;
  int n_iter = 0;
};

[[noreturn]] void fail_not_finite(const char* op, const Tensor& x, int64_t n, int64_t bad,
                                  float value) {
  BRIDLE_FAIL("{}: row {} of {} holds {} at position {}; the threshold needs finite values", op,
              bad / n, shape_str(x.shape()), value, bad % n);
}

void check_finite_rows(const char* op, const Tensor& x, int64_t rows, int64_t n) {
  const float* data = x.data<float>();
  for (int64_t i = 0; i < rows * n; ++i)
    if (!std::isfinite(data[i])) fail_not_finite(op, x, n, i, data[i]);
}

// On a GPU: the first non-finite value is found there, and only its position
// comes back (and, for the error, its value).
#ifdef BRIDLE_WITH_CUDA
void check_finite_rows_cuda(const char* op, const Tensor& x, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  Tensor first =
      full({}, static_cast<double>(total), TensorOptions(kInt64).with_device(x.device()));
  cuda::first_non_finite(reinterpret_cast<unsigned long long*>(first.data<int64_t>()),
                         x.data<float>(), total);
  const auto bad = static_cast<int64_t>(first.at({}));
  if (bad < total) fail_not_finite(op, x, n, bad, x.cpu().data<float>()[bad]);
}

Tensor entmax_last_dim_cuda(const char* op, const Tensor& x, const Entmax& e, int64_t rows,
                            int64_t n) {
  cuda::DeviceGuard guard(x.device());
  check_finite_rows_cuda(op, x, rows, n);
  Tensor out = Tensor::empty(x.shape(), x.device());
  cuda::entmax_forward(e.kind, out.data<float>(), x.data<float>(), rows, n, e.alpha, e.n_iter);
  const float alpha = e.alpha;
  return record(out, op, {x}, [x, alpha, rows, n](const Tensor& dout, const Tensor& out) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::entmax_backward(dx, out.data<float>(), dout.data<float>(), rows, n, alpha, accumulate);
    });
  });
}
#else
Tensor entmax_last_dim_cuda(const char* op, const Tensor&, const Entmax&, int64_t, int64_t) {
  BRIDLE_FAIL("{}: this build has no CUDA backend", op);
}
#endif

// The op along the last dim: rows of n contiguous values.
Tensor entmax_last_dim(const char* op, const Tensor& x, const Entmax& e) {
  const int64_t n = x.size(-1), rows = n == 0 ? 0 : x.numel() / n;
  if (x.device().is_cuda()) return entmax_last_dim_cuda(op, x, e, rows, n);
  check_finite_rows(op, x, rows, n);
  Tensor out = Tensor::empty(x.shape());
  if (x.numel() > 0) e.cpu(out.data<float>(), x.data<float>(), rows, n);
  const float alpha = e.alpha;
  return record(out, op, {x}, [x, alpha, rows, n](const Tensor& dout, const Tensor& out) {
    cpu::entmax_backward_rows(grad_buffer(x).data<float>(), out.data<float>(), dout.data<float>(),
                              rows, n, alpha);
  });
}

// Moves dim last (a copying transpose, recorded), applies, and moves it back.
Tensor along_dim(const char* op, const Tensor& x, int64_t dim, const Entmax& e) {
  check_float(op, x);
  check_device(op, {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() >= 1, "{}: needs at least one dim, got a scalar", op);
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  BRIDLE_CHECK(d >= 0 && d < x.dim(), "{}: dim {} out of range for shape {}", op, dim,
               shape_str(x.shape()));
  if (d == x.dim() - 1) return entmax_last_dim(op, x, e);
  return transpose(entmax_last_dim(op, transpose(x, d, -1), e), d, -1);
}

Entmax bisect_mapping(float alpha, int n_iter) {
  return {alpha,
          [alpha, n_iter](float* out, const float* in, int64_t rows, int64_t n) {
            cpu::entmax_bisect_rows(out, in, rows, n, alpha, n_iter);
          },
          cuda::EntmaxKind::kBisect, n_iter};
}

const Entmax kSparsemax = {2.0f, cpu::sparsemax_rows, cuda::EntmaxKind::kSparsemax};
const Entmax kEntmax15 = {1.5f, cpu::entmax15_rows, cuda::EntmaxKind::kEntmax15};

}  // namespace

Tensor sparsemax(const Tensor& x, int64_t dim) {
  return along_dim("sparsemax", x, dim, kSparsemax);
}

Tensor entmax15(const Tensor& x, int64_t dim) { return along_dim("entmax15", x, dim, kEntmax15); }

Tensor entmax_bisect(const Tensor& x, float alpha, int64_t dim, int n_iter) {
  BRIDLE_CHECK(alpha >= 1.0f && std::isfinite(alpha), "entmax_bisect: alpha must be >= 1, got {}",
               alpha);
  BRIDLE_CHECK(n_iter >= 0, "entmax_bisect: n_iter must be >= 0, got {}", n_iter);
  if (alpha == 1.0f) return softmax(x, dim);  // the limit; bisection would divide by 0
  return along_dim("entmax_bisect", x, dim, bisect_mapping(alpha, n_iter));
}

namespace {

// loss_b = Omega(p_b) + <p_b - e_y, z_b>; gradient p_b - e_y.
#ifdef BRIDLE_WITH_CUDA
// On a GPU: the targets are checked on a host copy, with the CPU op's errors.
template <typename Target>
Tensor fenchel_young_loss_cuda(const char* op, const Tensor& logits, const Tensor& targets,
                               const Entmax& e, const FenchelYoungOptions& options) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const Tensor targets_host = targets.cpu();
  const double counted =
      check_class_targets(op, targets_host.data<Target>(), B, C, options.ignore_index);
  cuda::DeviceGuard guard(logits.device());
  check_finite_rows_cuda(op, logits, B, C);
  const Device device = logits.device();
  Tensor p = Tensor::empty({B, C}, device), row_loss = Tensor::empty({B}, device);
  cuda::entmax_forward(e.kind, p.data<float>(), logits.data<float>(), B, C, e.alpha, e.n_iter);
  cuda::fenchel_young_forward(row_loss.data<float>(), p.data<float>(), logits.data<float>(),
                              targets.data<Target>(), B, C, e.alpha, options.ignore_index);
  const float scale = mean_scale(options.reduction, counted);
  Tensor loss = row_loss;
  if (options.reduction != Reduction::kNone) {
    loss = Tensor::empty({}, device);
    cuda::sum_forward(loss.data<float>(), row_loss.data<float>(), 1, B, 1, scale);
  }
  return record(loss, op, {logits},
                [logits, targets, p, options, scale, B, C](const Tensor& dout, const Tensor&) {
                  cuda::DeviceGuard guard(logits.device());
                  write_grad(logits, [&](float* dz, bool accumulate) {
                    cuda::fenchel_young_backward(dz, p.data<float>(), targets.data<Target>(),
                                                 dout.data<float>(), scale,
                                                 options.reduction == Reduction::kNone, B, C,
                                                 options.ignore_index, accumulate);
                  });
                });
}
#else
template <typename Target>
Tensor fenchel_young_loss_cuda(const char* op, const Tensor&, const Tensor&, const Entmax&,
                               const FenchelYoungOptions&) {
  BRIDLE_FAIL("{}: this build has no CUDA backend", op);
}
#endif

template <typename Target>
Tensor fenchel_young_loss(const char* op, const Tensor& logits, const Tensor& targets,
                          const Entmax& e, const FenchelYoungOptions& options) {
  if (logits.device().is_cuda())
    return fenchel_young_loss_cuda<Target>(op, logits, targets, e, options);
  const float alpha = e.alpha;
  const int64_t B = logits.size(0), C = logits.size(1);
  const Target* y = targets.data<Target>();
  const double counted = check_class_targets(op, y, B, C, options.ignore_index);
  check_finite_rows(op, logits, B, C);
  Tensor p = Tensor::empty({B, C});
  e.cpu(p.data<float>(), logits.data<float>(), B, C);
  Tensor row_loss = Tensor::empty({B});
  const float* z = logits.data<float>();
  const float* pp = p.data<float>();
  const double a = alpha;
  for (int64_t b = 0; b < B; ++b) {
    const auto yb = static_cast<int64_t>(y[b]);
    if (yb == options.ignore_index) {
      row_loss.data<float>()[b] = 0.0f;
      continue;
    }
    double sum_pa = 0.0, p_dot_z = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      const double pj = pp[b * C + j];
      sum_pa += a == 2.0 ? pj * pj : std::pow(pj, a);
      p_dot_z += pj * z[b * C + j];
    }
    row_loss.data<float>()[b] =
        static_cast<float>((1.0 - sum_pa) / (a * (a - 1.0)) + p_dot_z - z[b * C + yb]);
  }
  const float scale = mean_scale(options.reduction, counted);
  return record(reduce_loss(row_loss, options.reduction, scale), op, {logits},
                [logits, targets, p, options, scale, B, C](const Tensor& dout, const Tensor&) {
                  float* d = grad_buffer(logits).data<float>();
                  const float* pp = p.data<float>();
                  const Target* y = targets.data<Target>();
                  const std::vector<float> g_rows =
                      row_gradients(dout, options.reduction, scale, B);
                  for (int64_t b = 0; b < B; ++b) {
                    const auto yb = static_cast<int64_t>(y[b]);
                    if (yb == options.ignore_index) continue;
                    const float g = g_rows[b];
                    for (int64_t j = 0; j < C; ++j) d[b * C + j] += g * pp[b * C + j];
                    d[b * C + yb] -= g;
                  }
                });
}

Tensor fenchel_young(const char* op, const Tensor& logits, const Tensor& targets, const Entmax& e,
                     const FenchelYoungOptions& options) {
  check_float(op, logits, "logits");
  check_device(op, {logits, targets}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(logits.dim() == 2 && logits.size(1) > 0, "{}: logits must be [B, C], got {}", op,
               shape_str(logits.shape()));
  BRIDLE_CHECK(targets.defined() && is_integer(targets.dtype()) && targets.dim() == 1 &&
                   targets.size(0) == logits.size(0),
               "{}: targets must be [{}] int32 or int64 class indices", op, logits.size(0));
  if (targets.dtype() == DType::kInt32)
    return fenchel_young_loss<int32_t>(op, logits, targets, e, options);
  return fenchel_young_loss<int64_t>(op, logits, targets, e, options);
}

}  // namespace

Tensor sparsemax_loss(const Tensor& logits, const Tensor& targets,
                      const FenchelYoungOptions& options) {
  return fenchel_young("sparsemax_loss", logits, targets, kSparsemax, options);
}

Tensor entmax15_loss(const Tensor& logits, const Tensor& targets,
                     const FenchelYoungOptions& options) {
  return fenchel_young("entmax15_loss", logits, targets, kEntmax15, options);
}

Tensor entmax_bisect_loss(const Tensor& logits, const Tensor& targets, float alpha,
                          const FenchelYoungOptions& options) {
  BRIDLE_CHECK(alpha > 1.0f && std::isfinite(alpha),
               "entmax_bisect_loss: alpha must be > 1 (alpha = 1 is cross_entropy), got {}", alpha);
  return fenchel_young("entmax_bisect_loss", logits, targets, bisect_mapping(alpha, 50), options);
}

}  // namespace bridle
