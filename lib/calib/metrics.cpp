// Calibration metrics (see metrics.h for the definitions and bin conventions).
//
// Every public function validates its inputs once into a Samples struct (probs
// as float, labels as int64, on the CPU) and then runs plain double loops. The
// fixture test checks them against an independent numpy implementation
// (scripts/make_calibration_fixtures.py).
#include "calib/metrics.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>

#include "autograd/node.h"
#include "core/error.h"
#include "ops/op_utils.h"
#include "ops/softmax.h"

namespace bridle {
namespace {

constexpr double kRowSumTolerance = 1e-3;
constexpr double kNllFloor = 1e-12;

struct Samples {
  int64_t N = 0, C = 0;
  std::vector<float> p;       // [N, C]
  std::vector<int64_t> y;     // [N]
  std::vector<double> conf;   // [N] top probability
  std::vector<char> correct;  // [N] argmax == label
};

Tensor on_cpu(const Tensor& t) { return t.device().type == DeviceType::kCPU ? t : t.to(Device{}); }

Samples check_samples(const char* fn, const Tensor& probs, const Tensor& labels) {
  check_float(fn, probs, "probs");
  BRIDLE_CHECK(probs.dim() == 2, "{}: probs must be [N, C], got {}", fn, shape_str(probs.shape()));
  const int64_t N = probs.shape()[0], C = probs.shape()[1];
  BRIDLE_CHECK(N > 0 && C > 0, "{}: probs {} is empty", fn, shape_str(probs.shape()));
  BRIDLE_CHECK(labels.defined(), "{}: labels are undefined", fn);
  BRIDLE_CHECK(labels.dtype() == DType::kInt32 || labels.dtype() == DType::kInt64,
               "{}: labels must be int32 or int64 class indices, got {}", fn,
               dtype_name(labels.dtype()));
  BRIDLE_CHECK(labels.shape() == Shape{N}, "{}: labels must be [{}] for probs {}, got {}", fn, N,
               shape_str(probs.shape()), shape_str(labels.shape()));
  Samples s;
  s.N = N;
  s.C = C;
  s.p = on_cpu(probs).to_vector();
  Tensor y = on_cpu(labels).to(DType::kInt64);
  s.y.assign(y.data<int64_t>(), y.data<int64_t>() + N);
  s.conf.resize(N);
  s.correct.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    const float* row = s.p.data() + n * C;
    double sum = 0.0;
    int64_t argmax = 0;
    for (int64_t c = 0; c < C; ++c) {
      BRIDLE_CHECK(row[c] >= 0.0f && row[c] <= 1.0f,
                   "{}: probs row {} has p[{}] = {}, outside [0, 1] (pass probabilities, e.g. "
                   "probabilities_from_logits(logits), not logits)",
                   fn, n, c, row[c]);
      sum += row[c];
      if (row[c] > row[argmax]) argmax = c;
    }
    BRIDLE_CHECK(std::abs(sum - 1.0) <= kRowSumTolerance,
                 "{}: probs row {} sums to {}, not 1 (within {})", fn, n, sum, kRowSumTolerance);
    const int64_t label = s.y[n];
    BRIDLE_CHECK(label >= 0 && label < C, "{}: label {} of row {} is outside [0, {})", fn, label, n,
                 C);
    s.conf[n] = row[argmax];
    s.correct[n] = argmax == label;
  }
  return s;
}

void check_options(const char* fn, const CalibrationOptions& options) {
  BRIDLE_CHECK(options.num_bins >= 1, "{}: num_bins must be >= 1, got {}", fn, options.num_bins);
  BRIDLE_CHECK(!options.debiased || options.norm == Norm::kL2,
               "{}: debiased is Kumar et al.'s L2 estimator; set norm = Norm::kL2 (got {})", fn,
               options.norm == Norm::kL1 ? "kL1" : "kMax");
}

// (lower, upper] bins with the first closed at 0; a value within float32 rounding
// of an edge k / B counts as on it (see metrics.h).
int64_t equal_width_bin(double value, int64_t B) {
  const double x = value * static_cast<double>(B);
  const double k = std::round(x);
  const double upper = std::abs(x - k) <= k * 0x1p-23 ? k : std::ceil(x);
  return std::clamp<int64_t>(static_cast<int64_t>(upper) - 1, 0, B - 1);
}

// Bins value[n] against outcome[n] (1 correct / 0 not).
std::vector<CalibrationBin> make_bins(const std::vector<double>& value,
                                      const std::vector<char>& outcome, int64_t B,
                                      Binning binning) {
  const auto N = static_cast<int64_t>(value.size());
  std::vector<CalibrationBin> bins(B);
  std::vector<double> value_sum(B, 0.0), outcome_sum(B, 0.0);
  if (binning == Binning::kEqualWidth) {
    for (int64_t b = 0; b < B; ++b) {
      bins[b].lower = static_cast<double>(b) / static_cast<double>(B);
      bins[b].upper = static_cast<double>(b + 1) / static_cast<double>(B);
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t b = equal_width_bin(value[n], B);
      ++bins[b].count;
      value_sum[b] += value[n];
      outcome_sum[b] += outcome[n];
    }
  } else {
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t i, int64_t j) { return value[i] < value[j]; });
    const int64_t base = N / B, extra = N % B;  // numpy.array_split
    int64_t start = 0;
    double lower = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t count = base + (b < extra ? 1 : 0);
      bins[b].lower = lower;
      bins[b].upper = count > 0 ? value[order[start + count - 1]] : lower;
      bins[b].count = count;
      for (int64_t i = start; i < start + count; ++i) {
        value_sum[b] += value[order[i]];
        outcome_sum[b] += outcome[order[i]];
      }
      start += count;
      lower = bins[b].upper;
    }
  }
  for (int64_t b = 0; b < B; ++b) {
    if (bins[b].count == 0) continue;
    const auto n = static_cast<double>(bins[b].count);
    bins[b].confidence = value_sum[b] / n;
    bins[b].accuracy = outcome_sum[b] / n;
    bins[b].gap = bins[b].accuracy - bins[b].confidence;
  }
  return bins;
}

