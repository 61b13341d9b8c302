// --optimizer and --schedule for the classifier examples: which optimizer
// (lib/optim) updates the weights and how its learning rate moves over the run.
//
//   --optimizer sgd|adam|adamw|rmsprop|adagrad   (--lr is the peak learning rate)
//   --momentum M        SGD's momentum; --nesterov for Nesterov momentum
//   --weight-decay W    L2 for SGD/Adam/RMSprop/Adagrad, decoupled for AdamW
//   --no-decay-1d       no weight decay on one-dimensional parameters (biases,
//                       batch-norm scales and shifts): weight_decay_groups()
//   --schedule constant|step|cosine|onecycle, stepped after every optimizer step:
//       step      x0.1 at 50% and at 75% of the steps (MultiStepLR)
//       cosine    from --lr down to 0 (CosineAnnealingLR)
//       onecycle  up from lr/25 to --lr over 30% of the steps, then down to lr/25e4
//                 (OneCycleLR; it warms up by itself, so no --warmup-epochs)
//   --warmup-epochs E   a linear warmup from lr/(warmup steps) before the schedule
//                       (WarmupLR)
//
// In an example's main(): fill OptimizerFlags with the example's defaults, then
//   examples::add_optimizer_flags(app, optimizer_flags);
//   auto optimizer = examples::make_optimizer(optimizer_flags, flags.lr, model.parameters());
//   auto schedule = examples::make_schedule(optimizer_flags, *optimizer, total_steps,
//                                           steps_per_epoch);
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bridle.h"

namespace bridle::examples {

struct OptimizerFlags {
  std::string optimizer = "sgd";
  std::string schedule = "cosine";
  float momentum = 0.9f;
  bool nesterov = false;
  float weight_decay = 0.0f;
  bool no_decay_1d = false;
  int warmup_epochs = 0;
};

void add_optimizer_flags(CLI::App& app, OptimizerFlags& flags);

// The optimizer the flags name, over params, with peak learning rate lr.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerFlags& flags, float lr,
                                          const std::vector<Tensor>& params);

// The schedule the flags name over total_steps optimizer steps (null for
// constant without warmup). Step it after every optimizer step.
std::unique_ptr<LRScheduler> make_schedule(const OptimizerFlags& flags, Optimizer& optimizer,
                                           int64_t total_steps, int64_t steps_per_epoch);

// After --resume: moves schedule (if any) to the optimizer's saved step count, so
// the learning rate continues where the saved run left it.
void resume_schedule(LRScheduler* schedule, const Optimizer& optimizer);

// The flags for a run's config (saved in its checkpoints).
nlohmann::json optimizer_config(const OptimizerFlags& flags);

}  // namespace bridle::examples
