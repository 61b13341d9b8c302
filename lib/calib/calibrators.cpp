// Vector / matrix scaling, histogram binning and isotonic calibration; see
// calibrators.h for the definitions and conventions.
//
// Fitting runs plain double-precision loops on the CPU over the held-out data,
// checked once into a FitData. The scaling calibrators minimize their (convex)
// objective with minimize_lbfgs (optim/lbfgs.h); the binning calibrators count.
// forward() of the scaling calibrators is built from ops (mul, add, linear), so it
// is differentiable in the logits; the binning calibrators' forward is a lookup.
#include "calib/calibrators.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/factory.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/softmax.h"

namespace bridle {
namespace {

// forward() of the binning calibrators returns log(max(q, kProbabilityFloor)).
constexpr double kProbabilityFloor = 1e-30;
// sklearn's _make_unique treats x values closer than np.finfo(float64).resolution
// to the first of a run as one value.
constexpr double kSameX = 1e-15;

Tensor on_cpu(const Tensor& t) { return t.device().type == DeviceType::kCPU ? t : t.to(Device{}); }

// Writes a fit's values into a buffer, wherever the module has moved it
// (Module::to): the fits run on the host.
template <typename T>
void store(Tensor& buffer, const std::vector<T>& values) {
  buffer.copy_(from_vector(values, buffer.shape()));
}

// ---------------------------------------------------------------------------
// Input checks and the quantities every calibrator needs.

// Held-out data, checked once: logits [N, C] and labels as int64, on the CPU.
struct FitData {
  int64_t N = 0, C = 0;
  std::vector<float> z;    // [N, C]
  std::vector<int64_t> y;  // [N]
};

FitData check_fit_data(const std::string& who, const Tensor& logits, const Tensor& labels,
                       int64_t C) {
  const char* op = who.c_str();
  check_float(op, logits, "logits");
  BRIDLE_CHECK(logits.dim() == 2 && logits.size(1) == C,
               "{}: logits must be [N, {}] for {} classes, got {}", op, C, C,
               shape_str(logits.shape()));
  BRIDLE_CHECK(logits.size(0) > 0, "{}: cannot fit on empty logits {}", op,
               shape_str(logits.shape()));
  const int64_t N = logits.size(0);
  BRIDLE_CHECK(
      labels.defined() && is_integer(labels.dtype()) && labels.dim() == 1 && labels.size(0) == N,
      "{}: labels must be [{}] int32 or int64 class indices for logits {}, got {}", op, N,
      shape_str(logits.shape()),
      labels.defined() ? fmt::format("{} {}", dtype_name(labels.dtype()), shape_str(labels.shape()))
                       : std::string("none"));
  FitData data;
  data.N = N;
  data.C = C;
  data.z = on_cpu(logits).to_vector();
  data.y = on_cpu(labels).to(DType::kInt64).to_int_vector();
  // (Not check_class_targets from ops/loss_utils.h: it lets an ignore_index through,
  // and every held-out sample needs a real class.)
  for (int64_t i = 0; i < N; ++i)
    BRIDLE_CHECK(data.y[i] >= 0 && data.y[i] < C,
                 "{}: label {} at row {} is out of range for {} classes", op, data.y[i], i, C);
  for (int64_t k = 0; k < N * C; ++k)
    BRIDLE_CHECK(std::isfinite(data.z[k]), "{}: logit {} at row {} is not finite", op, data.z[k],
                 k / C);
  return data;
}

// One row's class probabilities: softmax in double, rounded to float32 (see
// calibrators.h for why). scripts/make_calibrator_fixtures.py does the same
// operations in the same order, so both sides see identical numbers.
void class_probabilities(const float* z, int64_t C, float* p) {
  double max = z[0];
  for (int64_t c = 1; c < C; ++c) max = std::max(max, static_cast<double>(z[c]));
  std::vector<double> e(C);
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) {
    e[c] = std::exp(static_cast<double>(z[c]) - max);
    sum += e[c];
  }
  for (int64_t c = 0; c < C; ++c) p[c] = static_cast<float>(e[c] / sum);
}

// One row's NLL of softmax(a) for label y, and dNLL/da = softmax(a) - onehot(y).
double row_nll(const double* a, int64_t C, int64_t y, double* da) {
  double max = a[0];
  for (int64_t c = 1; c < C; ++c) max = std::max(max, a[c]);
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) {
    da[c] = std::exp(a[c] - max);
    sum += da[c];
  }
  for (int64_t c = 0; c < C; ++c) da[c] /= sum;
  da[y] -= 1.0;
  return max + std::log(sum) - a[y];
}

