// Checkpoints: a training run's state in one HDF5 file, written atomically.
//
//   Checkpoint checkpoint{.model = &model, .optimizer = &optimizer};
//   int64_t first_epoch = 1;
//   if (resuming) {
//     load_checkpoint(path, checkpoint);  // weights, momentum, RNG states, epoch, step
//     first_epoch = checkpoint.epoch + 1;
//   }
//   for (int64_t epoch = first_epoch; epoch <= epochs; ++epoch) {
//     ... train ...
//     checkpoint.epoch = epoch;
//     checkpoint.global_step = optimizer.step_count();
//     save_checkpoint(path, checkpoint);
//   }
//
// One Checkpoint says both what to save and what to restore into: the pointers
// name the live objects, the plain fields carry the counters. What a file holds
// (groups, datasets, attributes) and how to read it with h5py: docs/checkpoints.md.
//
// Saving writes "<path>.tmp.<pid>" next to path, fsyncs it and renames it over
// path, so a crash or kill mid-save leaves the previous checkpoint intact.
//
// Loading checks everything before it changes anything: a missing or unexpected
// key, a shape or dtype that differs from the model's, or a file that is not a
// (complete) bridle checkpoint throws bridle::Error naming the file and the key,
// and leaves the model, optimizer and generators as they were.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/factory.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace bridle {

struct Checkpoint {
  // Parameters and buffers, one dataset per name ("fc1.weight").
  Module* model = nullptr;
  // Its state(): step count, hyper-parameters and per-parameter tensors, the
  // latter keyed by the parameter's name in `model` (so model must be set too).
  Optimizer* optimizer = nullptr;
  // Named generators whose state to save and restore (e.g. a dropout layer's),
  // besides the global default_generator() when with_default_generator is set.
  // Loading needs each named one in the file; other names in the file are ignored.
  std::map<std::string, Generator*> generators = {};
  bool with_default_generator = true;
  // Counters and configuration: written by save, filled in by load.
  int64_t epoch = 0;          // epochs completed
  int64_t global_step = 0;    // optimizer steps taken
  std::string config = "{}";  // the run's configuration, as JSON text (checked on save)
};

// Writes everything `checkpoint` names to path (atomically; see above).
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// Restores into the objects checkpoint points to and sets its epoch,
// global_step and config. With every pointer null and with_default_generator
// false it only reads the counters and the config.
void load_checkpoint(const std::string& path, Checkpoint& checkpoint);

namespace detail {
// For tests: called by save_checkpoint with the temporary file's path after
// the model's tensors are written and before the file is complete, to simulate
// a crash mid-save (throw, or kill the process). nullptr (the default): none.
using CheckpointSaveHook = void (*)(const std::string& temp_path);
void set_checkpoint_save_hook(CheckpointSaveHook hook);
}  // namespace detail

}  // namespace bridle
