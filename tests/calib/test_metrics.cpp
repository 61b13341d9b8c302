// Calibration metrics (lib/calib/metrics.h): hand-computed small cases, bin edges,
// equal-mass bins, calibrated vs overconfident synthetic data, errors, the table
// and CSV writers, and parity with the numpy reference in
// fixtures/calibration_reference.json (scripts/make_calibration_fixtures.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_error;
using json = nlohmann::json;

constexpr double kExact = 1e-12;

// Five samples, three classes, probabilities exact in float32:
//   row  probs                 label  pred  conf   correct
//   0    [0.75, 0.125, 0.125]  0      0     0.75   yes
//   1    [0.5, 0.25, 0.25]     1      0     0.5    no
//   2    [0.125, 0.875, 0]     1      1     0.875  yes
//   3    [0.25, 0.25, 0.5]     2      2     0.5    yes
//   4    [1, 0, 0]             2      0     1.0    no
Tensor small_probs() {
  return from_vector({0.75f, 0.125f, 0.125f, 0.5f, 0.25f, 0.25f, 0.125f, 0.875f, 0.0f, 0.25f, 0.25f,
                      0.5f, 1.0f, 0.0f, 0.0f},
                     {5, 3});
}
Tensor small_labels() { return from_vector(std::vector<int64_t>{0, 1, 1, 2, 2}); }

CalibrationOptions bins_of(int num_bins, Norm norm = Norm::kL1,
                           Binning binning = Binning::kEqualWidth) {
  CalibrationOptions options;
  options.num_bins = num_bins;
  options.norm = norm;
  options.binning = binning;
  return options;
}

TEST(CalibrationMetrics, HandComputedReliabilityBins) {
  // 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1]: 0.5 and 0.75 sit on edges and
  // go to the bin below; 1.0 goes to the last bin.
  //   bin 1: rows 1, 3  conf 0.5     acc 0.5  gap 0
  //   bin 2: row 0      conf 0.75    acc 1    gap 0.25
  //   bin 3: rows 2, 4  conf 0.9375  acc 0.5  gap -0.4375
  std::vector<CalibrationBin> bins = reliability_bins(small_probs(), small_labels(), bins_of(4));
  ASSERT_EQ(bins.size(), 4u);
  const std::vector<int64_t> counts = {0, 2, 1, 2};
  const std::vector<double> conf = {0, 0.5, 0.75, 0.9375}, acc = {0, 0.5, 1, 0.5};
  for (size_t b = 0; b < 4; ++b) {
    EXPECT_EQ(bins[b].count, counts[b]) << "bin " << b;
    EXPECT_NEAR(bins[b].lower, 0.25 * b, kExact);
    EXPECT_NEAR(bins[b].upper, 0.25 * (b + 1), kExact);
    EXPECT_NEAR(bins[b].confidence, conf[b], kExact) << "bin " << b;
    EXPECT_NEAR(bins[b].accuracy, acc[b], kExact) << "bin " << b;
    EXPECT_NEAR(bins[b].gap, acc[b] - conf[b], kExact) << "bin " << b;
  }
}

TEST(CalibrationMetrics, HandComputedErrors) {
  Tensor p = small_probs(), y = small_labels();
  // L1 = 1/5 * 0.25 + 2/5 * 0.4375 = 0.225
  EXPECT_NEAR(expected_calibration_error(p, y, bins_of(4)), 0.225, kExact);
  // L2 = sqrt(1/5 * 0.0625 + 2/5 * 0.19140625) = sqrt(0.0890625)
  EXPECT_NEAR(expected_calibration_error(p, y, bins_of(4, Norm::kL2)), std::sqrt(0.0890625),
              kExact);
  // max = 0.4375, from either entry point
  EXPECT_NEAR(expected_calibration_error(p, y, bins_of(4, Norm::kMax)), 0.4375, kExact);
  EXPECT_NEAR(max_calibration_error(p, y, bins_of(4)), 0.4375, kExact);
  // Debiased L2: bin 1: 0 - 0.25 / 1, bin 2 (one sample): 0, bin 3: 0.19140625 - 0.25 / 1;
  // 2/5 * -0.25 + 2/5 * -0.05859375 < 0, so the estimate clamps to 0.
  CalibrationOptions debiased = bins_of(4, Norm::kL2);
  debiased.debiased = true;
  EXPECT_EQ(expected_calibration_error(p, y, debiased), 0.0);
}

