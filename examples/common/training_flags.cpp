// The examples' optimizer and schedule flags; see training_flags.h.
#include "common/training_flags.h"

#include "common/checkpointing.h"

namespace bridle::examples {

void add_optimizer_flags(CLI::App& app, OptimizerFlags& flags) {
  app.add_option("--optimizer", flags.optimizer, "sgd, adam, adamw, rmsprop or adagrad")
      ->check(CLI::IsMember({"sgd", "adam", "adamw", "rmsprop", "adagrad"}))
      ->capture_default_str();
  app.add_option("--schedule", flags.schedule,
                 "Learning rate over the run: constant, step, cosine or onecycle")
      ->check(CLI::IsMember({"constant", "step", "cosine", "onecycle"}))
      ->capture_default_str();
  app.add_option("--momentum", flags.momentum, "SGD momentum")->capture_default_str();
  app.add_flag("--nesterov,!--no-nesterov", flags.nesterov, "Nesterov momentum (SGD)")
      ->capture_default_str();
  app.add_option("--weight-decay", flags.weight_decay, "Weight decay (L2; decoupled for adamw)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--no-decay-1d", flags.no_decay_1d,
               "No weight decay on biases and batch-norm parameters");
  app.add_option("--warmup-epochs", flags.warmup_epochs,
                 "Epochs of linear learning-rate warmup before the schedule")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerFlags& flags, float lr,
                                          const std::vector<Tensor>& params) {
  std::vector<ParamGroup> groups =
      flags.no_decay_1d ? weight_decay_groups(params) : std::vector<ParamGroup>{{.params = params}};
  const float decay = flags.weight_decay;
  if (flags.optimizer == "sgd")
    return std::make_unique<SGD>(groups, SGDOptions{.lr = lr,
                                                    .momentum = flags.momentum,
                                                    .weight_decay = decay,
                                                    .nesterov = flags.nesterov});
  if (flags.optimizer == "adam")
    return std::make_unique<Adam>(groups, AdamOptions{.lr = lr, .weight_decay = decay});
  if (flags.optimizer == "adamw")
    return std::make_unique<AdamW>(groups, AdamWOptions{.lr = lr, .weight_decay = decay});
  if (flags.optimizer == "rmsprop")
    return std::make_unique<RMSprop>(groups, RMSpropOptions{.lr = lr, .weight_decay = decay});
  if (flags.optimizer == "adagrad")
    return std::make_unique<Adagrad>(groups, AdagradOptions{.lr = lr, .weight_decay = decay});
  BRIDLE_FAIL("unknown optimizer '{}' (sgd, adam, adamw, rmsprop or adagrad)", flags.optimizer);
}

std::unique_ptr<LRScheduler> make_schedule(const OptimizerFlags& flags, Optimizer& optimizer,
                                           int64_t total_steps, int64_t steps_per_epoch) {
  const int64_t warmup = std::min<int64_t>(flags.warmup_epochs * steps_per_epoch, total_steps - 1);
  BRIDLE_CHECK(warmup <= 0 || flags.schedule != "onecycle",
               "--schedule onecycle warms up by itself: leave out --warmup-epochs");
  const int64_t steps = total_steps - std::max<int64_t>(warmup, 0);
  std::unique_ptr<LRScheduler> schedule;
  if (flags.schedule == "step") {
    schedule = std::make_unique<MultiStepLR>(
        optimizer,
        std::vector<int64_t>{std::max<int64_t>(1, steps / 2), std::max<int64_t>(2, steps * 3 / 4)},
        0.1);
  } else if (flags.schedule == "cosine") {
    schedule = std::make_unique<CosineAnnealingLR>(optimizer, std::max<int64_t>(1, steps));
  } else if (flags.schedule == "onecycle") {
    return std::make_unique<OneCycleLR>(
        optimizer, OneCycleLROptions{.max_lr = {optimizer.param_group(0).initial_lr},
                                     .total_steps = total_steps});
  }
  if (warmup > 0)
    return std::make_unique<WarmupLR>(optimizer, warmup, 1.0 / static_cast<double>(warmup),
                                      std::move(schedule));
  return schedule;
}

void resume_schedule(LRScheduler* schedule, const Optimizer& optimizer) {
  if (schedule == nullptr || optimizer.step_count() == 0) return;
  SchedulerState state = schedule->state();
  state.values["last_epoch"] = static_cast<double>(optimizer.step_count());
  schedule->load_state(state);
}

nlohmann::json optimizer_config(const OptimizerFlags& flags) {
  return {{"optimizer", flags.optimizer},
          {"schedule", flags.schedule},
          {"momentum", json_float(flags.momentum)},
          {"nesterov", flags.nesterov},
          {"weight_decay", json_float(flags.weight_decay)},
          {"no_decay_1d", flags.no_decay_1d},
          {"warmup_epochs", flags.warmup_epochs}};
}

}  // namespace bridle::examples
