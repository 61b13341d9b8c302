// Calibration at the end of training, for any classifier example: collect
// logits on a held-out split and on the test set, fit temperature scaling
// (lib/calib/temperature_scaling.h) on the held-out logits only, and report on
// the test set before and after, with the metrics of lib/calib/metrics.h.
//
// Shapes: N samples, C classes; logits [N, C] float32, labels [N] int64.
//
//   examples::CalibrationReportOptions options{.name = "mnist_mlp", .out_dir = out};
//   examples::CalibrationResult cal =
//       examples::report_calibration(model, *held_out_loader, *test_loader, options);
//   metrics["calibration"] = cal.json();
//
// It prints a table (accuracy, NLL, Brier, ECE, MCE, classwise ECE, the share
// flagged uncertain below a top probability of 0.6, and T), writes
// OUT/<prefix>_reliability.svg (before | after: per-bin accuracy against the
// diagonal with the gap shaded, a confidence histogram under each) and the bins
// as OUT/<prefix>_bins_{before,after}.csv. The test set is never used to fit T.
// The calibrate example (examples/calibrate) shows it on MNIST.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "bridle.h"

namespace bridle::examples {

// Logits and labels of a whole split, on the CPU.
struct SplitLogits {
  Tensor logits;  // [N, C] float32
  Tensor labels;  // [N] int64
};

// Runs model over every batch of loader (epoch 0, in its order) in eval mode
// under NoGradGuard and concatenates the logits; restores the training mode.
SplitLogits collect_logits(Module& model, DataLoader& loader);

struct CalibrationReportOptions {
  std::string name = "model";          // in the table's and the figure's titles
  std::string out_dir = ".";           // where the SVG and CSV files go
  std::string prefix = "calibration";  // the files' names start with it
  int num_bins = 15;
  double uncertain_threshold = 0.6;  // flag_uncertain below this top probability
  bool print = true;                 // print the table on stdout
};

struct CalibrationResult {
  TemperatureFit fit;               // T and the held-out NLL before/after
  CalibrationReport before, after;  // test set, at T = 1 and at the fitted T
  UncertaintyReport uncertain_before, uncertain_after;
  std::string svg_path, csv_before, csv_after;
  // The figures for a JSON metrics line: temperature, heldout_nll_{before,after},
  // test_{accuracy,nll,brier,ece,mce,classwise_ece,flagged}_{before,after}.
  nlohmann::json json() const;
};

// Fits T on held_out, reports on test; writes the files and prints the table.
CalibrationResult report_calibration(const SplitLogits& held_out, const SplitLogits& test,
                                     const CalibrationReportOptions& options = {});
// The same, collecting the logits from model first.
CalibrationResult report_calibration(Module& model, DataLoader& held_out, DataLoader& test,
                                     const CalibrationReportOptions& options = {});

// Every calibrator of lib/calib fitted on held_out and judged on test, one row
// each: temperature, vector and matrix scaling, histogram binning and isotonic
// regression (and "none"). Only temperature scaling keeps the accuracy by
// construction; the others may move the argmax.
struct CalibratorRow {
  std::string name;
  CalibrationReport test;  // on the test split
  double fit_seconds = 0;
};
std::vector<CalibratorRow> compare_calibrators(const SplitLogits& held_out, const SplitLogits& test,
                                               int num_bins = 15, bool print = true);
nlohmann::json calibrator_rows_json(const std::vector<CalibratorRow>& rows);

// The calibration flags every classifier example has:
//   --heldout N               the last N training images are not trained on; they
//                             fit T at the end (0: train on all, no calibration)
//   --report-dir DIR          where the reliability diagram and the bins go
//   --export-predictions PATH the test set's logits, labels and probabilities, as
//                             HDF5 (.h5) or CSV (.csv) (lib/io/predictions.h)
struct CalibrationFlags {
  int64_t held_out = 5000;
  std::string report_dir = "reports";
  std::string export_predictions;
};
void add_calibration_flags(CLI::App& app, CalibrationFlags& flags);

// The end of a classifier example: fits T on held_out (skipped when null),
// prints the report on test and writes its files to flags.report_dir (with
// --smoke, to a temporary directory that is removed), and exports the test
// predictions when asked. Returns cal.json() for the metrics line (null when
// skipped). Throws if the figure came out incomplete or the fit raised the
// held-out NLL, so a smoke run fails loudly.
nlohmann::json calibrate_at_end(Module& model, DataLoader* held_out, DataLoader& test,
                                const CalibrationFlags& flags, const std::string& example,
                                bool smoke);

}  // namespace bridle::examples
