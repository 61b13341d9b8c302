// Post-hoc calibrators beyond temperature scaling (calib/temperature_scaling.h):
//   VectorScaling        z' = w * z + b, w, b in R^C         (Guo et al. 2017, section 4.2)
//   MatrixScaling        z' = W z + b, W in R^{C x C}        (Guo et al. 2017; ODIR regularisation
//                                                             from Kull et al. 2019)
//   HistogramBinning     per-class equal-width bins          (Zadrozny & Elkan 2001)
//   IsotonicCalibration  per-class isotonic regression       (Zadrozny & Elkan 2002), as
//                                                             scikit-learn's CalibratedClassifierCV
//                                                             (method="isotonic")
//
// Shapes (letters fixed for this file): N samples, C classes, B bins, K thresholds.
//   logits [N, C] float32, collected once (in eval mode) on held-out data;
//   labels [N] int32/int64 in [0, C).
//
// Every calibrator is a Module built for C classes. fit(logits, labels) fits it on
// held-out data; forward(logits) returns [N, C] whose softmax is the calibrated
// probability, so it drops in wherever logits go (cross_entropy, argmax, softmax):
//   - VectorScaling and MatrixScaling return calibrated *logits*, built from ops, so
//     gradients flow back to the logits (not to w, W, b: they are buffers);
//   - HistogramBinning and IsotonicCalibration return calibrated *log-probabilities*
//     log(max(q, 1e-30)), q the calibrated distribution: the floor keeps a class the
//     calibrator gives 0 finite (softmax gives it 1e-30, not 0). They are lookups,
//     not differentiable: the output has no autograd history.
// calibrated_probabilities(logits) returns the probabilities themselves (for the
// binning calibrators without the log / exp round trip).
//
// The class probability the binning calibrators bin or regress on is
// p_c = softmax(z)_c computed in double and rounded to float32: the same numbers
// scripts/make_calibrator_fixtures.py hands to scikit-learn, and the isotonic
// thresholds are then exactly representable in the float32 buffers.
//
// All fitted state lives in buffers whose shapes are fixed by the constructor, so a
// model that registers a calibrator as a child saves and restores it with
// io/checkpoint.h (load into a calibrator built with the same arguments).
// Before fit, VectorScaling and MatrixScaling are the identity (w = 1, W = I, b = 0,
// like TemperatureScaling at T = 1); HistogramBinning and IsotonicCalibration have
// no identity state, and their forward throws "not fitted".
//
// Bad inputs (labels out of range, shape mismatches, empty or non-finite held-out
// data, logits with the wrong number of classes) throw bridle::Error naming the
// calibrator, the shape or the value. Computation is on the CPU.
// Tests: tests/calib/test_calibrators.cpp, against fixtures/calibrator_reference.json
// (scikit-learn and torch, from scripts/make_calibrator_fixtures.py).
#pragma once

#include <cstdint>
#include <string>

#include "nn/module.h"
#include "optim/lbfgs.h"  // LbfgsOptions: the scaling calibrators fit with minimize_lbfgs

namespace bridle {

struct CalibratorFit {
  double nll_before = 0.0;  // mean NLL of softmax(logits) on the fit data
  // Mean NLL of the calibrated probabilities on the fit data: for the scaling
  // calibrators never above nll_before; for the binning ones -log(max(q_y, 1e-30)).
  double nll_after = 0.0;
  double penalty = 0.0;  // the regularisation term at the fit (MatrixScaling's ODIR), else 0
  int iterations = 0;    // optimizer iterations (0 for the binning calibrators)
  bool converged = true;
};

// The common interface, so code can hold "some calibrator".
class Calibrator : public Module {
 public:
  int64_t num_classes() const { return num_classes_; }
  virtual CalibratorFit fit(const Tensor& logits, const Tensor& labels) = 0;
  // softmax(forward(logits)): the calibrated probabilities [N, C].
  virtual Tensor calibrated_probabilities(const Tensor& logits);

 protected:
  Calibrator(std::string type_name, int64_t num_classes);
  // Throws unless logits is float32 [N, num_classes()] (N may be 0).
  void check_logits(const Tensor& logits) const;

 private:
  int64_t num_classes_;
};

// z' = weight * z + bias (per class). Fit: minimizes the mean NLL (convex) with
// L-BFGS from weight = 1, bias = 0. The NLL does not change when the same constant
// is added to every bias, so the fitted bias is centred (sums to 0).
// Buffers: "weight" [C], "bias" [C].
class VectorScaling : public Calibrator {
 public:
  explicit VectorScaling(int64_t num_classes, LbfgsOptions options = {});
  CalibratorFit fit(const Tensor& logits, const Tensor& labels) override;
  Tensor forward(const Tensor& logits) override;  // calibrated logits
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 protected:
  std::string extra_repr() const override;

