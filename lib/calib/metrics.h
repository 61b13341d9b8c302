// Calibration metrics: how well predicted probabilities match observed accuracy.
//
// Shapes (letters fixed for this file): N samples, C classes, B bins.
//   probs  [N, C] float32, each row a distribution: entries in [0, 1] and the row
//          sum within 1e-3 of 1 (probabilities_from_logits makes one from logits);
//   labels [N] int32/int64 in [0, C).
// These are evaluation metrics, not ops: plain double-precision loops on the CPU
// (other devices are copied there), no autograd, results as doubles and structs.
// Every bad input is a bridle::Error naming the function, the shape or the row.
//
// Top-label quantities (Guo et al. 2017): confidence_n = max_c p_nc, prediction =
// argmax (ties go to the first index), correct_n = [prediction == label].
//
// Equal-width bins (Binning::kEqualWidth) are (lower, upper] with the first bin
// closed at 0: bin = max(0, ceil(conf * B) - 1), so 0 and an edge value k/B go to
// the bin below the edge and 1.0 to the last bin (the convention of Guo et al.,
// gpleiss' temperature_scaling and Kumar et al.'s `calibration` package, whose
// np.searchsorted puts boundaries in the left bin). Inputs are float32, where most
// edges k/B are not representable, so a confidence within float32 rounding of an
// edge (|conf * B - k| <= k * 2^-23) counts as on it: float32(1/15) lands in bin 0
// of 15 like the exact 1/15 would.
// Equal-mass bins (Binning::kEqualMass) sort the samples by confidence (stable, so
// ties keep sample order) and split them like numpy.array_split: the first N % B
// bins get floor(N / B) + 1 samples, the rest floor(N / B) (with B > N the last
// bins are empty). A bin reports lower = the previous bin's upper (0 for the
// first) and upper = its largest confidence.
//
// Per bin b with n_b samples: conf_b = mean confidence, acc_b = mean correct.
// Empty bins contribute nothing and report count 0, confidence = accuracy = gap = 0.
//   kL1  (ECE):  sum_b (n_b / N) |acc_b - conf_b|
//   kL2:         sqrt(sum_b (n_b / N) (acc_b - conf_b)^2)
//   kMax (MCE):  max over non-empty bins of |acc_b - conf_b|
//   kL2 with debiased (Kumar et al. 2019, "Verified Uncertainty Calibration"; the
//   `calibration` package's unbiased_l2_ce, used by get_calibration_error with
//   debias=True and p=2):
//       sqrt(max(0, sum_b (n_b / N) e_b)),
//       e_b = (acc_b - conf_b)^2 - acc_b (1 - acc_b) / (n_b - 1)  for n_b >= 2,
//       e_b = 0                                                   for n_b < 2,
//   i.e. as in the package a bin with fewer than 2 samples contributes nothing at
//   all (not only no correction). debiased with kL1 or kMax is an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

enum class Binning { kEqualWidth, kEqualMass };
enum class Norm { kL1, kL2, kMax };

struct CalibrationOptions {
  int num_bins = 15;  // >= 1
  Binning binning = Binning::kEqualWidth;
  Norm norm = Norm::kL1;
  bool debiased = false;  // only with Norm::kL2
};

struct CalibrationBin {
  double lower = 0.0, upper = 0.0;
  int64_t count = 0;
  double confidence = 0.0;  // mean top probability in the bin
  double accuracy = 0.0;    // fraction of correct predictions in the bin
  double gap = 0.0;         // accuracy - confidence
};

// softmax(logits, 1) for logits [N, C], detached: the probs these metrics take.
Tensor probabilities_from_logits(const Tensor& logits);

// The B top-label bins (see the conventions above).
std::vector<CalibrationBin> reliability_bins(const Tensor& probs, const Tensor& labels,
                                             const CalibrationOptions& options = {});
// The top-label calibration error in options.norm (ECE for kL1).
double expected_calibration_error(const Tensor& probs, const Tensor& labels,
                                  const CalibrationOptions& options = {});
// expected_calibration_error with norm = kMax (options.norm is ignored).
double max_calibration_error(const Tensor& probs, const Tensor& labels,
                             const CalibrationOptions& options = {});
// Classwise (marginal) ECE: for each class c, the L1 ECE of p_c against [label == c]
// over all N samples, in options.num_bins equal-width bins (same edge convention;
// binning, norm and debiased are ignored); the mean over the C classes.
double classwise_calibration_error(const Tensor& probs, const Tensor& labels,
                                   const CalibrationOptions& options = {});

// Multiclass Brier score: mean_n sum_c (p_nc - [c == label_n])^2, in [0, 2].
double brier_score(const Tensor& probs, const Tensor& labels);
// Mean of -log(max(p_n,label_n, 1e-12)): computed from the probabilities, so a
// probability of 0 for the label costs -log(1e-12) = 27.63 instead of infinity.
// (From logits, cross_entropy is the exact value.)
double negative_log_likelihood(const Tensor& probs, const Tensor& labels);
// Fraction of samples whose argmax (ties to the first index) is the label.
double top1_accuracy(const Tensor& probs, const Tensor& labels);

// Flags a sample as uncertain when its top probability is < threshold (in [0, 1]).
// The accuracy of an empty part is NaN.
struct UncertaintyReport {
  double threshold = 0.6;
  double flagged_fraction = 0.0;
  double flagged_accuracy = 0.0;
  double unflagged_accuracy = 0.0;
  int64_t flagged = 0, unflagged = 0;
};
UncertaintyReport flag_uncertain(const Tensor& probs, const Tensor& labels, double threshold = 0.6);

// Everything at once: ece in options.norm (debiased if asked), mce = kMax with the
// same bins, classwise_ece with options.num_bins, and the bins themselves.
struct CalibrationReport {
  double accuracy = 0.0, nll = 0.0, brier = 0.0, ece = 0.0, mce = 0.0, classwise_ece = 0.0;
  std::vector<CalibrationBin> bins;
};
CalibrationReport calibration_report(const Tensor& probs, const Tensor& labels,
                                     const CalibrationOptions& options = {});

// A right-aligned text table, one line per bin with a header line.
std::string format_bins_table(const std::vector<CalibrationBin>& bins);
// CSV with the header bin,lower,upper,count,confidence,accuracy,gap; values are
// written to round-trip. Throws bridle::Error naming the path if it can't write.
void write_bins_csv(const std::string& path, const std::vector<CalibrationBin>& bins);

}  // namespace bridle