// The mean NLL of the uncalibrated softmax(logits), in double.
double uncalibrated_nll(const FitData& data) {
  std::vector<double> a(data.C), da(data.C);
  double total = 0.0;
  for (int64_t i = 0; i < data.N; ++i) {
    for (int64_t c = 0; c < data.C; ++c) a[c] = data.z[i * data.C + c];
    total += row_nll(a.data(), data.C, data.y[i], da.data());
  }
  return total / static_cast<double>(data.N);
}

// The mean of -log(max(q_y, floor)) over calibrated probabilities q [N, C].
double calibrated_nll(const std::vector<float>& q, const FitData& data) {
  double total = 0.0;
  for (int64_t i = 0; i < data.N; ++i)
    total -= std::log(std::max<double>(q[i * data.C + data.y[i]], kProbabilityFloor));
  return total / static_cast<double>(data.N);
}

// log(max(q, kProbabilityFloor)) elementwise, in place: softmax of the result is q
// again (q sums to 1), and a class given probability 0 stays finite.
Tensor log_with_floor(Tensor q) {
  float* v = q.data<float>();
  for (int64_t k = 0; k < q.numel(); ++k)
    v[k] = static_cast<float>(std::log(std::max<double>(v[k], kProbabilityFloor)));
  return q;
}

// q / sum(q) for one row of C values, or uniform 1/C when the sum is 0.
void normalize_row(double* q, int64_t C) {
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) sum += q[c];
  for (int64_t c = 0; c < C; ++c) q[c] = sum > 0.0 ? q[c] / sum : 1.0 / static_cast<double>(C);
}

// ---------------------------------------------------------------------------
// Scaling helpers.

// Shifts v to sum to 0: a bias shift every class shares does not change softmax.
void center(std::vector<double>::iterator begin, std::vector<double>::iterator end) {
  const double mean = std::accumulate(begin, end, 0.0) / static_cast<double>(end - begin);
  for (auto it = begin; it != end; ++it) *it -= mean;
}

// ---------------------------------------------------------------------------
// Binning helpers.

// Equal-width bin of a probability: (lower, upper] with the first bin closed at 0,
// and a value within float32 rounding of an edge k / B counts as on it. The same
// rule as equal_width_bin in metrics.cpp, so a calibrator bins like the metrics do.
int64_t equal_width_bin(double value, int64_t B) {
  const double x = value * static_cast<double>(B);
  const double k = std::round(x);
  const double upper = std::abs(x - k) <= k * 0x1p-23 ? k : std::ceil(x);
  return std::clamp<int64_t>(static_cast<int64_t>(upper) - 1, 0, B - 1);
}

// A piecewise-linear function through (x[k], y[k]), k < count, x increasing,
// clipped to [x[0], x[count - 1]] outside: scipy's interp1d, as IsotonicRegression
// applies it (the segment is found like np.searchsorted, side "left").
double interpolate(const float* x, const float* y, int64_t count, double at) {
  if (count == 1) return y[0];
  at = std::clamp(at, static_cast<double>(x[0]), static_cast<double>(x[count - 1]));
  const int64_t first_not_below = std::lower_bound(x, x + count, at) - x;
  const int64_t hi = std::clamp<int64_t>(first_not_below, 1, count - 1), lo = hi - 1;
  const double slope = (static_cast<double>(y[hi]) - y[lo]) / (static_cast<double>(x[hi]) - x[lo]);
  return y[lo] + slope * (at - x[lo]);
}

// One class's isotonic fit: the thresholds (x, y) of IsotonicRegression
// (out_of_bounds="clip") of outcome on x. See calibrators.h for the steps.
struct Thresholds {
  std::vector<float> x, y;
};

