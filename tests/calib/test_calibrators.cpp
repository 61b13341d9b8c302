// Calibrators (lib/calib/calibrators.h): vector and matrix scaling recover a known
// miscalibration and match torch's LBFGS; histogram binning and isotonic
// calibration match hand-computed cases and scikit-learn; all four lower the ECE
// and NLL on a fresh draw, never raise the fit NLL (scaling), travel in
// checkpoints as buffers, and refuse bad inputs. Reference values:
// fixtures/calibrator_reference.json (scripts/make_calibrator_fixtures.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../test_util.h"
#include "calibrated_data.h"

namespace bridle {
namespace {

using json = nlohmann::json;
using testing::calibrated_data;
using testing::expect_close;
using testing::expect_error;

// Logits whose softmax is the given rows of probabilities (up to float rounding).
Tensor logits_of(const std::vector<std::vector<double>>& probs) {
  std::vector<float> z;
  for (const auto& row : probs)
    for (double p : row) z.push_back(static_cast<float>(std::log(p)));
  return from_vector(z,
                     {static_cast<int64_t>(probs.size()), static_cast<int64_t>(probs[0].size())});
}

Tensor labels_of(const std::vector<int64_t>& labels) { return from_vector(labels); }

// The mean NLL of softmax(logits) in double: the exact value for scaling outputs.
double mean_nll(const Tensor& logits, const Tensor& labels) {
  const int64_t N = logits.size(0), C = logits.size(1);
  double total = 0.0;
  for (int64_t i = 0; i < N; ++i) {
    double max = logits.at({i, 0});
    for (int64_t c = 1; c < C; ++c) max = std::max(max, logits.at({i, c}));
    double sum = 0.0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(logits.at({i, c}) - max);
    total += max + std::log(sum) - logits.at({i, static_cast<int64_t>(labels.at({i}))});
  }
  return total / static_cast<double>(N);
}

std::vector<double> values_of(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// ---------------------------------------------------------------------------
// Scaling: known miscalibrations.

TEST(CalibratorVectorScaling, RecoversAGlobalScale) {
  auto [logits, labels] = calibrated_data(20000, 5, 1);
  VectorScaling calibrator(5);
  CalibratorFit fit = calibrator.fit(logits * 3.0f, labels);
  EXPECT_TRUE(fit.converged);
  EXPECT_LT(fit.nll_after, fit.nll_before);
  for (int64_t c = 0; c < 5; ++c) {
    EXPECT_NEAR(calibrator.weight().at({c}), 1.0 / 3.0, 0.02) << "class " << c;
    EXPECT_NEAR(calibrator.bias().at({c}), 0.0, 0.03) << "class " << c;
  }
}

TEST(CalibratorVectorScaling, RecoversPerClassScalesAndShifts) {
  // z' = s * z + t per class; w * z' + b = z + const needs w = 1 / s, b = -t / s + k.
  // (Tolerances: about 3 standard errors of the estimates at this N.)
  auto [logits, labels] = calibrated_data(50000, 5, 2);
  const std::vector<float> s = {3.0f, 2.0f, 1.0f, 0.5f, 1.5f}, t = {1.0f, -1.0f, 0.0f, 0.5f, -0.5f};
  Tensor distorted = add(mul(logits, from_vector(s)), from_vector(t));
  VectorScaling calibrator(5);
  CalibratorFit fit = calibrator.fit(distorted, labels);
  EXPECT_TRUE(fit.converged);
  double mean_shift = 0.0;
  for (int64_t c = 0; c < 5; ++c) mean_shift += -t[c] / s[c] / 5.0;
  double bias_sum = 0.0;
  for (int64_t c = 0; c < 5; ++c) {
    EXPECT_NEAR(calibrator.weight().at({c}), 1.0 / s[c], 0.05 / s[c]) << "class " << c;
    EXPECT_NEAR(calibrator.bias().at({c}), -t[c] / s[c] - mean_shift, 0.08) << "class " << c;
    bias_sum += calibrator.bias().at({c});
  }
  EXPECT_NEAR(bias_sum, 0.0, 1e-5);  // centred
}

TEST(CalibratorMatrixScaling, RecoversAScaledIdentity) {
  // W z' with z' = 3 z: W = I / 3 up to the free W + 1 v^T, so compare W with its
  // column means removed (the part that changes the probabilities) to I / 3's.
  const int64_t C = 4;
  auto [logits, labels] = calibrated_data(50000, C, 3);
  MatrixScaling calibrator(C);
  CalibratorFit fit = calibrator.fit(logits * 3.0f, labels);
  EXPECT_TRUE(fit.converged);
  EXPECT_LT(fit.nll_after, fit.nll_before);
  for (int64_t j = 0; j < C; ++j) {
    double column_mean = 0.0;
    for (int64_t r = 0; r < C; ++r) column_mean += calibrator.weight().at({r, j}) / C;
    EXPECT_NEAR(column_mean, 1.0 / C, 1e-5) << "column " << j << " sums to 1, like I";
    for (int64_t r = 0; r < C; ++r) {
      const double expected = (r == j ? 1.0 / 3.0 : 0.0) - 1.0 / (3.0 * C);
      EXPECT_NEAR(calibrator.weight().at({r, j}) - column_mean, expected, 0.02)
          << "W[" << r << ", " << j << "]";
    }
    EXPECT_NEAR(calibrator.bias().at({j}), 0.0, 0.06);
  }
}

TEST(CalibratorScaling, NeverRaiseTheFitNll) {
  struct Case {
    const char* name;
    Tensor logits, labels;
  };
  auto [calibrated, labels] = calibrated_data(3000, 3, 4);
  std::vector<Case> cases = {
      {"already calibrated", calibrated, labels},
      {"separable", from_vector({2.0f, 0.0f, 0.0f, 3.0f, 1.0f, -1.0f}, {3, 2}),
       labels_of({0, 1, 0})},
      {"one confident mistake", from_vector({5.0f, 0.0f}, {1, 2}), labels_of({1})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t C = c.logits.size(1);
    VectorScaling vector(C);
    MatrixScaling matrix(C);
    MatrixScalingOptions odir_options;
    odir_options.off_diagonal_l2 = 1.0;
    odir_options.bias_l2 = 1.0;
    MatrixScaling odir(C, odir_options);
    for (Calibrator* calibrator : std::vector<Calibrator*>{&vector, &matrix, &odir}) {
      SCOPED_TRACE(calibrator->type_name());
      CalibratorFit fit = calibrator->fit(c.logits, c.labels);
      EXPECT_NEAR(fit.nll_before, mean_nll(c.logits, c.labels), 1e-9);
      EXPECT_LE(fit.nll_after, fit.nll_before);
      EXPECT_LE(fit.nll_after + fit.penalty, fit.nll_before);
      // The stored (float32) parameters too, up to their rounding.
      EXPECT_LE(mean_nll((*calibrator)(c.logits), c.labels), fit.nll_before + 1e-6);
    }
  }
}

// ---------------------------------------------------------------------------
// All four on a fresh draw.

TEST(Calibrators, LowerEceAndNllOnAFreshDraw) {
  const int64_t C = 5;
  auto [fit_logits, fit_labels] = calibrated_data(20000, C, 5);
  auto [test_logits, test_labels] = calibrated_data(20000, C, 6);
  Tensor overconfident_fit = fit_logits * 3.0f, overconfident_test = test_logits * 3.0f;
  Tensor raw = probabilities_from_logits(overconfident_test);
  const double raw_ece = expected_calibration_error(raw, test_labels);
  const double raw_nll = negative_log_likelihood(raw, test_labels);
  ASSERT_GT(raw_ece, 0.1);  // the setup is miscalibrated to begin with

  std::vector<std::shared_ptr<Calibrator>> calibrators = {
      std::make_shared<VectorScaling>(C), std::make_shared<MatrixScaling>(C),
      std::make_shared<HistogramBinning>(C), std::make_shared<IsotonicCalibration>(C)};
  for (auto& calibrator : calibrators) {
    SCOPED_TRACE(calibrator->type_name());
    CalibratorFit fit = calibrator->fit(overconfident_fit, fit_labels);
    EXPECT_LT(fit.nll_after, fit.nll_before);
    Tensor probs = calibrator->calibrated_probabilities(overconfident_test);
    const double ece = expected_calibration_error(probs, test_labels);
    const double nll = negative_log_likelihood(probs, test_labels);
    EXPECT_LT(ece, 0.03) << "raw " << raw_ece;
    EXPECT_LT(ece, raw_ece / 4);
    EXPECT_LT(nll, raw_nll - 0.1) << "raw " << raw_nll;
    EXPECT_LT(classwise_calibration_error(probs, test_labels),
              classwise_calibration_error(raw, test_labels));
    // forward's output is logits (or log-probabilities) of the same distribution.
    expect_close(softmax((*calibrator)(overconfident_test), 1), probs, 1e-6f, 1e-5f);
  }
}

// ---------------------------------------------------------------------------
// Hand-computed binning cases.
//
// C = 2, five samples: p_0 = .1, .3, .6, .6, .8 (p_1 = 1 - p_0), labels 0 1 0 1 0.
Tensor small_logits() { return logits_of({{.1, .9}, {.3, .7}, {.6, .4}, {.6, .4}, {.8, .2}}); }
Tensor small_labels() { return labels_of({0, 1, 0, 1, 0}); }

// C = 4: sample k has p_k = .6, p_{k+1} = .3, .05 elsewhere, label k. Each class
// sees .05 (twice), .3 with label 0 and .6 with label 1.
Tensor ring_logits() {
  std::vector<std::vector<double>> p(4, std::vector<double>(4, 0.05));
  for (int k = 0; k < 4; ++k) {
    p[k][k] = 0.6;
    p[k][(k + 1) % 4] = 0.3;
  }
  return logits_of(p);
}
Tensor ring_labels() { return labels_of({0, 1, 2, 3}); }

TEST(CalibratorHistogram, HandComputedBins) {
  // 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1]:
  //   class 0: .1 -> bin 0 {1}, .3 -> bin 1 {0}, .6 .6 -> bin 2 {1, 0}, .8 -> bin 3 {1}
  //   class 1: .2 -> bin 0 {0}, .4 .4 -> bin 1 {0, 1}, .7 -> bin 2 {1}, .9 -> bin 3 {0}
  HistogramBinning calibrator(2, 4);
  EXPECT_FALSE(calibrator.fitted());
  calibrator.fit(small_logits(), small_labels());
  EXPECT_TRUE(calibrator.fitted());
  expect_close(calibrator.bin_value(), {1, 0, 0.5, 1, 0, 0.5, 1, 0}, 0.0f, 0.0f);
  EXPECT_EQ(calibrator.bin_count().to_int_vector(), (std::vector<int64_t>{1, 1, 2, 1, 1, 2, 1, 1}));
  // (.7, .3): bins 2 and 1 -> (.5, .5); (.9, .1): 1 and 0 -> (1, 0);
  // (.4, .6): 0 and 1 -> (0, 1); (.2, .8): 1 and 0 -> (1, 0).
  Tensor apply = logits_of({{.7, .3}, {.9, .1}, {.4, .6}, {.2, .8}});
  expect_close(calibrator.calibrated_probabilities(apply), {.5, .5, 1, 0, 0, 1, 1, 0}, 0.0f, 0.0f);
  // forward: log-probabilities, with 0 floored at 1e-30.
  const float log_floor = std::log(1e-30f);
  expect_close(calibrator(apply),
               {std::log(.5f), std::log(.5f), 0, log_floor, log_floor, 0, 0, log_floor}, 1e-6f,
               1e-6f);
}

TEST(CalibratorHistogram, EmptyBinsKeepTheirCentreAndZeroRowsGoUniform) {
  // 3 bins: every class has .05 .05 .3 (label no) in bin 0, .6 (yes) in bin 1, bin 2 empty.
  HistogramBinning calibrator(4, 3);
  calibrator.fit(ring_logits(), ring_labels());
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_EQ(calibrator.bin_value().at({c, 0}), 0.0);
    EXPECT_EQ(calibrator.bin_value().at({c, 1}), 1.0);
    EXPECT_EQ(calibrator.bin_value().at({c, 2}), static_cast<float>(5.0 / 6.0));  // the centre
    EXPECT_EQ(calibrator.bin_count().at({c, 2}), 0);
  }
  // Uniform logits: every class in bin 0, worth 0: the row falls back to uniform.
  expect_close(calibrator.calibrated_probabilities(zeros({1, 4})), {.25, .25, .25, .25}, 0.0f,
               0.0f);
  // (.7, .1, .1, .1): class 0 in the empty bin 2 (5/6), the rest 0 -> (1, 0, 0, 0).
  expect_close(calibrator.calibrated_probabilities(logits_of({{.7, .1, .1, .1}})), {1, 0, 0, 0},
               0.0f, 0.0f);
}

TEST(CalibratorIsotonic, HandComputedThresholds) {
  // Class 0, sorted by p_0: .1 (1), .3 (0), .6 (1, 0 tied -> 0.5, weight 2), .8 (1).
  //   Pool .1 and .3 -> .5 (weight 2); equal to the tied .6 -> pool again: .5 (weight 4).
  //   Fit .5 .5 .5 1 -> thresholds (.1, .5), (.6, .5), (.8, 1).
  // Class 1, sorted by p_1: .2 (0), .4 (0, 1 -> .5, weight 2), .7 (1), .9 (0).
  //   Pool .7 and .9 -> .5; equal to .4's .5 -> pool: .5 -> thresholds (.2, 0), (.4, .5), (.9, .5).
  IsotonicCalibration calibrator(2, 8);
  EXPECT_FALSE(calibrator.fitted());
  calibrator.fit(small_logits(), small_labels());
  EXPECT_TRUE(calibrator.fitted());
  EXPECT_EQ(calibrator.threshold_count().to_int_vector(), (std::vector<int64_t>{3, 3}));
  expect_close(calibrator.threshold_x(), {.1, .6, .8, 0, 0, 0, 0, 0, .2, .4, .9, 0, 0, 0, 0, 0},
               1e-6f, 0.0f);
  expect_close(calibrator.threshold_y(), {.5, .5, 1, 0, 0, 0, 0, 0, 0, .5, .5, 0, 0, 0, 0, 0}, 0.0f,
               0.0f);
  // (.7, .3): q_0 = .5 + .5 (.7 - .6) / .2 = .75, q_1 = .5 (.3 - .2) / .2 = .25.
  // (.05, .95): both clipped to their ends: .5, .5. (.95, .05): 1, 0.
  // (.35, .65): q_0 between (.1, .5) and (.6, .5): .5; q_1 between (.4, .5) and (.9, .5): .5.
  // The fit points: (.1, .9) -> .5 .5; (.6, .4) -> .5 .5; (.8, .2) -> 1 0.
  Tensor apply =
      logits_of({{.7, .3}, {.05, .95}, {.95, .05}, {.35, .65}, {.1, .9}, {.6, .4}, {.8, .2}});
  expect_close(calibrator.calibrated_probabilities(apply),
               {.75, .25, .5, .5, 1, 0, .5, .5, .5, .5, .5, .5, 1, 0}, 1e-6f, 0.0f);
  Tensor log_probs = calibrator(apply);
  EXPECT_NEAR(log_probs.at({2, 1}), std::log(1e-30), 1e-4);  // the floor, not -inf
  EXPECT_NEAR(log_probs.at({0, 0}), std::log(0.75), 1e-6);
}

TEST(CalibratorIsotonic, ZeroRowsGoUniform) {
  // Each class: .05 .05 (0), .3 (0), .6 (1): the first two pool (0 >= 0) into one
  // block -> thresholds (.05, 0), (.3, 0), (.6, 1).
  IsotonicCalibration calibrator(4, 4);
  calibrator.fit(ring_logits(), ring_labels());
  EXPECT_EQ(calibrator.threshold_count().to_int_vector(), (std::vector<int64_t>{3, 3, 3, 3}));
  // Uniform logits: .25 is in the flat zero part for every class -> uniform.
  expect_close(calibrator.calibrated_probabilities(zeros({1, 4})), {.25, .25, .25, .25}, 0.0f,
               0.0f);
  // (.45, .45, .05, .05): q = (.5, .5, 0, 0), already a distribution.
  expect_close(calibrator.calibrated_probabilities(logits_of({{.45, .45, .05, .05}})),
               {.5, .5, 0, 0}, 1e-6f, 0.0f);
}

// ---------------------------------------------------------------------------
// Parity with scikit-learn and torch.

const json& reference() {
  return testing::json_fixture("calibrator_reference.json", "scripts/make_calibrator_fixtures.py");
}

Tensor logits_from(const json& j, int64_t N, int64_t C) {
  return from_vector(j.at("logits").get<std::vector<float>>(), {N, C});
}

void expect_near_all(const std::vector<double>& actual, const json& expected, double tolerance,
                     const std::string& what) {
  const auto e = expected.get<std::vector<double>>();
  ASSERT_EQ(actual.size(), e.size()) << what;
  for (size_t k = 0; k < e.size(); ++k) EXPECT_NEAR(actual[k], e[k], tolerance) << what << " " << k;
}

TEST(CalibratorVectorScaling, MatchesTorchLbfgs) {
  const json& s = reference().at("scaling");
  const int64_t N = s.at("N").get<int64_t>(), C = s.at("C").get<int64_t>();
  Tensor logits = logits_from(s, N, C);
  Tensor labels = from_vector(s.at("labels").get<std::vector<int64_t>>());
  VectorScaling calibrator(C);
  CalibratorFit fit = calibrator.fit(logits, labels);
  EXPECT_TRUE(fit.converged);
  EXPECT_NEAR(fit.nll_before, s.at("nll_before").get<double>(), 1e-10);
  // The optimum is unique (b up to a shared shift, removed by centring both).
  EXPECT_NEAR(fit.nll_after, s.at("vector").at("nll_after").get<double>(), 1e-9);
  expect_near_all(values_of(calibrator.weight()), s.at("vector").at("weight"), 1e-4, "weight");
  expect_near_all(values_of(calibrator.bias()), s.at("vector").at("bias"), 1e-4, "bias");
}

TEST(CalibratorMatrixScaling, MatchesTorchLbfgs) {
  const json& s = reference().at("scaling");
  const int64_t N = s.at("N").get<int64_t>(), C = s.at("C").get<int64_t>();
  Tensor logits = logits_from(s, N, C);
  Tensor labels = from_vector(s.at("labels").get<std::vector<int64_t>>());
  {
    // Unregularised: W is free up to W + 1 v^T, so compare the NLL and the
    // probabilities; both fits start at I, so W should agree as well.
    SCOPED_TRACE("plain");
    const json& e = s.at("matrix");
    MatrixScaling calibrator(C);
    CalibratorFit fit = calibrator.fit(logits, labels);
    EXPECT_TRUE(fit.converged);
    EXPECT_NEAR(fit.nll_after, e.at("nll_after").get<double>(), 1e-9);
    EXPECT_EQ(fit.penalty, 0.0);
    Tensor head = calibrator.calibrated_probabilities(logits.slice(0, 50));
    expect_near_all(values_of(head), e.at("probabilities_head"), 1e-5, "probabilities");
    expect_near_all(values_of(calibrator.weight()), e.at("weight"), 1e-4, "weight");
  }
  {
    // ODIR: the penalty makes the optimum unique.
    SCOPED_TRACE("odir");
    const json& e = s.at("matrix_odir");
    MatrixScalingOptions options;
    options.off_diagonal_l2 = e.at("off_diagonal_l2").get<double>();
    options.bias_l2 = e.at("bias_l2").get<double>();
    MatrixScaling calibrator(C, options);
    CalibratorFit fit = calibrator.fit(logits, labels);
    EXPECT_TRUE(fit.converged);
    EXPECT_NEAR(fit.nll_after, e.at("nll_after").get<double>(), 1e-8);
    EXPECT_NEAR(fit.penalty, e.at("penalty").get<double>(), 1e-8);
    EXPECT_NEAR(fit.nll_after + fit.penalty, e.at("objective").get<double>(), 1e-9);
    expect_near_all(values_of(calibrator.weight()), e.at("weight"), 1e-4, "weight");
    expect_near_all(values_of(calibrator.bias()), e.at("bias"), 1e-4, "bias");
  }
}

TEST(CalibratorIsotonic, MatchesScikitLearn) {
  const json& b = reference().at("binning");
  const int64_t C = b.at("C").get<int64_t>();
  const int64_t N = b.at("fit").at("N").get<int64_t>(), M = b.at("apply").at("N").get<int64_t>();
  Tensor fit_logits = logits_from(b.at("fit"), N, C);
  Tensor labels = from_vector(b.at("fit").at("labels").get<std::vector<int64_t>>());
  Tensor apply_logits = logits_from(b.at("apply"), M, C);
  const json& e = b.at("isotonic");
  IsotonicCalibration calibrator(C, 64);
  calibrator.fit(fit_logits, labels);
  for (int64_t c = 0; c < C; ++c) {
    SCOPED_TRACE("class " + std::to_string(c));
    const auto x = e.at("thresholds_x").at(c).get<std::vector<double>>();
    const auto y = e.at("thresholds_y").at(c).get<std::vector<double>>();
    ASSERT_EQ(calibrator.threshold_count().at({c}), static_cast<double>(x.size()));
    for (size_t k = 0; k < x.size(); ++k) {
      // x are float32 probabilities on both sides: equal when the softmax matches.
      EXPECT_EQ(calibrator.threshold_x().at({c, static_cast<int64_t>(k)}), x[k]) << k;
      EXPECT_NEAR(calibrator.threshold_y().at({c, static_cast<int64_t>(k)}), y[k], 1e-7) << k;
    }
  }
  Tensor probs = calibrator.calibrated_probabilities(apply_logits);
  expect_near_all(values_of(probs), e.at("calibrated"), 1e-6, "calibrated");
  expect_close(softmax(calibrator(apply_logits), 1), probs, 1e-6f, 0.0f);
}

TEST(CalibratorHistogram, MatchesReference) {
  const json& b = reference().at("binning");
  const int64_t C = b.at("C").get<int64_t>();
  const int64_t N = b.at("fit").at("N").get<int64_t>(), M = b.at("apply").at("N").get<int64_t>();
  Tensor fit_logits = logits_from(b.at("fit"), N, C);
  Tensor labels = from_vector(b.at("fit").at("labels").get<std::vector<int64_t>>());
  Tensor apply_logits = logits_from(b.at("apply"), M, C);
  for (const json& e : b.at("histogram")) {
    const int64_t B = e.at("num_bins").get<int64_t>();
    SCOPED_TRACE(std::to_string(B) + " bins");
    HistogramBinning calibrator(C, B);
    calibrator.fit(fit_logits, labels.to(kInt32));  // int32 labels work too
    EXPECT_EQ(calibrator.bin_count().to_int_vector(),
              e.at("bin_count").get<std::vector<int64_t>>());
    expect_near_all(values_of(calibrator.bin_value()), e.at("bin_value"), 1e-7, "bin_value");
    expect_near_all(values_of(calibrator.calibrated_probabilities(apply_logits)),
                    e.at("calibrated"), 1e-6, "calibrated");
  }
}

// ---------------------------------------------------------------------------
// Modules: buffers, checkpoints, the state before fit.

TEST(Calibrators, StateIsBuffersAndForwardIsDifferentiableForScaling) {
  VectorScaling vector(3);
  MatrixScaling matrix(3);
  HistogramBinning histogram(3, 5);
  IsotonicCalibration isotonic(3, 7);
  auto names = [](const Module& m) {
    std::vector<std::string> out;
    for (auto& [name, t] : m.named_buffers()) out.push_back(name + shape_str(t.shape()));
    return out;
  };
  EXPECT_EQ(names(vector), (std::vector<std::string>{"weight[3]", "bias[3]"}));
  EXPECT_EQ(names(matrix), (std::vector<std::string>{"weight[3, 3]", "bias[3]"}));
  EXPECT_EQ(names(histogram), (std::vector<std::string>{"bin_value[3, 5]", "bin_count[3, 5]"}));
  EXPECT_EQ(names(isotonic), (std::vector<std::string>{"threshold_x[3, 7]", "threshold_y[3, 7]",
                                                       "threshold_count[3]"}));
  for (Module* m : std::vector<Module*>{&vector, &matrix, &histogram, &isotonic})
    EXPECT_TRUE(m->parameters().empty()) << m->type_name();
  EXPECT_NE(isotonic.str().find("max_thresholds=7"), std::string::npos);

  // Before fit the scaling calibrators are the identity.
  Tensor z = from_vector({1.0f, -2.0f, 0.5f, 3.0f, 0.0f, -1.0f}, {2, 3});
  expect_close(vector(z), z, 0.0f, 0.0f);
  expect_close(matrix(z), z, 0.0f, 0.0f);
  // Gradients flow to the logits: d sum(w * z + b) / dz = w.
  auto [logits, labels] = calibrated_data(500, 3, 8);
  vector.fit(logits * 2.0f, labels);
  Tensor leaf = z.clone().set_requires_grad();
  vector(leaf).sum().backward();
  const std::vector<float> w = vector.weight().to_vector();
  expect_close(leaf.grad(), {w[0], w[1], w[2], w[0], w[1], w[2]}, 0.0f, 0.0f);
  // An empty batch is fine once fitted.
  histogram.fit(logits, labels);
  EXPECT_EQ(histogram(zeros({0, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(vector(zeros({0, 3})).shape(), (Shape{0, 3}));
}

TEST(Calibrators, TravelInTheModelCheckpoint) {
  struct Calibrated : Module {
    std::shared_ptr<Linear> fc;
    std::shared_ptr<VectorScaling> vector;
    std::shared_ptr<MatrixScaling> matrix;
    std::shared_ptr<HistogramBinning> histogram;
    std::shared_ptr<IsotonicCalibration> isotonic;
    explicit Calibrated(int64_t max_thresholds = 256) : Module("Calibrated") {
      fc = register_module("fc", std::make_shared<Linear>(3, 4));
      vector = register_module("vector", std::make_shared<VectorScaling>(4));
      matrix = register_module("matrix", std::make_shared<MatrixScaling>(4));
      histogram = register_module("histogram", std::make_shared<HistogramBinning>(4, 10));
      isotonic =
          register_module("isotonic", std::make_shared<IsotonicCalibration>(4, max_thresholds));
    }
    Tensor forward(const Tensor& x) override { return isotonic->forward(fc->forward(x)); }
  };
  auto [logits, labels] = calibrated_data(2000, 4, 9);
  Calibrated saved;
  for (Calibrator* c : std::vector<Calibrator*>{saved.vector.get(), saved.matrix.get(),
                                                saved.histogram.get(), saved.isotonic.get()})
    c->fit(logits * 2.0f, labels);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("bridle_calibrators_" + std::to_string(::getpid()) + ".h5"))
                               .string();
  save_checkpoint(path, {.model = &saved, .with_default_generator = false});
  Calibrated loaded;
  EXPECT_FALSE(loaded.isotonic->fitted());
  Checkpoint into{.model = &loaded, .with_default_generator = false};
  load_checkpoint(path, into);
  EXPECT_TRUE(loaded.isotonic->fitted());
  EXPECT_TRUE(loaded.histogram->fitted());
  auto saved_buffers = saved.named_buffers(), loaded_buffers = loaded.named_buffers();
  ASSERT_EQ(saved_buffers.size(), 9u);  // 2 + 2 + 2 + 3; Linear has none
  ASSERT_EQ(loaded_buffers.size(), saved_buffers.size());
  for (size_t k = 0; k < saved_buffers.size(); ++k) {
    EXPECT_EQ(loaded_buffers[k].first, saved_buffers[k].first);
    const Tensor& a = saved_buffers[k].second;
    const Tensor& b = loaded_buffers[k].second;
    if (a.is_float())
      EXPECT_EQ(b.to_vector(), a.to_vector()) << saved_buffers[k].first;
    else
      EXPECT_EQ(b.to_int_vector(), a.to_int_vector()) << saved_buffers[k].first;
  }
  Tensor z = logits.slice(0, 20) * 2.0f;
  expect_close((*loaded.vector)(z), (*saved.vector)(z), 0.0f, 0.0f);
  expect_close((*loaded.matrix)(z), (*saved.matrix)(z), 0.0f, 0.0f);
  expect_close((*loaded.histogram)(z), (*saved.histogram)(z), 0.0f, 0.0f);
  expect_close((*loaded.isotonic)(z), (*saved.isotonic)(z), 0.0f, 0.0f);
  // The threshold table's size is part of the checkpoint's shapes.
  Calibrated other_size(128);
  Checkpoint mismatch{.model = &other_size, .with_default_generator = false};
  expect_error([&] { load_checkpoint(path, mismatch); }, {"isotonic.threshold_x", "[4, 256]"});
  std::filesystem::remove(path);
}

TEST(Calibrators, BadInputsAreClearErrors) {
  Tensor logits = zeros({3, 4});
  VectorScaling vector(4);
  MatrixScaling matrix(4);
  HistogramBinning histogram(4);
  IsotonicCalibration isotonic(4);
  for (Calibrator* c : std::vector<Calibrator*>{&vector, &matrix, &histogram, &isotonic}) {
    SCOPED_TRACE(c->type_name());
    const std::string fit = c->type_name() + "::fit";
    expect_error(
        [&] {
          c->fit(logits, labels_of({0, 4, 1}));
        },
        {fit, "label 4", "row 1", "4 classes"});
    expect_error([&] { c->fit(logits, labels_of({0, -1, 1})); }, {"label -1", "row 1"});
    expect_error([&] { c->fit(logits, labels_of({0, 1})); }, {fit, "labels must be [3]", "[2]"});
    expect_error([&] { c->fit(logits, zeros({3})); }, {"int32 or int64", "float32"});
    expect_error(
        [&] {
          c->fit(zeros({3, 5}), labels_of({0, 1, 2}));
        },
        {fit, "[N, 4]", "4 classes", "[3, 5]"});
    expect_error([&] { c->fit(zeros({0, 4}), Tensor::empty({0}, kInt64)); }, {"empty", "[0, 4]"});
    Tensor with_nan = zeros({1, 4});
    with_nan.set({0, 2}, NAN);
    expect_error([&] { c->fit(with_nan, labels_of({0})); }, {"not finite", "row 0"});
    expect_error([&] { (*c)(zeros({2, 3})); }, {c->type_name(), "[N, 4]", "[2, 3]"});
    expect_error([&] { (*c)(zeros({4})); }, {"[N, 4]", "[4]"});
    expect_error([&] { (*c)(zeros({2, 4}, kInt64)); }, {"logits must be float32"});
  }
  // Binning calibrators have no identity state: applying one before fit is an error.
  expect_error([&] { histogram(logits); }, {"HistogramBinning", "not fitted"});
  expect_error([&] { isotonic.calibrated_probabilities(logits); },
               {"IsotonicCalibration", "not fitted"});
  // A fit needing more thresholds than the table holds names the count and changes nothing.
  IsotonicCalibration tiny(2, 2);
  tiny.fit(logits_of({{.2, .8}, {.8, .2}}), labels_of({1, 0}));  // 2 thresholds per class
  const std::vector<float> before = tiny.threshold_x().to_vector();
  expect_error([&] { tiny.fit(small_logits(), small_labels()); },
               {"class 0 needs 3 thresholds", "max_thresholds = 2"});
  EXPECT_EQ(tiny.threshold_x().to_vector(), before);
  EXPECT_EQ(tiny.threshold_count().to_int_vector(), (std::vector<int64_t>{2, 2}));
  // Constructor arguments.
  expect_error([] { VectorScaling(0); }, {"VectorScaling", "num_classes", "0"});
  expect_error([] { HistogramBinning(3, 0); }, {"num_bins", "0"});
  expect_error([] { IsotonicCalibration(3, 0); }, {"max_thresholds", "0"});
  MatrixScalingOptions negative;
  negative.off_diagonal_l2 = -1.0;
  expect_error([&] { MatrixScaling(3, negative); }, {"off_diagonal_l2", "-1"});
  LbfgsOptions no_tolerance;
  no_tolerance.gradient_tolerance = 0.0;
  expect_error([&] { VectorScaling(3, no_tolerance); }, {"gradient_tolerance"});
}

}  // namespace
}  // namespace bridle
