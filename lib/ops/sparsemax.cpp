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
#include "ops/sparsemax.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "autograd/node.h"
#include "core/factory.h"
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

void check_finite_rows(const char* op, const Tensor& x, int64_t rows, int64_t n) {
  const float* data = x.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j)
      BRIDLE_CHECK(std::isfinite(data[r * n + j]),
                   "{}: row {} of {} holds {} at position {}; the threshold needs finite values",
                   op, r, shape_str(x.shape()), data[r * n + j], j);
}

// The op along the last dim: rows of n contiguous values.
Tensor entmax_last_dim(const char* op, const Tensor& x, float alpha, const RowsKernel& kernel) {
  const int64_t n = x.size(-1), rows = n == 0 ? 0 : x.numel() / n;
  check_finite_rows(op, x, rows, n);
  Tensor out = Tensor::empty(x.shape());
  if (x.numel() > 0) kernel(out.data<float>(), x.data<float>(), rows, n);
  return record(out, op, {x}, [x, alpha, rows, n](const Tensor& dout, const Tensor& out) {
    cpu::entmax_backward_rows(grad_buffer(x).data<float>(), out.data<float>(), dout.data<float>(),
                              rows, n, alpha);
  });
}

// Moves dim last (a copying transpose, recorded), applies, and moves it back.
Tensor along_dim(const char* op, const Tensor& x, int64_t dim, float alpha,
                 const RowsKernel& kernel) {
  check_float(op, x);
  check_device(op, {x});
  BRIDLE_CHECK(x.dim() >= 1, "{}: needs at least one dim, got a scalar", op);
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  BRIDLE_CHECK(d >= 0 && d < x.dim(), "{}: dim {} out of range for shape {}", op, dim,
               shape_str(x.shape()));
  if (d == x.dim() - 1) return entmax_last_dim(op, x, alpha, kernel);
  return transpose(entmax_last_dim(op, transpose(x, d, -1), alpha, kernel), d, -1);
}

}  // namespace

Tensor sparsemax(const Tensor& x, int64_t dim) {
  return along_dim("sparsemax", x, dim, 2.0f, cpu::sparsemax_rows);
}

Tensor entmax15(const Tensor& x, int64_t dim) {
  return along_dim("entmax15", x, dim, 1.5f, cpu::entmax15_rows);
}

Tensor entmax_bisect(const Tensor& x, float alpha, int64_t dim, int n_iter) {
  BRIDLE_CHECK(alpha >= 1.0f && std::isfinite(alpha), "entmax_bisect: alpha must be >= 1, got {}",
               alpha);
  BRIDLE_CHECK(n_iter >= 0, "entmax_bisect: n_iter must be >= 0, got {}", n_iter);
  if (alpha == 1.0f) return softmax(x, dim);  // the limit; bisection would divide by 0
  return along_dim("entmax_bisect", x, dim, alpha,
                   [alpha, n_iter](float* out, const float* in, int64_t rows, int64_t n) {
                     cpu::entmax_bisect_rows(out, in, rows, n, alpha, n_iter);
                   });
}

namespace {

// loss_b = Omega(p_b) + <p_b - e_y, z_b>; gradient p_b - e_y.
template <typename Target>
Tensor fenchel_young_loss(const char* op, const Tensor& logits, const Tensor& targets, float alpha,
                          const RowsKernel& kernel, const FenchelYoungOptions& options) {
  const int64_t B = logits.size(0), C = logits.size(1);
  const Target* y = targets.data<Target>();
  const double counted = check_class_targets(op, y, B, C, options.ignore_index);
  check_finite_rows(op, logits, B, C);
  Tensor p = Tensor::empty({B, C});
  kernel(p.data<float>(), logits.data<float>(), B, C);
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

Tensor fenchel_young(const char* op, const Tensor& logits, const Tensor& targets, float alpha,
                     const RowsKernel& kernel, const FenchelYoungOptions& options) {
  check_float(op, logits, "logits");
  check_device(op, {logits, targets});
  BRIDLE_CHECK(logits.dim() == 2 && logits.size(1) > 0, "{}: logits must be [B, C], got {}", op,
               shape_str(logits.shape()));
  BRIDLE_CHECK(targets.defined() && is_integer(targets.dtype()) && targets.dim() == 1 &&
                   targets.size(0) == logits.size(0),
               "{}: targets must be [{}] int32 or int64 class indices", op, logits.size(0));
  if (targets.dtype() == DType::kInt32)
    return fenchel_young_loss<int32_t>(op, logits, targets, alpha, kernel, options);
  return fenchel_young_loss<int64_t>(op, logits, targets, alpha, kernel, options);
}

}  // namespace

Tensor sparsemax_loss(const Tensor& logits, const Tensor& targets,
                      const FenchelYoungOptions& options) {
  return fenchel_young("sparsemax_loss", logits, targets, 2.0f, cpu::sparsemax_rows, options);
}

Tensor entmax15_loss(const Tensor& logits, const Tensor& targets,
                     const FenchelYoungOptions& options) {
  return fenchel_young("entmax15_loss", logits, targets, 1.5f, cpu::entmax15_rows, options);
}

Tensor entmax_bisect_loss(const Tensor& logits, const Tensor& targets, float alpha,
                          const FenchelYoungOptions& options) {
  BRIDLE_CHECK(alpha > 1.0f && std::isfinite(alpha),
               "entmax_bisect_loss: alpha must be > 1 (alpha = 1 is cross_entropy), got {}", alpha);
  return fenchel_young(
      "entmax_bisect_loss", logits, targets, alpha,
      [alpha](float* out, const float* in, int64_t rows, int64_t n) {
        cpu::entmax_bisect_rows(out, in, rows, n, alpha, 50);
      },
      options);
}

}  // namespace bridle
