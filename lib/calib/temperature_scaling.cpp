#include "calib/temperature_scaling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/factory.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"

namespace bridle {

namespace {

constexpr double kMinLogT = -6.907755278982137;  // log(1e-3)
constexpr double kMaxLogT = 6.907755278982137;   // log(1e3)

// The held-out data, checked once: logits [N, C] and labels as int64, on the
// host (the fit is a scalar search over them, wherever they were computed).
struct HeldOut {
  Tensor host_logits;
  const float* z = nullptr;
  std::vector<int64_t> y;
  int64_t N = 0, C = 0;
};

HeldOut check_held_out(const char* op, const Tensor& logits, const Tensor& labels) {
  check_float(op, logits, "logits");
  BRIDLE_CHECK(logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0,
               "{}: logits must be [N, C] with N, C > 0, got {}", op, shape_str(logits.shape()));
  BRIDLE_CHECK(labels.defined() && is_integer(labels.dtype()) && labels.dim() == 1 &&
                   labels.size(0) == logits.size(0),
               "{}: labels must be [{}] int32 or int64 class indices for logits {}, got {}", op,
               logits.size(0), shape_str(logits.shape()),
               labels.defined() ? shape_str(labels.shape()) : "none");
  HeldOut data;
  data.N = logits.size(0);
  data.C = logits.size(1);
  data.host_logits = logits.cpu();
  data.z = data.host_logits.data<float>();
  Tensor y = labels.cpu().to(DType::kInt64);
  data.y.assign(y.data<int64_t>(), y.data<int64_t>() + data.N);
  for (int64_t i = 0; i < data.N; ++i)
    BRIDLE_CHECK(data.y[i] >= 0 && data.y[i] < data.C,
                 "{}: label {} at row {} is out of range for {} classes", op, data.y[i], i, data.C);
  for (int64_t k = 0; k < data.N * data.C; ++k)
    BRIDLE_CHECK(std::isfinite(data.z[k]), "{}: logit {} at row {} is not finite", op, data.z[k],
                 k / data.C);
  return data;
}

// f(b) = mean NLL of softmax(b z), and its first two derivatives in b.
struct NllAt {
  double f = 0.0, df = 0.0, d2f = 0.0;
};

NllAt nll_at(const HeldOut& data, double b) {
  NllAt out;
  for (int64_t i = 0; i < data.N; ++i) {
    const float* z = data.z + i * data.C;
    double max = b * z[0];
    for (int64_t j = 1; j < data.C; ++j) max = std::max(max, b * z[j]);
    double sum = 0.0, mean_z = 0.0, mean_z2 = 0.0;  // sums of e, e z, e z^2
    for (int64_t j = 0; j < data.C; ++j) {
      const double e = std::exp(b * z[j] - max);
      sum += e;
      mean_z += e * z[j];
      mean_z2 += e * z[j] * z[j];
    }
    mean_z /= sum;
    mean_z2 /= sum;
    out.f += max + std::log(sum) - b * z[data.y[i]];
    out.df += mean_z - z[data.y[i]];
    out.d2f += std::max(0.0, mean_z2 - mean_z * mean_z);
  }
  const double n = static_cast<double>(data.N);
  out.f /= n;
  out.df /= n;
  out.d2f /= n;
  return out;
}

// The same in u = log T, b = e^-u: df/du = -b f'(b), d2f/du2 = b^2 f''(b) + b f'(b).
NllAt nll_in_log_t(const HeldOut& data, double u) {
  const double b = std::exp(-u);
  NllAt in_b = nll_at(data, b);
  return {in_b.f, -b * in_b.df, b * b * in_b.d2f + b * in_b.df};
}

}  // namespace

double temperature_nll(const Tensor& logits, const Tensor& labels, double temperature) {
  BRIDLE_CHECK(temperature > 0.0 && std::isfinite(temperature),
               "temperature_nll: temperature must be positive and finite, got {}", temperature);
  return nll_at(check_held_out("temperature_nll", logits, labels), 1.0 / temperature).f;
}

TemperatureFit fit_temperature(const Tensor& logits, const Tensor& labels,
                               const TemperatureFitOptions& options) {
  const HeldOut data = check_held_out("fit_temperature", logits, labels);
  TemperatureFit fit;
  double u = 0.0;  // log T
  NllAt at = nll_in_log_t(data, u);
  fit.nll_before = at.f;
  for (; fit.iterations < options.max_iterations; ++fit.iterations) {
    if (std::abs(at.df) < options.gradient_tolerance) {
      fit.converged = true;
      break;
    }
    // Newton where the curvature is positive, else a plain gradient step.
    double step = at.d2f > 1e-12 ? -at.df / at.d2f : -at.df;
    step = std::clamp(step, -1.0, 1.0);  // T changes by at most e per iteration
    double next_u = u;
    NllAt next = at;
    bool lowered = false;
    for (int halving = 0; halving < 40; ++halving, step *= 0.5) {
      next_u = std::clamp(u + step, kMinLogT, kMaxLogT);
      next = nll_in_log_t(data, next_u);
      if (next.f <= at.f) {
        lowered = true;
        break;
      }
    }
    if (!lowered || next_u == u) {  // no lower point along the step: a minimum (or a bound)
      fit.converged = std::abs(at.df) < 1e-6 && u > kMinLogT && u < kMaxLogT;
      break;
    }
    u = next_u;
    at = next;
  }
  fit.temperature = std::exp(u);
  fit.nll_after = at.f;
  return fit;
}

TemperatureScaling::TemperatureScaling() : Module("TemperatureScaling") {
  temperature_ = register_buffer("temperature", full({1}, 1.0));
}

TemperatureFit TemperatureScaling::fit(const Tensor& logits, const Tensor& labels,
                                       const TemperatureFitOptions& options) {
  TemperatureFit result = fit_temperature(logits, labels, options);
  set_temperature(result.temperature);
  return result;
}

Tensor TemperatureScaling::forward(const Tensor& logits) {
  return logits * static_cast<float>(1.0 / temperature());
}

double TemperatureScaling::temperature() const { return temperature_.item(); }

void TemperatureScaling::set_temperature(double temperature) {
  BRIDLE_CHECK(temperature > 0.0 && std::isfinite(temperature),
               "TemperatureScaling: temperature must be positive and finite, got {}", temperature);
  temperature_.fill_(static_cast<float>(temperature));  // on the host or the GPU
}

std::string TemperatureScaling::extra_repr() const {
  return fmt::format("temperature={:.4f}", temperature());
}

}  // namespace bridle