double calibration_error(const std::vector<CalibrationBin>& bins, int64_t N, Norm norm,
                         bool debiased) {
  double total = 0.0;
  for (const CalibrationBin& bin : bins) {
    if (bin.count == 0) continue;
    const double weight = static_cast<double>(bin.count) / static_cast<double>(N);
    const double gap = std::abs(bin.gap);
    if (norm == Norm::kL1) {
      total += weight * gap;
    } else if (norm == Norm::kMax) {
      total = std::max(total, gap);
    } else if (!debiased) {
      total += weight * gap * gap;
    } else if (bin.count >= 2) {  // the package's unbiased_square_ce: smaller bins give 0
      const double a = bin.accuracy;
      total += weight * (gap * gap - a * (1.0 - a) / static_cast<double>(bin.count - 1));
    }
  }
  return norm == Norm::kL2 ? std::sqrt(std::max(0.0, total)) : total;
}

std::vector<CalibrationBin> top_label_bins(const Samples& s, const CalibrationOptions& options) {
  return make_bins(s.conf, s.correct, options.num_bins, options.binning);
}

double classwise_error(const Samples& s, int64_t B) {
  std::vector<double> value(s.N);
  std::vector<char> outcome(s.N);
  double total = 0.0;
  for (int64_t c = 0; c < s.C; ++c) {
    for (int64_t n = 0; n < s.N; ++n) {
      value[n] = s.p[n * s.C + c];
      outcome[n] = s.y[n] == c;
    }
    total += calibration_error(make_bins(value, outcome, B, Binning::kEqualWidth), s.N, Norm::kL1,
                               false);
  }
  return total / static_cast<double>(s.C);
}

double brier(const Samples& s) {
  double total = 0.0;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c) {
      const double d = s.p[n * s.C + c] - (c == s.y[n] ? 1.0 : 0.0);
      total += d * d;
    }
  return total / static_cast<double>(s.N);
}

double nll(const Samples& s) {
  double total = 0.0;
  for (int64_t n = 0; n < s.N; ++n)
    total -= std::log(std::max<double>(s.p[n * s.C + s.y[n]], kNllFloor));
  return total / static_cast<double>(s.N);
}

double accuracy(const Samples& s) {
  double correct = 0.0;
  for (char c : s.correct) correct += c;
  return correct / static_cast<double>(s.N);
}

}  // namespace

Tensor probabilities_from_logits(const Tensor& logits) {
  check_float("probabilities_from_logits", logits, "logits");
  BRIDLE_CHECK(logits.dim() == 2, "probabilities_from_logits: logits must be [N, C], got {}",
               shape_str(logits.shape()));
  NoGradGuard no_grad;
  return softmax(logits.detach(), 1);
}

std::vector<CalibrationBin> reliability_bins(const Tensor& probs, const Tensor& labels,
                                             const CalibrationOptions& options) {
  check_options("reliability_bins", options);
  return top_label_bins(check_samples("reliability_bins", probs, labels), options);
}