TEST(CalibrationMetrics, DebiasedSubtractsTheBinVariance) {
  // 8 samples, C = 2, all with confidence 0.75: 2 bins, all 8 in the upper one.
  // All wrong: acc 0, (0 - 0.75)^2 - 0 * 1 / 7 = 0.5625 -> 0.75 (no variance term).
  // Half right: acc 0.5, 0.25^2 - 0.5 * 0.5 / 7 -> sqrt(0.0625 - 0.25 / 7); plugin 0.25.
  std::vector<float> p;
  for (int n = 0; n < 8; ++n) p.insert(p.end(), {0.75f, 0.25f});
  Tensor probs = from_vector(p, {8, 2});
  CalibrationOptions options = bins_of(2, Norm::kL2);
  options.debiased = true;
  Tensor all_wrong = from_vector(std::vector<int64_t>(8, 1));
  EXPECT_NEAR(expected_calibration_error(probs, all_wrong, options), 0.75, kExact);
  Tensor half = from_vector(std::vector<int64_t>{0, 1, 0, 1, 0, 1, 0, 1});
  EXPECT_NEAR(expected_calibration_error(probs, half, options), std::sqrt(0.0625 - 0.25 / 7.0),
              kExact);
  EXPECT_NEAR(expected_calibration_error(probs, half, bins_of(2, Norm::kL2)), 0.25, kExact);
}

TEST(CalibrationMetrics, HandComputedScores) {
  Tensor p = small_probs(), y = small_labels();
  EXPECT_NEAR(top1_accuracy(p, y), 0.6, kExact);  // rows 0, 2, 3
  // Brier per row: 0.09375, 0.875, 0.03125, 0.375, 2 -> sum 3.375, mean 0.675
  EXPECT_NEAR(brier_score(p, y), 0.675, kExact);
  // NLL: row 4 gives p = 0 to its label, floored at 1e-12.
  const double nll =
      -(std::log(0.75) + std::log(0.25) + std::log(0.875) + std::log(0.5) + std::log(1e-12)) / 5.0;
  EXPECT_NEAR(negative_log_likelihood(p, y), nll, kExact);
  // Classwise with 4 bins:
  //   class 0: p = [.75 .5 .125 .25 1], y==0 = [1 0 0 0 0]:
  //     bin 0 {.125, .25}: .4 * .1875; bin 1 {.5}: .2 * .5; bin 2 {.75}: .2 * .25;
  //     bin 3 {1}: .2 * 1 -> 0.425
  //   class 1: p = [.125 .25 .875 .25 0], y==1 = [0 1 1 0 0]:
  //     bin 0 {.125 .25 .25 0}: conf .15625 acc .25 -> .8 * .09375; bin 3: .2 * .125 -> 0.1
  //   class 2: p = [.125 .25 0 .5 0], y==2 = [0 0 0 1 1]:
  //     bin 0 {.125 .25 0 0}: conf .09375 acc .25 -> .8 * .15625; bin 1: .2 * .5 -> 0.225
  //   mean = 0.75 / 3 = 0.25
  EXPECT_NEAR(classwise_calibration_error(p, y, bins_of(4)), 0.25, kExact);

  CalibrationReport report = calibration_report(p, y, bins_of(4));
  EXPECT_NEAR(report.accuracy, 0.6, kExact);
  EXPECT_NEAR(report.brier, 0.675, kExact);
  EXPECT_NEAR(report.nll, nll, kExact);
  EXPECT_NEAR(report.ece, 0.225, kExact);
  EXPECT_NEAR(report.mce, 0.4375, kExact);
  EXPECT_NEAR(report.classwise_ece, 0.25, kExact);
  EXPECT_EQ(report.bins.size(), 4u);
}

