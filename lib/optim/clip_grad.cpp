// Gradient clipping: the norm and clamp kernels and the two functions; see clip_grad.h.
#include "optim/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#ifdef BRIDLE_WITH_CUDA
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#endif

namespace bridle {
namespace cpu {

void grad_norm_partials(const float* g, int64_t n, double p, double inv_scale, double* partials) {
  const int64_t blocks = (n + kNormBlock - 1) / kNormBlock;
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kNormBlock, end = std::min(n, begin + kNormBlock);
    double acc = 0;
    if (std::isinf(p)) {
      bool nan = false;
      for (int64_t i = begin; i < end; ++i) {
        const double a = std::fabs(static_cast<double>(g[i]));
        acc = a > acc ? a : acc;
        nan = nan || std::isnan(a);
      }
      if (nan) acc = std::numeric_limits<double>::quiet_NaN();
    } else if (p == 1.0) {
      for (int64_t i = begin; i < end; ++i) acc += std::fabs(static_cast<double>(g[i]));
    } else if (p == 2.0) {
      for (int64_t i = begin; i < end; ++i) acc += static_cast<double>(g[i]) * g[i];
    } else {
      for (int64_t i = begin; i < end; ++i)
        acc += std::pow(std::fabs(static_cast<double>(g[i])) * inv_scale, p);
    }
    partials[b] = acc;
  }
}

void scale_(float* x, int64_t n, float factor) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

void clamp_(float* x, int64_t n, float lo, float hi) {
  // Written so that NaN falls through both comparisons and stays NaN.
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
}

}  // namespace cpu

namespace {

// The gradients of the parameters that have one.
std::vector<Tensor> grads_of(const std::vector<Tensor>& params, const char* op) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    BRIDLE_CHECK(params[i].defined(), "{}: parameter {} is an undefined tensor", op, i);
    Tensor g = params[i].grad();
    if (!g.defined()) continue;
    BRIDLE_CHECK(g.dtype() == kFloat32,
                 "{}: the gradient of parameter {} is {}; only float32 gradients are supported", op,
                 i, dtype_name(g.dtype()));
    grads.push_back(std::move(g));
  }
  return grads;
}

// g's block partials (cpu::grad_norm_partials), computed on g's device. On a GPU
// they land in an int64 tensor of as many 8-byte slots (there is no float64
// tensor) and come back in one copy.
void partials_of(const Tensor& g, double p, double inv_scale, std::vector<double>& partials) {
  const int64_t n = g.numel();
  partials.assign((n + cpu::kNormBlock - 1) / cpu::kNormBlock, 0.0);
  if (g.device().is_cpu()) {
    cpu::grad_norm_partials(g.data<float>(), n, p, inv_scale, partials.data());
    return;
  }
#ifdef BRIDLE_WITH_CUDA
  static_assert(sizeof(double) == sizeof(int64_t));
  cuda::DeviceGuard guard(g.device());
  Tensor slots = Tensor::empty({static_cast<int64_t>(partials.size())},
                               TensorOptions(kInt64).with_device(g.device()));
  cuda::grad_norm_partials(g.data<float>(), n, cpu::kNormBlock, p, inv_scale,
                           reinterpret_cast<double*>(slots.data<int64_t>()));
  const Tensor host = slots.cpu();
  std::memcpy(partials.data(), host.data<int64_t>(), partials.size() * sizeof(double));
#endif
}

void scale_(Tensor& g, float factor) {
  if (g.device().is_cpu()) return cpu::scale_(g.data<float>(), g.numel(), factor);
#ifdef BRIDLE_WITH_CUDA
  cuda::DeviceGuard guard(g.device());
  cuda::scale_(g.data<float>(), g.numel(), factor);
#endif
}

void clamp_(Tensor& g, float lo, float hi) {
  if (g.device().is_cpu()) return cpu::clamp_(g.data<float>(), g.numel(), lo, hi);
#ifdef BRIDLE_WITH_CUDA
  cuda::DeviceGuard guard(g.device());
  cuda::clamp_(g.data<float>(), g.numel(), lo, hi);
#endif
}

// Over all gradients: max |g| (NaN if any is NaN) for p = inf, otherwise the sum
// of (|g| * inv_scale)^p. Block partials are combined in order: deterministic.
double reduce(const std::vector<Tensor>& grads, double p, double inv_scale) {
  const bool is_max = std::isinf(p);
  double acc = 0;
  std::vector<double> partials;
  for (const Tensor& g : grads) {
    partials_of(g, p, inv_scale, partials);
    for (double s : partials) acc = !is_max ? acc + s : (std::isnan(s) || s > acc) ? s : acc;
  }
  return acc;
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  BRIDLE_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got {}", max_norm);
  BRIDLE_CHECK(norm_type > 0, "clip_grad_norm: norm_type must be > 0 (or infinity), got {}",
               norm_type);
  std::vector<Tensor> grads = grads_of(params, "clip_grad_norm");
  if (grads.empty()) return 0.0;

  double total;
  if (std::isinf(norm_type)) {
    total = reduce(grads, norm_type, 1.0);
  } else if (norm_type == 1.0) {
    total = reduce(grads, 1.0, 1.0);
  } else if (norm_type == 2.0) {
    total = std::sqrt(reduce(grads, 2.0, 1.0));
  } else {
    // ||g||_p = m * ||g / m||_p with m = max |g|: no overflow or underflow of |g|^p.
    const double m = reduce(grads, std::numeric_limits<double>::infinity(), 1.0);
    total = (m > 0 && std::isfinite(m))
                ? m * std::pow(reduce(grads, norm_type, 1.0 / m), 1.0 / norm_type)
                : m;  // 0, inf or NaN
  }
  BRIDLE_CHECK(!error_if_nonfinite || std::isfinite(total),
               "clip_grad_norm: the total {}-norm of the gradients is {}, so they cannot be "
               "clipped (error_if_nonfinite is set)",
               norm_type, total);

  // As PyTorch: scale by min(1, coef); a NaN coef (NaN total) makes the grads NaN.
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0 || std::isnan(coef))
    for (Tensor& g : grads) scale_(g, static_cast<float>(coef));
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  BRIDLE_CHECK(clip_value >= 0, "clip_grad_value: clip_value must be >= 0, got {}", clip_value);
  // Beyond float's range every float32 value is inside [-clip_value, clip_value].
  const float c = clip_value > std::numeric_limits<float>::max()
                      ? std::numeric_limits<float>::infinity()
                      : static_cast<float>(clip_value);
  for (Tensor& g : grads_of(params, "clip_grad_value")) clamp_(g, -c, c);
}

}  // namespace bridle
