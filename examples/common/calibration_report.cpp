// Temperature scaling and the calibration report at the end of training; see
// calibration_report.h. The metrics are lib/calib/metrics.h, the fit
// lib/calib/temperature_scaling.h, the figure common/svg_plot.h.
#include "common/calibration_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <vector>

#include "common/distributed.h"
#include "common/example_main.h"
#include "common/svg_plot.h"

namespace bridle::examples {
namespace {

namespace svg = bridle::examples::svg;

constexpr const char* kAccuracyColor = "#4e79a7";
constexpr const char* kGapColor = "#e15759";
constexpr const char* kDiagonalColor = "#555555";

std::string percent(double v) { return std::isnan(v) ? "-" : fmt::format("{:.2f}%", 100 * v); }

// One panel: the reliability diagram on top, the confidence histogram under it.
void draw_panel(svg::Figure& figure, double x, const std::string& title,
                const CalibrationReport& report, int64_t n) {
  svg::LinePlot reliability{.title = title,
                            .x_label = "",
                            .y_label = "accuracy",
                            .x_min = 0,
                            .x_max = 1,
                            .y_min = 0,
                            .y_max = 1,
                            .legend = false};
  svg::BoxSeries bars{.label = "accuracy", .color = kAccuracyColor, .stroke = "#2f4b6b"};
  svg::BoxSeries gaps{.label = "gap", .color = kGapColor, .opacity = 0.35, .stroke = kGapColor};
  svg::LinePlot histogram{.title = "",
                          .x_label = "confidence (top probability)",
                          .y_label = "share",
                          .x_min = 0,
                          .x_max = 1,
                          .y_min = 0,
                          .legend = false};
  svg::BoxSeries shares{
      .label = "share of samples", .color = "#9c9c9c", .opacity = 0.6, .stroke = "#666666"};
  double top_share = 0, mean_confidence = 0;
  for (const CalibrationBin& b : report.bins) {
    if (b.count == 0) continue;
    const double share = static_cast<double>(b.count) / n;
    top_share = std::max(top_share, share);
    mean_confidence += share * b.confidence;
    for (svg::BoxSeries* s : {&bars, &gaps, &shares}) {
      s->x0.push_back(b.lower);
      s->x1.push_back(b.upper);
    }
    bars.y0.push_back(0), bars.y1.push_back(b.accuracy);
    gaps.y0.push_back(b.accuracy), gaps.y1.push_back(b.confidence);
    shares.y0.push_back(0), shares.y1.push_back(share);
  }
  reliability.boxes = {bars, gaps};
  reliability.series.push_back({.label = "perfect calibration",
                                .x = {0, 1},
                                .y = {0, 1},
                                .color = kDiagonalColor,
                                .width = 1.5,
                                .dashed = true});
  figure.draw({x, 84, 520, 420}, reliability);

  histogram.y_max = std::max(top_share * 1.1, 1e-3);
  histogram.boxes = {shares};
  histogram.ref_lines = {{.value = report.accuracy, .vertical = true, .color = kAccuracyColor},
                         {.value = mean_confidence, .vertical = true, .color = kGapColor}};
  figure.draw({x, 504, 520, 200}, histogram);
}

void write_figure(const std::string& path, const std::string& name, double temperature,
                  const CalibrationReport& before, const CalibrationReport& after, int64_t n,
                  int num_bins) {
  svg::Figure figure(
      1100, 720,
      fmt::format("Reliability of {} on the test set ({} samples, {} bins)", name, n, num_bins));
  figure.text(550, 54,
              "blue: accuracy in each confidence bin; red: its gap to the diagonal (perfect "
              "calibration). Histograms: share of samples per bin,",
              12, "middle", "#666666");
  figure.text(550, 70,
              "with the accuracy (blue) and mean confidence (red) as dashed lines: above the "
              "diagonal is underconfident, below it overconfident",
              12, "middle", "#666666");
  draw_panel(figure, 20, fmt::format("Before (T = 1): ECE {}", percent(before.ece)), before, n);
  draw_panel(figure, 560,
             fmt::format("After temperature scaling (T = {:.3f}): ECE {}", temperature,
                         percent(after.ece)),
             after, n);
  figure.save(path);
}

}  // namespace

SplitLogits collect_logits(Module& model, DataLoader& loader) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<Tensor> logits, labels;
  const Device device = model_device(model);
  for (Batch& batch : loader.epoch(0)) {
    logits.push_back(model.forward(batch.inputs.to(device)).to(Device::cpu()));
    labels.push_back(batch.targets.to(Device::cpu()));
  }
  model.train(was_training);
  BRIDLE_CHECK(!logits.empty(), "collect_logits: the loader has no batches");
  return {cat(logits, 0), cat(labels, 0)};
}