TEST(CalibrationMetrics, UncertainFlagging) {
  Tensor p = small_probs(), y = small_labels();
  // conf < 0.6: rows 1 and 3 (conf 0.5), one correct; the other three: 2 of 3 correct.
  UncertaintyReport r = flag_uncertain(p, y);
  EXPECT_EQ(r.threshold, 0.6);
  EXPECT_EQ(r.flagged, 2);
  EXPECT_EQ(r.unflagged, 3);
  EXPECT_NEAR(r.flagged_fraction, 0.4, kExact);
  EXPECT_NEAR(r.flagged_accuracy, 0.5, kExact);
  EXPECT_NEAR(r.unflagged_accuracy, 2.0 / 3.0, kExact);
  // The comparison is strict: at 0.5 nothing is flagged, and an empty part's accuracy is NaN.
  UncertaintyReport none = flag_uncertain(p, y, 0.5);
  EXPECT_EQ(none.flagged, 0);
  EXPECT_TRUE(std::isnan(none.flagged_accuracy));
  EXPECT_NEAR(none.unflagged_accuracy, 0.6, kExact);
  UncertaintyReport all = flag_uncertain(p, y, 1.0);  // conf 1.0 is not < 1
  EXPECT_EQ(all.flagged, 4);
  EXPECT_EQ(all.unflagged, 1);
  EXPECT_NEAR(all.unflagged_accuracy, 0.0, kExact);
}

TEST(CalibrationMetrics, BinEdges) {
  // C = 15, 15 bins. Row 0: all float32(1/15), conf just above 1/15 in float32 but
  // within its rounding -> bin 0. Row 1: seven 2/15 and one 1/15 -> conf float32(2/15),
  // bin 1. Row 2: one-hot -> conf 1.0, last bin. Row 3: [0.5, 0.5, 0...] -> 7.5 -> bin 7.
  const int64_t C = 15;
  std::vector<float> p(4 * C, 0.0f);
  for (int64_t c = 0; c < C; ++c) p[c] = 1.0f / 15.0f;
  for (int64_t c = 0; c < 7; ++c) p[C + c] = 2.0f / 15.0f;
  p[C + 7] = 1.0f / 15.0f;
  p[2 * C + 4] = 1.0f;
  p[3 * C + 0] = p[3 * C + 1] = 0.5f;
  Tensor probs = from_vector(p, {4, C});
  Tensor labels = from_vector(std::vector<int64_t>{0, 0, 4, 1});
  std::vector<CalibrationBin> bins = reliability_bins(probs, labels);
  ASSERT_EQ(bins.size(), 15u);
  for (int64_t b = 0; b < 15; ++b) {
    const int64_t expected = (b == 0 || b == 1 || b == 7 || b == 14) ? 1 : 0;
    EXPECT_EQ(bins[b].count, expected) << "bin " << b;
  }
  EXPECT_NEAR(bins[0].confidence, 1.0f / 15.0f, kExact);
  EXPECT_EQ(bins[0].accuracy, 1.0);  // the tie goes to class 0
  EXPECT_EQ(bins[7].accuracy, 0.0);  // label 1, prediction 0 (tie)
  EXPECT_EQ(bins[14].confidence, 1.0);
  // Classwise bins p = 0 into bin 0 (closed at 0): 15 classes of mostly zeros run fine.
  EXPECT_GE(classwise_calibration_error(probs, labels), 0.0);
}