Thresholds fit_isotonic(const std::vector<float>& x, const std::vector<char>& outcome) {
  std::vector<int64_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return x[i] < x[j]; });
  // A block of consecutive unique x values with its label sum and sample count;
  // its fitted value is positives / count. Counts are integers, so comparing
  // means by cross-multiplying is exact.
  struct Block {
    double positives = 0.0, count = 0.0;
    float first_x = 0.0f, last_x = 0.0f;
  };
  std::vector<Block> blocks;
  auto mean_not_below = [](const Block& left, const Block& right) {
    return left.positives * right.count >= right.positives * left.count;
  };
  size_t i = 0;
  while (i < order.size()) {
    // Gather one unique x: the run within kSameX of its first value.
    Block point;
    point.first_x = point.last_x = x[order[i]];
    for (; i < order.size() && static_cast<double>(x[order[i]]) - point.first_x < kSameX; ++i) {
      point.positives += outcome[order[i]];
      point.count += 1.0;
    }
    // Pool adjacent violators: merge while the block on the left is not below.
    blocks.push_back(point);
    while (blocks.size() >= 2 && mean_not_below(blocks[blocks.size() - 2], blocks.back())) {
      Block right = blocks.back();
      blocks.pop_back();
      blocks.back().positives += right.positives;
      blocks.back().count += right.count;
      blocks.back().last_x = right.last_x;
    }
  }
  Thresholds out;
  for (const Block& block : blocks) {
    const auto value = static_cast<float>(block.positives / block.count);
    out.x.push_back(block.first_x);
    out.y.push_back(value);
    if (block.last_x != block.first_x) {
      out.x.push_back(block.last_x);
      out.y.push_back(value);
    }
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Calibrator

Calibrator::Calibrator(std::string type_name, int64_t num_classes)
    : Module(std::move(type_name)), num_classes_(num_classes) {
  BRIDLE_CHECK(num_classes >= 1, "{}: num_classes must be >= 1, got {}", this->type_name(),
               num_classes);
}

void Calibrator::check_logits(const Tensor& logits) const {
  check_float(type_name().c_str(), logits, "logits");
  BRIDLE_CHECK(logits.dim() == 2 && logits.size(1) == num_classes_,
               "{}: logits must be [N, {}] for {} classes, got {}", type_name(), num_classes_,
               num_classes_, shape_str(logits.shape()));
}

Tensor Calibrator::calibrated_probabilities(const Tensor& logits) {
  return softmax(forward(logits), 1);
}

// ---------------------------------------------------------------------------
// VectorScaling

VectorScaling::VectorScaling(int64_t num_classes, LbfgsOptions options)
    : Calibrator("VectorScaling", num_classes), options_(options) {
  check_lbfgs_options("VectorScaling", options_);
  weight_ = register_buffer("weight", ones({num_classes}));
  bias_ = register_buffer("bias", zeros({num_classes}));
}

CalibratorFit VectorScaling::fit(const Tensor& logits, const Tensor& labels) {
  const FitData data = check_fit_data("VectorScaling::fit", logits, labels, num_classes());
  const int64_t N = data.N, C = data.C;
  // x = [w (C), b (C)]; a_i = w * z_i + b;
  //   dNLL/dw_c = mean_i (p_ic - [y_i == c]) z_ic,   dNLL/db_c = mean_i (p_ic - [y_i == c]).
  LbfgsObjective nll = [&](const std::vector<double>& x, std::vector<double>& grad) {
    std::fill(grad.begin(), grad.end(), 0.0);
    std::vector<double> a(C), da(C);
    double total = 0.0;
    for (int64_t i = 0; i < N; ++i) {
      const float* z = data.z.data() + i * C;
      for (int64_t c = 0; c < C; ++c) a[c] = x[c] * z[c] + x[C + c];
      total += row_nll(a.data(), C, data.y[i], da.data());
      for (int64_t c = 0; c < C; ++c) {
        grad[c] += da[c] * z[c];
        grad[C + c] += da[c];
      }
    }
    for (double& v : grad) v /= static_cast<double>(N);
    return total / static_cast<double>(N);
  };
  std::vector<double> x0(2 * C, 0.0);
  std::fill(x0.begin(), x0.begin() + C, 1.0);
  CalibratorFit fit;
  fit.nll_before = uncalibrated_nll(data);
  LbfgsResult result = minimize_lbfgs(nll, x0, options_);
  center(result.x.begin() + C, result.x.end());
  fit.nll_after = result.f;
  fit.iterations = result.iterations;
  fit.converged = result.converged;
  store(weight_, std::vector<float>(result.x.begin(), result.x.begin() + C));
  store(bias_, std::vector<float>(result.x.begin() + C, result.x.begin() + 2 * C));
  return fit;
}

Tensor VectorScaling::forward(const Tensor& logits) {
  check_logits(logits);
  return add(mul(logits, weight_), bias_);
}

std::string VectorScaling::extra_repr() const {
  return fmt::format("num_classes={}", num_classes());
}

// ---------------------------------------------------------------------------
// MatrixScaling

MatrixScaling::MatrixScaling(int64_t num_classes, MatrixScalingOptions options)
    : Calibrator("MatrixScaling", num_classes), options_(options) {
  check_lbfgs_options("MatrixScaling", options_.lbfgs);
  BRIDLE_CHECK(options_.off_diagonal_l2 >= 0.0 && options_.bias_l2 >= 0.0,
               "MatrixScaling: off_diagonal_l2 and bias_l2 must be >= 0, got {} and {}",
               options_.off_diagonal_l2, options_.bias_l2);
  Tensor identity = zeros({num_classes, num_classes});
  for (int64_t c = 0; c < num_classes; ++c) identity.data<float>()[c * num_classes + c] = 1.0f;
  weight_ = register_buffer("weight", identity);
  bias_ = register_buffer("bias", zeros({num_classes}));
}

CalibratorFit MatrixScaling::fit(const Tensor& logits, const Tensor& labels) {
  const FitData data = check_fit_data("MatrixScaling::fit", logits, labels, num_classes());
  const int64_t N = data.N, C = data.C;
  // ODIR's weights: lambda / (C (C - 1)) per off-diagonal W_ij^2, mu / C per b_j^2.
  const double off_diagonal =
      C > 1 ? options_.off_diagonal_l2 / static_cast<double>(C * (C - 1)) : 0.0;
  const double on_bias = options_.bias_l2 / static_cast<double>(C);
  auto penalty = [&](const std::vector<double>& x, std::vector<double>* grad) {
    double total = 0.0;
    for (int64_t r = 0; r < C; ++r)
      for (int64_t j = 0; j < C; ++j) {
        if (r == j) continue;
        const double w = x[r * C + j];
        total += off_diagonal * w * w;
        if (grad) (*grad)[r * C + j] += 2.0 * off_diagonal * w;
      }
    for (int64_t j = 0; j < C; ++j) {
      const double b = x[C * C + j];
      total += on_bias * b * b;
      if (grad) (*grad)[C * C + j] += 2.0 * on_bias * b;
    }
    return total;
  };
  // x = [W (C x C, row-major), b (C)]; a_i = W z_i + b;
  //   dNLL/dW_rj = mean_i (p_ir - [y_i == r]) z_ij,   dNLL/db_r = mean_i (p_ir - [y_i == r]).
  auto mean_nll = [&](const std::vector<double>& x, std::vector<double>& grad) {
    std::fill(grad.begin(), grad.end(), 0.0);
    std::vector<double> a(C), da(C);
    double total = 0.0;
    for (int64_t i = 0; i < N; ++i) {
      const float* z = data.z.data() + i * C;
      for (int64_t r = 0; r < C; ++r) {
        double sum = x[C * C + r];
        for (int64_t j = 0; j < C; ++j) sum += x[r * C + j] * z[j];
        a[r] = sum;
      }
      total += row_nll(a.data(), C, data.y[i], da.data());
      for (int64_t r = 0; r < C; ++r) {
        for (int64_t j = 0; j < C; ++j) grad[r * C + j] += da[r] * z[j];
        grad[C * C + r] += da[r];
      }
    }
    for (double& v : grad) v /= static_cast<double>(N);
    return total / static_cast<double>(N);
  };
  LbfgsObjective objective = [&](const std::vector<double>& x, std::vector<double>& grad) {
    const double nll = mean_nll(x, grad);
    return nll + penalty(x, &grad);
  };
  std::vector<double> x0(C * C + C, 0.0);
  for (int64_t c = 0; c < C; ++c) x0[c * C + c] = 1.0;
  CalibratorFit fit;
  fit.nll_before = uncalibrated_nll(data);
  LbfgsResult result = minimize_lbfgs(objective, x0, options_.lbfgs);
  center(result.x.begin() + C * C, result.x.end());
  fit.penalty = penalty(result.x, nullptr);
  std::vector<double> unused(x0.size());
  fit.nll_after = mean_nll(result.x, unused);
  fit.iterations = result.iterations;
  fit.converged = result.converged;
  store(weight_, std::vector<float>(result.x.begin(), result.x.begin() + C * C));
  store(bias_, std::vector<float>(result.x.begin() + C * C, result.x.begin() + C * C + C));
  return fit;
}

Tensor MatrixScaling::forward(const Tensor& logits) {
  check_logits(logits);
  return linear(logits, weight_, bias_);
}

std::string MatrixScaling::extra_repr() const {
  return fmt::format("num_classes={}, off_diagonal_l2={}, bias_l2={}", num_classes(),
                     options_.off_diagonal_l2, options_.bias_l2);
}

// ---------------------------------------------------------------------------
// HistogramBinning

HistogramBinning::HistogramBinning(int64_t num_classes, int64_t num_bins)
    : Calibrator("HistogramBinning", num_classes), num_bins_(num_bins) {
  BRIDLE_CHECK(num_bins >= 1, "HistogramBinning: num_bins must be >= 1, got {}", num_bins);
  Tensor centres = Tensor::empty({num_classes, num_bins});
  for (int64_t c = 0; c < num_classes; ++c)
    for (int64_t b = 0; b < num_bins; ++b)
      centres.data<float>()[c * num_bins + b] =
          static_cast<float>((static_cast<double>(b) + 0.5) / static_cast<double>(num_bins));
  bin_value_ = register_buffer("bin_value", centres);
  bin_count_ = register_buffer("bin_count", zeros({num_classes, num_bins}, kInt64));
}

bool HistogramBinning::fitted() const {
  const std::vector<int64_t> count = on_cpu(bin_count_).to_int_vector();
  return std::any_of(count.begin(), count.end(), [](int64_t n) { return n > 0; });
}

CalibratorFit HistogramBinning::fit(const Tensor& logits, const Tensor& labels) {
  const FitData data = check_fit_data("HistogramBinning::fit", logits, labels, num_classes());
  const int64_t N = data.N, C = data.C, B = num_bins_;
  std::vector<int64_t> count(C * B, 0), positives(C * B, 0);
  std::vector<float> p(C);
  for (int64_t i = 0; i < N; ++i) {
    class_probabilities(data.z.data() + i * C, C, p.data());
    for (int64_t c = 0; c < C; ++c) {
      const int64_t bin = c * B + equal_width_bin(p[c], B);
      ++count[bin];
      positives[bin] += data.y[i] == c;
    }
  }
  std::vector<float> value(C * B);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t k = c * B + b;
      value[k] = count[k] > 0 ? static_cast<float>(static_cast<double>(positives[k]) / count[k])
                              : static_cast<float>((b + 0.5) / static_cast<double>(B));
    }
  store(bin_count_, count);
  store(bin_value_, value);
  CalibratorFit fit;
  fit.nll_before = uncalibrated_nll(data);
  fit.nll_after = calibrated_nll(calibrated_probabilities(logits).to_vector(), data);
  return fit;
}