nlohmann::json CalibrationResult::json() const {
  return {{"temperature", fit.temperature},
          {"heldout_nll_before", fit.nll_before},
          {"heldout_nll_after", fit.nll_after},
          {"test_accuracy_before", before.accuracy},
          {"test_accuracy_after", after.accuracy},
          {"test_nll_before", before.nll},
          {"test_nll_after", after.nll},
          {"test_brier_before", before.brier},
          {"test_brier_after", after.brier},
          {"test_ece_before", before.ece},
          {"test_ece_after", after.ece},
          {"test_mce_before", before.mce},
          {"test_mce_after", after.mce},
          {"test_classwise_ece_before", before.classwise_ece},
          {"test_classwise_ece_after", after.classwise_ece},
          {"test_flagged_before", uncertain_before.flagged_fraction},
          {"test_flagged_after", uncertain_after.flagged_fraction}};
}

CalibrationResult report_calibration(const SplitLogits& held_out, const SplitLogits& test,
                                     const CalibrationReportOptions& options) {
  CalibrationResult result;
  // T comes from the held-out split only: fitted on the test set, the "after"
  // figures would be optimistic.
  TemperatureScaling scaler;
  result.fit = scaler.fit(held_out.logits, held_out.labels);
  Tensor scaled;
  {
    NoGradGuard no_grad;
    scaled = scaler.forward(test.logits);
  }
  const Tensor p_before = probabilities_from_logits(test.logits);
  const Tensor p_after = probabilities_from_logits(scaled);
  const bridle::CalibrationOptions bins{.num_bins = options.num_bins};
  result.before = calibration_report(p_before, test.labels, bins);
  result.after = calibration_report(p_after, test.labels, bins);
  result.uncertain_before = flag_uncertain(p_before, test.labels, options.uncertain_threshold);
  result.uncertain_after = flag_uncertain(p_after, test.labels, options.uncertain_threshold);

  const std::filesystem::path dir = options.out_dir;
  result.svg_path = (dir / (options.prefix + "_reliability.svg")).string();
  result.csv_before = (dir / (options.prefix + "_bins_before.csv")).string();
  result.csv_after = (dir / (options.prefix + "_bins_after.csv")).string();
  const int64_t n = test.labels.numel();
  write_figure(result.svg_path, options.name, result.fit.temperature, result.before, result.after,
               n, options.num_bins);
  write_bins_csv(result.csv_before, result.before.bins);
  write_bins_csv(result.csv_after, result.after.bins);

  if (options.print) {
    const TemperatureFit& fit = result.fit;
    fmt::print(
        "\ncalibration of {}: T = {:.4f}, fitted on {} held-out samples (NLL {:.4f} -> {:.4f}, "
        "{} Newton steps{})\n",
        options.name, fit.temperature, held_out.labels.numel(), fit.nll_before, fit.nll_after,
        fit.iterations, fit.converged ? "" : ", not converged");
    fmt::print("  {:<34}{:>14}{:>14}\n", fmt::format("test set ({} samples)", n), "before",
               "after");
    fmt::print("  {}\n", std::string(62, '-'));
    auto row = [](const std::string& name, const std::string& a, const std::string& b) {
      fmt::print("  {:<34}{:>14}{:>14}\n", name, a, b);
    };
    auto number = [](double v) { return fmt::format("{:.4f}", v); };
    const CalibrationReport &b = result.before, &a = result.after;
    const UncertaintyReport &ub = result.uncertain_before, &ua = result.uncertain_after;
    row("temperature T", "1", fmt::format("{:.4f}", fit.temperature));
    row("accuracy", percent(b.accuracy), percent(a.accuracy));
    row("NLL (nats)", number(b.nll), number(a.nll));
    row("Brier score", number(b.brier), number(a.brier));
    row(fmt::format("ECE ({} bins)", options.num_bins), percent(b.ece), percent(a.ece));
    row("MCE", percent(b.mce), percent(a.mce));
    row("classwise ECE", percent(b.classwise_ece), percent(a.classwise_ece));
    row(fmt::format("flagged uncertain (p < {:g})", options.uncertain_threshold),
        percent(ub.flagged_fraction), percent(ua.flagged_fraction));
    row("  accuracy of the flagged", percent(ub.flagged_accuracy), percent(ua.flagged_accuracy));
    row("  accuracy of the rest", percent(ub.unflagged_accuracy), percent(ua.unflagged_accuracy));
    fmt::print("  figure: {}\n  bins:   {}, {}\n", result.svg_path, result.csv_before,
               result.csv_after);
  }
  return result;
}

CalibrationResult report_calibration(Module& model, DataLoader& held_out, DataLoader& test,
                                     const CalibrationReportOptions& options) {
  const SplitLogits held_out_logits = collect_logits(model, held_out);
  const SplitLogits test_logits = collect_logits(model, test);
  return report_calibration(held_out_logits, test_logits, options);
}

