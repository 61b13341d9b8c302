// The training loop shared by the image-classifier examples (mnist_lenet,
// mnist_cnn, cifar10_resnet): each example builds its model, data loaders and
// optimizer, and hands them here. mnist_mlp writes the same loop out in full,
// for reading.
//
// run_classifier() handles --eval (evaluate a checkpoint and stop), --resume and
// --save (common/checkpointing.h), the learning-rate schedule, a progress line per
// epoch, the calibration report on the held-out split (common/calibration_report.h)
// and the final JSON metrics line.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "bridle.h"
#include "common/calibration_report.h"
#include "common/checkpointing.h"
#include "common/example_main.h"

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
  // The learning rate for optimizer step `step` of `total_steps`.
  std::function<float(int64_t step, int64_t total_steps)> lr_at;
  nlohmann::json config;  // saved in checkpoints; run_config(flags) plus the example's own
  // Generators besides the global one that a resumed run must restore (dropout masks).
  std::map<std::string, Generator*> generators = {};
};

// Trains (or only evaluates, with --eval) and reports; returns the exit code.
int run_classifier(const CommonFlags& flags, const CheckpointFlags& checkpoint_flags,
                   ClassifierRun& run);

// Cosine decay from `peak` to 0 over total_steps, after a linear warmup from 0
// over warmup_steps.
float warmup_cosine_lr(float peak, int64_t step, int64_t total_steps, int64_t warmup_steps = 0);

}  // namespace bridle::examples