Tensor HistogramBinning::calibrated_probabilities(const Tensor& logits) {
  check_logits(logits);
  BRIDLE_CHECK(fitted(), "HistogramBinning: not fitted; call fit(logits, labels) first");
  const int64_t N = logits.size(0), C = num_classes(), B = num_bins_;
  const std::vector<float> z = on_cpu(logits).to_vector();
  const std::vector<float> value = on_cpu(bin_value_).to_vector();
  Tensor out = Tensor::empty({N, C});
  std::vector<float> p(C);
  std::vector<double> q(C);
  for (int64_t i = 0; i < N; ++i) {
    class_probabilities(z.data() + i * C, C, p.data());
    for (int64_t c = 0; c < C; ++c) q[c] = value[c * B + equal_width_bin(p[c], B)];
    normalize_row(q.data(), C);
    for (int64_t c = 0; c < C; ++c) out.data<float>()[i * C + c] = static_cast<float>(q[c]);
  }
  return out.to(logits.device());
}

Tensor HistogramBinning::forward(const Tensor& logits) {
  return log_with_floor(calibrated_probabilities(logits));
}

std::string HistogramBinning::extra_repr() const {
  return fmt::format("num_classes={}, num_bins={}, fitted={}", num_classes(), num_bins_, fitted());
}

