// The training loop shared by the image-classifier examples (mnist_lenet,
// mnist_cnn, cifar10_resnet): each example parses its flags, builds its model and
// data loaders, and hands them to train_classifier(). mnist_mlp writes the same
// loop out in full, for reading.
//
//   examples::ClassifierFlags flags;  // the example's defaults, then
//   examples::add_classifier_flags(app, flags);
//   ...
//   examples::Loaders data = examples::mnist_loaders(flags.common, flags.calibration.held_out);
//   LeNet5 model;
//   return examples::train_classifier(flags, "mnist_lenet", model, data);
//
// run_classifier() handles --eval (evaluate a checkpoint and stop), --resume and
// --save (common/checkpointing.h), the learning-rate schedule, a progress line per
// epoch, the calibration report on the held-out split (common/calibration_report.h)
// and the final JSON metrics line.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "bridle.h"
#include "common/calibration_report.h"
#include "common/checkpointing.h"
#include "common/datasets.h"
#include "common/example_main.h"
#include "common/training_flags.h"

namespace bridle::examples {

struct EvalResult {
  double accuracy = 0, nll = 0;
};

// Accuracy and mean negative log-likelihood over a loader, in eval mode, without grad.
EvalResult evaluate_classifier(Module& model, DataLoader& loader);

struct ClassifierRun {
  std::string example;  // the name in the metrics line, e.g. "mnist_lenet"
  Module* model = nullptr;
  Optimizer* optimizer = nullptr;
  DataLoader* train_loader = nullptr;
  DataLoader* test_loader = nullptr;
  DataLoader* held_out_loader = nullptr;  // fits T at the end; null: no calibration
  CalibrationFlags calibration = {};      // --heldout, --report-dir, --export-predictions
  int64_t epochs = 1;
  // Sets the learning rate, stepped after every optimizer step (null: constant).
  // Built for epochs x train_loader->num_batches() steps; --resume moves it to the
  // saved step count.
  LRScheduler* schedule = nullptr;
  nlohmann::json config;  // saved in checkpoints; run_config(flags) plus the example's own
  // Generators besides the global one that a resumed run must restore (dropout masks).
  std::map<std::string, Generator*> generators = {};
};

// Trains (or only evaluates, with --eval) and reports; returns the exit code.
int run_classifier(const CommonFlags& flags, const CheckpointFlags& checkpoint_flags,
                   ClassifierRun& run);

// Every flag of a classifier example: the common ones, --save/--resume/--eval,
// --heldout/--report-dir/--export-predictions and --optimizer/--schedule/...
struct ClassifierFlags {
  CommonFlags common;
  CheckpointFlags checkpoint;
  CalibrationFlags calibration;
  OptimizerFlags optimizer;
};
void add_classifier_flags(CLI::App& app, ClassifierFlags& flags);

// Builds the optimizer and the schedule that flags.optimizer names over model's
// parameters and runs run_classifier() (one epoch with --smoke). config: the
// example's own settings, added to the run's config.
int train_classifier(const ClassifierFlags& flags, const std::string& example, Module& model,
                     const Loaders& data, const nlohmann::json& config = nlohmann::json::object(),
                     std::map<std::string, Generator*> generators = {});

}  // namespace bridle::examples