TEST(CalibrationMetrics, EqualMassBins) {
  Tensor p = small_probs(), y = small_labels();
  // Sorted confidences (stable): .5 (row 1), .5 (row 3), .75 (row 0), .875 (row 2), 1 (row 4).
  // Two bins like numpy.array_split: 3 + 2.
  //   bin 0: conf (.5 + .5 + .75) / 3, acc 2/3, (0, .75]
  //   bin 1: conf .9375, acc .5, (.75, 1]
  CalibrationOptions options = bins_of(2, Norm::kL1, Binning::kEqualMass);
  std::vector<CalibrationBin> bins = reliability_bins(p, y, options);
  ASSERT_EQ(bins.size(), 2u);
  EXPECT_EQ(bins[0].count, 3);
  EXPECT_EQ(bins[1].count, 2);
  EXPECT_NEAR(bins[0].confidence, 1.75 / 3.0, kExact);
  EXPECT_NEAR(bins[0].accuracy, 2.0 / 3.0, kExact);
  EXPECT_EQ(bins[0].lower, 0.0);
  EXPECT_EQ(bins[0].upper, 0.75);
  EXPECT_EQ(bins[1].lower, 0.75);
  EXPECT_EQ(bins[1].upper, 1.0);
  EXPECT_NEAR(bins[1].confidence, 0.9375, kExact);
  // ECE = 3/5 * (2/3 - 7/12) + 2/5 * 0.4375 = 0.05 + 0.175
  EXPECT_NEAR(expected_calibration_error(p, y, options), 0.225, kExact);
  // More bins than samples: 1, 1, 1, 1, 1, 0, 0; empty bins contribute nothing.
  options.num_bins = 7;
  bins = reliability_bins(p, y, options);
  ASSERT_EQ(bins.size(), 7u);
  for (int b = 0; b < 7; ++b) EXPECT_EQ(bins[b].count, b < 5 ? 1 : 0) << "bin " << b;
  // per-sample gaps: .5, .5, .25, .125, 1 -> mean 0.475
  EXPECT_NEAR(expected_calibration_error(p, y, options), 0.475, kExact);
}

// Labels drawn from each row of probs: a perfectly calibrated model.
Tensor sample_labels(const Tensor& probs, Generator& gen) {
  const int64_t N = probs.shape()[0], C = probs.shape()[1];
  std::vector<float> p = probs.to_vector();
  std::vector<int64_t> y(N);
  for (int64_t n = 0; n < N; ++n) {
    const float u = gen.uniform(0.0f, 1.0f);
    float cumulative = 0.0f;
    y[n] = C - 1;
    for (int64_t c = 0; c < C; ++c) {
      cumulative += p[n * C + c];
      if (u < cumulative) {
        y[n] = c;
        break;
      }
    }
  }
  return from_vector(y);
}

TEST(CalibrationMetrics, CalibratedVersusOverconfident) {
  Generator gen(7);
  Tensor logits = randn({20000, 5}, gen);
  Tensor probs = probabilities_from_logits(logits);
  Tensor labels = sample_labels(probs, gen);
  const double calibrated = expected_calibration_error(probs, labels);
  // Sharpened probabilities with the same labels: overconfident.
  const double overconfident =
      expected_calibration_error(probabilities_from_logits(logits * 3.0f), labels);
  EXPECT_LT(calibrated, 0.02);
  EXPECT_GT(overconfident, 0.15);
  EXPECT_LT(classwise_calibration_error(probs, labels), 0.02);
  // The debiased L2 estimate of a calibrated model sits below the plugin one.
  CalibrationOptions l2 = bins_of(15, Norm::kL2);
  CalibrationOptions debiased = l2;
  debiased.debiased = true;
  EXPECT_LE(expected_calibration_error(probs, labels, debiased),
            expected_calibration_error(probs, labels, l2));
  EXPECT_LT(expected_calibration_error(probs, labels, bins_of(15, Norm::kL1, Binning::kEqualMass)),
            0.02);
}