// ---------------------------------------------------------------------------
// IsotonicCalibration

IsotonicCalibration::IsotonicCalibration(int64_t num_classes, int64_t max_thresholds)
    : Calibrator("IsotonicCalibration", num_classes), max_thresholds_(max_thresholds) {
  BRIDLE_CHECK(max_thresholds >= 1, "IsotonicCalibration: max_thresholds must be >= 1, got {}",
               max_thresholds);
  threshold_x_ = register_buffer("threshold_x", zeros({num_classes, max_thresholds}));
  threshold_y_ = register_buffer("threshold_y", zeros({num_classes, max_thresholds}));
  threshold_count_ = register_buffer("threshold_count", zeros({num_classes}, kInt64));
}

bool IsotonicCalibration::fitted() const {
  return on_cpu(threshold_count_).to_int_vector()[0] > 0;  // fit sets every class's count
}

CalibratorFit IsotonicCalibration::fit(const Tensor& logits, const Tensor& labels) {
  const FitData data = check_fit_data("IsotonicCalibration::fit", logits, labels, num_classes());
  const int64_t N = data.N, C = data.C;
  std::vector<float> p(N * C);
  for (int64_t i = 0; i < N; ++i) class_probabilities(data.z.data() + i * C, C, p.data() + i * C);
  // Fit every class before writing any buffer: a fit that throws changes nothing.
  std::vector<Thresholds> per_class(C);
  std::vector<float> x(N);
  std::vector<char> outcome(N);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < N; ++i) {
      x[i] = p[i * C + c];
      outcome[i] = data.y[i] == c;
    }
    per_class[c] = fit_isotonic(x, outcome);
    const auto count = static_cast<int64_t>(per_class[c].x.size());
    BRIDLE_CHECK(count <= max_thresholds_,
                 "IsotonicCalibration::fit: class {} needs {} thresholds, more than "
                 "max_thresholds = {}; build the calibrator with max_thresholds >= {}",
                 c, count, max_thresholds_, count);
  }
  std::vector<float> tx(C * max_thresholds_, 0.0f), ty(C * max_thresholds_, 0.0f);
  std::vector<int64_t> count(C);
  for (int64_t c = 0; c < C; ++c) {
    const Thresholds& t = per_class[c];
    std::copy(t.x.begin(), t.x.end(), tx.begin() + c * max_thresholds_);
    std::copy(t.y.begin(), t.y.end(), ty.begin() + c * max_thresholds_);
    count[c] = static_cast<int64_t>(t.x.size());
  }
  store(threshold_x_, tx);
  store(threshold_y_, ty);
  store(threshold_count_, count);
  CalibratorFit fit;
  fit.nll_before = uncalibrated_nll(data);
  fit.nll_after = calibrated_nll(calibrated_probabilities(logits).to_vector(), data);
  return fit;
}