std::vector<CalibratorRow> compare_calibrators(const SplitLogits& held_out, const SplitLogits& test,
                                               int num_bins, bool print) {
  const int64_t classes = held_out.logits.size(1);
  const bridle::CalibrationOptions bins{.num_bins = num_bins};
  std::vector<CalibratorRow> rows;
  rows.push_back(
      {"none", calibration_report(probabilities_from_logits(test.logits), test.labels, bins)});
  // Each calibrator: fit on the held-out logits, then the test probabilities.
  auto add = [&](const std::string& name, auto&& fit_and_apply) {
    const auto start = std::chrono::steady_clock::now();
    Tensor probs = fit_and_apply();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rows.push_back({name, calibration_report(probs, test.labels, bins), seconds});
  };
  add("temperature scaling", [&] {
    TemperatureScaling calibrator;
    calibrator.fit(held_out.logits, held_out.labels);
    return probabilities_from_logits(calibrator.forward(test.logits));
  });
  auto add_calibrator = [&](const std::string& name, bridle::Calibrator&& calibrator) {
    add(name, [&] {
      calibrator.fit(held_out.logits, held_out.labels);
      return calibrator.calibrated_probabilities(test.logits);
    });
  };
  add_calibrator("vector scaling", VectorScaling(classes));
  add_calibrator("matrix scaling", MatrixScaling(classes));
  add_calibrator(fmt::format("histogram binning ({})", num_bins),
                 HistogramBinning(classes, num_bins));
  add_calibrator("isotonic regression", IsotonicCalibration(classes));
  if (print) {
    fmt::print("\ncalibrators fitted on {} held-out samples, judged on {} test samples\n",
               held_out.labels.numel(), test.labels.numel());
    fmt::print("  {:<26}{:>10}{:>9}{:>9}{:>9}{:>9}{:>13}{:>8}\n", "calibrator", "accuracy", "NLL",
               "Brier", "ECE", "MCE", "classwise", "fit s");
    fmt::print("  {}\n", std::string(93, '-'));
    for (const CalibratorRow& row : rows) {
      const CalibrationReport& r = row.test;
      fmt::print("  {:<26}{:>10}{:>9.4f}{:>9.4f}{:>9}{:>9}{:>13}{:>8.2f}\n", row.name,
                 percent(r.accuracy), r.nll, r.brier, percent(r.ece), percent(r.mce),
                 percent(r.classwise_ece), row.fit_seconds);
    }
  }
  return rows;
}

nlohmann::json calibrator_rows_json(const std::vector<CalibratorRow>& rows) {
  nlohmann::json out = nlohmann::json::object();
  for (const CalibratorRow& row : rows)
    out[row.name] = {{"accuracy", row.test.accuracy}, {"nll", row.test.nll},
                     {"brier", row.test.brier},       {"ece", row.test.ece},
                     {"mce", row.test.mce},           {"classwise_ece", row.test.classwise_ece}};
  return out;
}

void add_calibration_flags(CLI::App& app, CalibrationFlags& flags) {
  app.add_option("--heldout", flags.held_out,
                 "The last this many training images are held out to fit the temperature (0: "
                 "train on all, no calibration report)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--report-dir", flags.report_dir,
                 "Directory for the reliability diagram (SVG) and the bins (CSV)")
      ->capture_default_str();
  app.add_option("--export-predictions", flags.export_predictions,
                 "Write the test set's logits, labels and probabilities here (.h5 or .csv)");
}

nlohmann::json calibrate_at_end(Module& model, DataLoader* held_out, DataLoader& test,
                                const CalibrationFlags& flags, const std::string& example,
                                bool smoke) {
  // --distributed: every rank holds the same model; rank 0 reports for the job.
  if (!is_main_rank()) return nlohmann::json::object();
  const SplitLogits test_logits = collect_logits(model, test);
  if (!flags.export_predictions.empty()) {
    save_predictions(flags.export_predictions, test_logits.logits, test_logits.labels);
    fmt::print("test predictions: {}\n", flags.export_predictions);
  }
  if (held_out == nullptr) return nullptr;
  TemporaryDir temporary;
  std::filesystem::path dir = flags.report_dir;
  if (smoke)
    dir = temporary.make("bridle_" + example + "_XXXXXX");
  else
    std::filesystem::create_directories(dir);
  const CalibrationResult result =
      report_calibration(collect_logits(model, *held_out), test_logits,
                         {.name = example, .out_dir = dir.string(), .prefix = example});
  BRIDLE_CHECK(result.fit.nll_after <= result.fit.nll_before,
               "{}: temperature scaling raised the held-out NLL from {} to {}", example,
               result.fit.nll_before, result.fit.nll_after);
  BRIDLE_CHECK(svg::is_complete_svg(result.svg_path),
               "{}: the reliability diagram '{}' is incomplete", example, result.svg_path);
  nlohmann::json json = result.json();
  if (!smoke) json["figure"] = result.svg_path;
  return json;
}

}  // namespace bridle::examples