double expected_calibration_error(const Tensor& probs, const Tensor& labels,
                                  const CalibrationOptions& options) {
  check_options("expected_calibration_error", options);
  Samples s = check_samples("expected_calibration_error", probs, labels);
  return calibration_error(top_label_bins(s, options), s.N, options.norm, options.debiased);
}

double max_calibration_error(const Tensor& probs, const Tensor& labels,
                             const CalibrationOptions& options) {
  CalibrationOptions max_options = options;
  max_options.norm = Norm::kMax;
  check_options("max_calibration_error", max_options);
  Samples s = check_samples("max_calibration_error", probs, labels);
  return calibration_error(top_label_bins(s, max_options), s.N, Norm::kMax, false);
}

double classwise_calibration_error(const Tensor& probs, const Tensor& labels,
                                   const CalibrationOptions& options) {
  BRIDLE_CHECK(options.num_bins >= 1, "classwise_calibration_error: num_bins must be >= 1, got {}",
               options.num_bins);
  return classwise_error(check_samples("classwise_calibration_error", probs, labels),
                         options.num_bins);
}

double brier_score(const Tensor& probs, const Tensor& labels) {
  return brier(check_samples("brier_score", probs, labels));
}

double negative_log_likelihood(const Tensor& probs, const Tensor& labels) {
  return nll(check_samples("negative_log_likelihood", probs, labels));
}

double top1_accuracy(const Tensor& probs, const Tensor& labels) {
  return accuracy(check_samples("top1_accuracy", probs, labels));
}

UncertaintyReport flag_uncertain(const Tensor& probs, const Tensor& labels, double threshold) {
  BRIDLE_CHECK(threshold >= 0.0 && threshold <= 1.0,
               "flag_uncertain: threshold must be in [0, 1], got {}", threshold);
  Samples s = check_samples("flag_uncertain", probs, labels);
  UncertaintyReport report;
  report.threshold = threshold;
  double flagged_correct = 0.0, unflagged_correct = 0.0;
  for (int64_t n = 0; n < s.N; ++n) {
    if (s.conf[n] < threshold) {
      ++report.flagged;
      flagged_correct += s.correct[n];
    } else {
      ++report.unflagged;
      unflagged_correct += s.correct[n];
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  report.flagged_fraction = static_cast<double>(report.flagged) / static_cast<double>(s.N);
  report.flagged_accuracy =
      report.flagged > 0 ? flagged_correct / static_cast<double>(report.flagged) : nan;
  report.unflagged_accuracy =
      report.unflagged > 0 ? unflagged_correct / static_cast<double>(report.unflagged) : nan;
  return report;
}

CalibrationReport calibration_report(const Tensor& probs, const Tensor& labels,
                                     const CalibrationOptions& options) {
  check_options("calibration_report", options);
  Samples s = check_samples("calibration_report", probs, labels);
  CalibrationReport report;
  report.accuracy = accuracy(s);
  report.nll = nll(s);
  report.brier = brier(s);
  report.bins = top_label_bins(s, options);
  report.ece = calibration_error(report.bins, s.N, options.norm, options.debiased);
  report.mce = calibration_error(report.bins, s.N, Norm::kMax, false);
  report.classwise_ece = classwise_error(s, options.num_bins);
  return report;
}

std::string format_bins_table(const std::vector<CalibrationBin>& bins) {
  std::string out = fmt::format("{:>4} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}\n", "bin", "lower",
                                "upper", "count", "confidence", "accuracy", "gap");
  for (size_t b = 0; b < bins.size(); ++b) {
    const CalibrationBin& bin = bins[b];
    out += fmt::format("{:>4} {:>8.4f} {:>8.4f} {:>8} {:>10.4f} {:>10.4f} {:>+10.4f}\n", b,
                       bin.lower, bin.upper, bin.count, bin.confidence, bin.accuracy, bin.gap);
  }
  return out;
}

void write_bins_csv(const std::string& path, const std::vector<CalibrationBin>& bins) {
  std::ofstream out(path);
  BRIDLE_CHECK(out.good(), "write_bins_csv: cannot open '{}' for writing", path);
  out << "bin,lower,upper,count,confidence,accuracy,gap\n";
  for (size_t b = 0; b < bins.size(); ++b) {
    const CalibrationBin& bin = bins[b];
    out << fmt::format("{},{},{},{},{},{},{}\n", b, bin.lower, bin.upper, bin.count, bin.confidence,
                       bin.accuracy, bin.gap);
  }
  out.close();
  BRIDLE_CHECK(!out.fail(), "write_bins_csv: writing '{}' failed", path);
}

}  // namespace bridle
