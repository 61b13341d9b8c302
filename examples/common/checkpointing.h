// --save, --resume and --eval for the training examples, on top of
// lib/io/checkpoint.h:
//
//   --save PATH    write a checkpoint after every epoch (atomically: a crash
//                  mid-save keeps the previous one)
//   --resume PATH  continue the run saved there; with the same flags the
//                  losses and the final figures match the uninterrupted run
//   --eval PATH    load the saved weights and only evaluate
//
// In an example's main():
//
//   examples::CheckpointFlags checkpoint_flags;
//   examples::add_checkpoint_flags(app, checkpoint_flags);
//   ...
//   Checkpoint checkpoint{.model = &model, .optimizer = &optimizer};
//   const int64_t first = examples::resume(checkpoint_flags, checkpoint, config);
//   for (int64_t epoch = first; epoch <= epochs; ++epoch) {
//     ... train ...
//     examples::save_epoch(checkpoint_flags, checkpoint, epoch, config);
//   }
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "bridle.h"
#include "common/example_main.h"

namespace bridle::examples {

struct CheckpointFlags {
  std::string save;    // --save PATH
  std::string resume;  // --resume PATH
  std::string eval;    // --eval PATH
};

// Adds --save, --resume and --eval (--eval excludes the other two).
void add_checkpoint_flags(CLI::App& app, CheckpointFlags& flags);

// The settings that shape a training run (the common flags' part), saved in
// every checkpoint as its config; an example adds its own.
nlohmann::json run_config(const CommonFlags& flags);
// A float for the config as the shortest decimal that reads back as the same
// float: 0.05, not 0.05000000074505806.
nlohmann::json json_float(float value);

// With --resume: restores checkpoint (model, optimizer, global generator,
// epoch, step) and returns the epoch to continue from, warning about every
// setting in `config` that differs from the saved run's. Without: returns 1.
int64_t resume(const CheckpointFlags& flags, Checkpoint& checkpoint, const nlohmann::json& config);

// With --save: records epoch (completed), the optimizer's step count and
// config in checkpoint and saves it. Without: nothing.
void save_epoch(const CheckpointFlags& flags, Checkpoint& checkpoint, int64_t epoch,
                const nlohmann::json& config);

// Loads only the model's weights from path; returns the epoch they were saved after.
int64_t load_weights(const std::string& path, Module& model);

}  // namespace bridle::examples