Tensor IsotonicCalibration::calibrated_probabilities(const Tensor& logits) {
  check_logits(logits);
  BRIDLE_CHECK(fitted(), "IsotonicCalibration: not fitted; call fit(logits, labels) first");
  const int64_t N = logits.size(0), C = num_classes(), K = max_thresholds_;
  const std::vector<float> z = on_cpu(logits).to_vector();
  const std::vector<float> tx = on_cpu(threshold_x_).to_vector();
  const std::vector<float> ty = on_cpu(threshold_y_).to_vector();
  const std::vector<int64_t> count = on_cpu(threshold_count_).to_int_vector();
  Tensor out = Tensor::empty({N, C});
  std::vector<float> p(C);
  std::vector<double> q(C);
  for (int64_t i = 0; i < N; ++i) {
    class_probabilities(z.data() + i * C, C, p.data());
    for (int64_t c = 0; c < C; ++c)
      q[c] = interpolate(tx.data() + c * K, ty.data() + c * K, count[c], p[c]);
    normalize_row(q.data(), C);
    for (int64_t c = 0; c < C; ++c) out.data<float>()[i * C + c] = static_cast<float>(q[c]);
  }
  return out.to(logits.device());
}

Tensor IsotonicCalibration::forward(const Tensor& logits) {
  return log_with_floor(calibrated_probabilities(logits));
}

std::string IsotonicCalibration::extra_repr() const {
  return fmt::format("num_classes={}, max_thresholds={}, fitted={}", num_classes(), max_thresholds_,
                     fitted());
}

}  // namespace bridle