 private:
  LbfgsOptions options_;
  Tensor weight_, bias_;
};

struct MatrixScalingOptions {
  // ODIR (Kull et al. 2019): the objective is
  //   mean NLL + off_diagonal_l2 / (C (C - 1)) * sum_{i != j} W_ij^2 + bias_l2 / C * sum_j b_j^2.
  double off_diagonal_l2 = 0.0;
  double bias_l2 = 0.0;
  LbfgsOptions lbfgs;
};

// z' = weight z + bias, i.e. linear(z, weight, bias). Fit: minimizes the objective
// above with L-BFGS from weight = I, bias = 0; since the penalty is 0 there, the
// fitted NLL is never above nll_before. Without regularisation the parameters are
// not unique: W + 1 v^T gives the same probabilities for any v (every class logit
// moves by v.z); the fit reaches the member whose columns sum to 1, like I.
// The bias is centred (sums to 0), which changes neither term.
// Buffers: "weight" [C, C], "bias" [C].
class MatrixScaling : public Calibrator {
 public:
  explicit MatrixScaling(int64_t num_classes, MatrixScalingOptions options = {});
  CalibratorFit fit(const Tensor& logits, const Tensor& labels) override;
  Tensor forward(const Tensor& logits) override;  // calibrated logits
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 protected:
  std::string extra_repr() const override;

 private:
  MatrixScalingOptions options_;
  Tensor weight_, bias_;
};

// One-vs-rest histogram binning. For each class c, the class probability p_c goes
// to one of B equal-width bins with metrics.h's convention ((lower, upper], the
// first bin closed at 0, within float32 rounding of an edge counts as on it); the
// bin's value is the fraction of fit samples in it whose label is c. An empty bin
// keeps its centre (b + 1/2) / B: with no evidence, the uncalibrated probability.
// Applying: q_c = value of p_c's bin, then q / sum_c q_c so the row is a
// distribution (uniform 1/C where every q_c is 0).
// Buffers: "bin_value" [C, B] float32 (the bin centres before fit), "bin_count"
// [C, B] int64 (fit samples per bin; all 0 before fit).
class HistogramBinning : public Calibrator {
 public:
  explicit HistogramBinning(int64_t num_classes, int64_t num_bins = 15);
  CalibratorFit fit(const Tensor& logits, const Tensor& labels) override;
  Tensor forward(const Tensor& logits) override;  // calibrated log-probabilities
  Tensor calibrated_probabilities(const Tensor& logits) override;
  int64_t num_bins() const { return num_bins_; }
  bool fitted() const;
  const Tensor& bin_value() const { return bin_value_; }
  const Tensor& bin_count() const { return bin_count_; }

 protected:
  std::string extra_repr() const override;

 private:
  int64_t num_bins_;
  Tensor bin_value_, bin_count_;
};

// One-vs-rest isotonic regression, as scikit-learn 1.2's
// CalibratedClassifierCV(method="isotonic") for C >= 3 classes (for C = 2 sklearn
// fits only the positive class and sets q_0 = 1 - q_1; here every class gets its
// own fit). For each class c, IsotonicRegression(out_of_bounds="clip") of
// [label == c] on p_c:
//   - samples sorted by p_c; runs of p_c closer than 1e-15 to the run's first value
//     (sklearn's _make_unique: np.finfo(float64).resolution) become one point at
//     that first value with the mean label and the run length as weight;
//   - pool adjacent violators: merge neighbouring blocks while the left mean is
//     >= the right one (weighted means), giving a non-decreasing step function;
//   - thresholds: each block's first and last point with the block's mean (the
//     points sklearn keeps after dropping those equal to both neighbours).
// Applying: p_c is clipped to [first, last] threshold and interpolated linearly
// between thresholds (a single threshold is a constant); then q / sum_c q_c, or
// uniform 1/C where the sum is 0.
// Buffers: "threshold_x" and "threshold_y" [C, K] float32 (row c holds class c's
// thresholds in its first threshold_count[c] entries, the rest 0) and
// "threshold_count" [C] int64 (0 before fit). K = max_thresholds is fixed when the
// calibrator is built, so that checkpoints know the shapes; a fit needing more
// throws, naming the count. (Thresholds grow slowly with N: ~200 per class for
// 100k samples of 10 classes.)
class IsotonicCalibration : public Calibrator {
 public:
  explicit IsotonicCalibration(int64_t num_classes, int64_t max_thresholds = 1024);
  CalibratorFit fit(const Tensor& logits, const Tensor& labels) override;
  Tensor forward(const Tensor& logits) override;  // calibrated log-probabilities
  Tensor calibrated_probabilities(const Tensor& logits) override;
  int64_t max_thresholds() const { return max_thresholds_; }
  bool fitted() const;
  const Tensor& threshold_x() const { return threshold_x_; }
  const Tensor& threshold_y() const { return threshold_y_; }
  const Tensor& threshold_count() const { return threshold_count_; }

 protected:
  std::string extra_repr() const override;

 private:
  int64_t max_thresholds_;
  Tensor threshold_x_, threshold_y_, threshold_count_;
};

}  // namespace bridle