TEST(CalibrationMetrics, BadInputsAreErrors) {
  Tensor y = small_labels();
  expect_error(
      [&] {
        expected_calibration_error(from_vector({0.5f, 0.5f, 0.25f}, {1, 3}),
                                   from_vector(std::vector<int64_t>{0}));
      },
      {"expected_calibration_error", "row 0", "sums to 1.25"});
  expect_error(
      [&] {
        brier_score(from_vector({0.5f, 0.5f, -0.25f, 1.25f}, {2, 2}),
                    from_vector(std::vector<int64_t>{0, 1}));
      },
      {"brier_score", "row 1", "outside [0, 1]"});
  expect_error(
      [&] {
        top1_accuracy(small_probs(), from_vector(std::vector<int64_t>{0, 1, 3, 0, 0}));
      },
      {"top1_accuracy", "label 3", "row 2", "[0, 3)"});
  expect_error(
      [&] {
        top1_accuracy(small_probs(), from_vector(std::vector<int32_t>{0, -1, 0, 0, 0}));
      },
      {"label -1", "row 1"});
  expect_error(
      [&] {
        expected_calibration_error(zeros({0, 3}), from_vector(std::vector<int64_t>{}));
      },
      {"expected_calibration_error", "empty", "[0, 3]"});
  expect_error(
      [&] {
        expected_calibration_error(from_vector({0.5f, 0.5f}), y);
      },
      {"[N, C]", "[2]"});
  expect_error(
      [&] {
        expected_calibration_error(small_probs(), from_vector(std::vector<int64_t>{0, 1}));
      },
      {"labels must be [5]", "[5, 3]", "[2]"});
  expect_error([&] { expected_calibration_error(small_probs(), zeros({5})); }, {"int32 or int64"});
  CalibrationOptions debiased_l1;
  debiased_l1.debiased = true;
  expect_error([&] { expected_calibration_error(small_probs(), y, debiased_l1); },
               {"expected_calibration_error", "debiased", "kL2"});
  expect_error([&] { max_calibration_error(small_probs(), y, debiased_l1); }, {"debiased"});
  expect_error([&] { reliability_bins(small_probs(), y, bins_of(0)); }, {"num_bins", "0"});
  expect_error([&] { flag_uncertain(small_probs(), y, 1.5); }, {"threshold", "1.5"});
  expect_error([&] { probabilities_from_logits(from_vector({1.0f, 2.0f})); }, {"[N, C]"});
}

TEST(CalibrationMetrics, TableAndCsv) {
  std::vector<CalibrationBin> bins = reliability_bins(small_probs(), small_labels(), bins_of(4));
  const std::string table = format_bins_table(bins);
  EXPECT_NE(table.find("confidence"), std::string::npos);
  EXPECT_NE(table.find("0.9375"), std::string::npos);
  std::istringstream lines(table);
  std::string line;
  size_t width = 0, count = 0;
  while (std::getline(lines, line)) {
    if (count++ == 0) width = line.size();
    EXPECT_EQ(line.size(), width) << "misaligned: '" << line << "'";
  }
  EXPECT_EQ(count, 5u);  // header + 4 bins

  const std::string path = ::testing::TempDir() + "calibration_bins_test.csv";
  write_bins_csv(path, bins);
  std::ifstream in(path);
  ASSERT_TRUE(in.good());
  std::getline(in, line);
  EXPECT_EQ(line, "bin,lower,upper,count,confidence,accuracy,gap");
  std::getline(in, line);
  EXPECT_EQ(line, "0,0,0.25,0,0,0,0");
  std::getline(in, line);
  std::getline(in, line);
  std::getline(in, line);
  EXPECT_EQ(line, "3,0.75,1,2,0.9375,0.5,-0.4375");
  in.close();
  std::remove(path.c_str());
  expect_error([&] { write_bins_csv("/nonexistent-dir/bins.csv", bins); },
               {"write_bins_csv", "/nonexistent-dir/bins.csv"});
}

// Parity with the independent numpy implementation (float64 from the same float32
// inputs): agreement to rounding, |bridle - numpy| <= 1e-10 + 1e-9 |numpy|.
const json& reference() {
  return testing::json_fixture("calibration_reference.json",
                               "scripts/make_calibration_fixtures.py");
}

void expect_matches(double actual, const json& expected, const std::string& what) {
  if (expected.is_string()) {  // "nan": JSON has no NaN
    EXPECT_TRUE(std::isnan(actual)) << what;
    return;
  }
  const double e = expected.get<double>();
  EXPECT_NEAR(actual, e, 1e-10 + 1e-9 * std::abs(e)) << what;
}

TEST(CalibrationMetrics, MatchesNumpyReference) {
  const json& cases = reference().at("cases");
  ASSERT_GE(cases.size(), 2u);
  for (const json& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const int64_t N = c.at("N").get<int64_t>(), C = c.at("C").get<int64_t>();
    Tensor probs = from_vector(c.at("probs").get<std::vector<float>>(), {N, C});
    Tensor labels = from_vector(c.at("labels").get<std::vector<int64_t>>());
    const json& e = c.at("expected");
    expect_matches(top1_accuracy(probs, labels), e.at("accuracy"), "accuracy");
    expect_matches(negative_log_likelihood(probs, labels), e.at("nll"), "nll");
    expect_matches(brier_score(probs, labels), e.at("brier"), "brier");
    expect_matches(classwise_calibration_error(probs, labels, bins_of(15)),
                   e.at("classwise_ece_15"), "classwise 15");
    expect_matches(classwise_calibration_error(probs, labels, bins_of(10)),
                   e.at("classwise_ece_10"), "classwise 10");
    const json& u = e.at("uncertain");
    UncertaintyReport r = flag_uncertain(probs, labels, u.at("threshold").get<double>());
    EXPECT_EQ(r.flagged, u.at("flagged").get<int64_t>());
    EXPECT_EQ(r.unflagged, u.at("unflagged").get<int64_t>());
    expect_matches(r.flagged_fraction, u.at("flagged_fraction"), "flagged_fraction");
    expect_matches(r.flagged_accuracy, u.at("flagged_accuracy"), "flagged_accuracy");
    expect_matches(r.unflagged_accuracy, u.at("unflagged_accuracy"), "unflagged_accuracy");

    auto options_of = [](const json& j) {
      CalibrationOptions options;
      options.num_bins = j.at("num_bins").get<int>();
      options.binning = j.at("binning").get<std::string>() == "equal_mass" ? Binning::kEqualMass
                                                                           : Binning::kEqualWidth;
      if (j.contains("norm")) {
        const std::string norm = j.at("norm").get<std::string>();
        options.norm = norm == "l1" ? Norm::kL1 : norm == "l2" ? Norm::kL2 : Norm::kMax;
        options.debiased = j.at("debiased").get<bool>();
      }
      return options;
    };
    for (const json& err : e.at("errors")) {
      expect_matches(expected_calibration_error(probs, labels, options_of(err)), err.at("value"),
                     err.dump());
    }
    for (const json& table : e.at("tables")) {
      std::vector<CalibrationBin> bins = reliability_bins(probs, labels, options_of(table));
      const json& rows = table.at("bins");
      ASSERT_EQ(bins.size(), rows.size());
      for (size_t b = 0; b < bins.size(); ++b) {
        const std::string what = table.at("binning").get<std::string>() + " " +
                                 std::to_string(bins.size()) + " bin " + std::to_string(b);
        const json& row = rows[b];
        expect_matches(bins[b].lower, row[0], what + " lower");
        expect_matches(bins[b].upper, row[1], what + " upper");
        EXPECT_EQ(bins[b].count, row[2].get<int64_t>()) << what;
        expect_matches(bins[b].confidence, row[3], what + " confidence");
        expect_matches(bins[b].accuracy, row[4], what + " accuracy");
        expect_matches(bins[b].gap, row[5], what + " gap");
      }
    }
  }
}

}  // namespace
}  // namespace bridle
