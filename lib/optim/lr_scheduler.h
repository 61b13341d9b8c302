// Learning-rate schedules with PyTorch's scheduler.step() semantics
// (torch.optim.lr_scheduler): each sets every parameter group's lr.
//
//   SGD sgd(model.parameters(), {.lr = 0.1f, .momentum = 0.9f});
//   CosineAnnealingLR schedule(sgd, /*T_max=*/epochs);  // lr for epoch 0 is set here
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     train_one_epoch(model, sgd);
//     schedule.step();  // after the optimizer's steps, as in PyTorch
//   }
//
// Building a scheduler sets the lrs for epoch 0 (PyTorch's initial step);
// step() advances last_epoch() by one and sets the lrs for it. A schedule scales
// each group's base lr, the group's initial_lr (optimizer.h), the lr it had when
// the optimizer was built.
//
// Every LRScheduler here has a closed form, lrs_at(epoch), PyTorch's
// _get_closed_form_lr, and step() uses it: the lrs depend only on the epoch and
// the base lrs, so a resumed run (load_state) continues the schedule exactly.
// PyTorch's step() uses the chainable (recursive) forms instead, which agree up to
// rounding unless something else changes the lr in between. The lrs are computed
// in double (last_lr()); the optimizer holds them rounded to float32.
//
// Warmup: WarmupLR(optimizer, warmup_steps, start_factor, after) is PyTorch's
// SequentialLR([LinearLR(start_factor, 1.0, warmup_steps), after], [warmup_steps]):
// the lr rises linearly from start_factor * base to base, and from warmup_steps
// on it follows `after` from its epoch 0.
//
// ReduceLROnPlateau is not an LRScheduler (as in PyTorch): it has no schedule in
// advance but reacts to a metric, step(metric), and scales the groups' current lrs.
//
// state() / load_state(): what a scheduler must carry across a restart: its type,
// last_epoch and base lrs ("last_epoch", "base_lr_0", "base_lr_1", ...), or for
// ReduceLROnPlateau its counters. Tests: tests/optim/test_lr_scheduler.cpp against
// tests/fixtures/lr_schedules.json (scripts/make_scheduler_fixtures.py).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace bridle {

struct SchedulerState {
  std::string type;                      // "StepLR", ...; load_state checks it
  std::map<std::string, double> values;  // "last_epoch", "base_lr_0", ...
};

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances last_epoch by one and sets every group's lr for it.
  void step();
  // Each group's lr at an epoch (>= 0), in closed form; changes nothing.
  std::vector<double> lrs_at(int64_t epoch) const;
  // "StepLR", "CosineAnnealingLR", ...: names the scheduler in messages and states.
  virtual std::string type() const = 0;

  int64_t last_epoch() const { return last_epoch_; }
  // The lrs set by the last step (or the constructor), one per group, in double.
  const std::vector<double>& last_lr() const { return last_lr_; }
  // The lr of each group that the schedule scales.
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return optimizer_; }

  SchedulerState state() const;
  // Restores a state from state() and sets the groups' lrs for its epoch. Checks
  // everything first: a bad state throws bridle::Error and changes nothing.
  void load_state(const SchedulerState& state);

 protected:
  // base_lrs: one per group; empty takes the groups' initial_lr.
  explicit LRScheduler(Optimizer& optimizer, std::vector<double> base_lrs = {});
  // Sets the lrs of epoch 0. The most derived constructor calls it last, once its
  // members are set (a base constructor cannot call lrs_at).
  void initial_step();
  // lrs_at() for an epoch >= 0: PyTorch's _get_closed_form_lr.
  virtual std::vector<double> closed_form(int64_t epoch) const = 0;
  virtual void set_base_lrs(std::vector<double> base_lrs) { base_lrs_ = std::move(base_lrs); }

 private:
  friend class WarmupLR;  // keeps the scheduler it wraps on the same base lrs

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = -1;
  std::vector<double> last_lr_;
};

// lr = base * gamma^(epoch / step_size), integer division: decays every step_size epochs.
class StepLR final : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  std::string type() const override { return "StepLR"; }

 protected:
  std::vector<double> closed_form(int64_t epoch) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = base * gamma^(number of milestones <= epoch); milestones: positive, increasing.
class MultiStepLR final : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);
  std::string type() const override { return "MultiStepLR"; }

 protected:
  std::vector<double> closed_form(int64_t epoch) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// lr = base * gamma^epoch.
class ExponentialLR final : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);
  std::string type() const override { return "ExponentialLR"; }

 protected:
  std::vector<double> closed_form(int64_t epoch) const override;

 private:
  double gamma_;
};

// lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2: from base
// down to eta_min at T_max; past T_max it rises again (the closed form is periodic,
// as PyTorch's recursive form is).
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);
  std::string type() const override { return "CosineAnnealingLR"; }

 protected:
  std::vector<double> closed_form(int64_t epoch) const override;

 private:
  int64_t T_max_;
  double eta_min_;
};

// Linear warmup, then `after`:
//   epoch <  warmup_steps: lr = base * (start_factor + (1 - start_factor) * epoch / warmup_steps)
//   epoch >= warmup_steps: after.lrs_at(epoch - warmup_steps), or base if after is null
// `after` must be built on the same optimizer and scale the groups' initial lrs
// (any scheduler above; not OneCycleLR, which warms up itself). WarmupLR owns it
// and uses only its closed form: after's own step() and last_epoch() are unused.
class WarmupLR final : public LRScheduler {
 public:
  WarmupLR(Optimizer& optimizer, int64_t warmup_steps, double start_factor,
           std::unique_ptr<LRScheduler> after = nullptr);
  std::string type() const override;  // "WarmupLR(CosineAnnealingLR)", or "WarmupLR"
  const LRScheduler* after() const { return after_.get(); }

 protected:
  std::vector<double> closed_form(int64_t epoch) const override;
  void set_base_lrs(std::vector<double> base_lrs) override;

 private:
  int64_t warmup_steps_;
  double start_factor_;
  std::unique_ptr<LRScheduler> after_;
};

enum class AnnealStrategy { kCos, kLinear };

struct OneCycleLROptions {
  std::vector<double> max_lr = {};  // one for every group, or one per group
  int64_t total_steps = 0;          // step() may be called this many times
  double pct_start = 0.3;           // fraction of the steps spent rising
  AnnealStrategy anneal_strategy = AnnealStrategy::kCos;
  double div_factor = 25.0;       // initial lr = max_lr / div_factor
  double final_div_factor = 1e4;  // min lr = initial lr / final_div_factor
  bool three_phase = false;       // rise, fall back to initial, then anneal to min
};

// The 1cycle policy (Smith & Topin), PyTorch's OneCycleLR: from max_lr / div_factor
// up to max_lr over pct_start of total_steps, then down to the min lr (two phases),
// or back to the initial lr and then down to the min lr (three_phase). Its base
// lrs are the max_lrs; the groups' initial_lr is not used (nor changed, unlike
// PyTorch, which overwrites it). Momentum is not cycled: PyTorch's cycle_momentum
// is left out (use cycle_momentum=False there to compare).
class OneCycleLR final : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, OneCycleLROptions options);
  std::string type() const override { return "OneCycleLR"; }
  const OneCycleLROptions& options() const { return options_; }

 protected:
  // Throws past epoch total_steps, as PyTorch does.
  std::vector<double> closed_form(int64_t epoch) const override;

 private:
  enum class Point { kInitial, kMax, kMin };
  struct Phase {
    double end_step;
    Point start, end;
  };
  OneCycleLROptions options_;
  std::vector<Phase> phases_;
};

enum class PlateauMode { kMin, kMax };  // the metric should fall (loss) / rise (accuracy)
enum class ThresholdMode { kRel, kAbs };

struct ReduceLROnPlateauOptions {
  PlateauMode mode = PlateauMode::kMin;
  double factor = 0.1;      // new lr = lr * factor, in (0, 1)
  int64_t patience = 10;    // epochs without improvement tolerated before reducing
  double threshold = 1e-4;  // what counts as an improvement, see below
  ThresholdMode threshold_mode = ThresholdMode::kRel;
  int64_t cooldown = 0;              // epochs after a reduction in which bad epochs are ignored
  std::vector<double> min_lr = {0};  // floor: one for every group, or one per group
  double eps = 1e-8;                 // a reduction smaller than eps is skipped
};

// Reduces the lrs by factor once the metric has not improved for more than
// patience epochs (PyTorch's ReduceLROnPlateau). Improvement over the best value
// so far, in min mode: metric < best * (1 - threshold) (rel) or best - threshold
// (abs); in max mode: metric > best * (1 + threshold) or best + threshold. A NaN
// metric is never an improvement. A group's lr becomes max(lr * factor, min_lr),
// unless that lowers it by eps or less.
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  // One epoch's metric (e.g. the validation loss).
  void step(double metric);

  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& last_lr() const { return last_lr_; }
  double best() const { return best_; }  // +inf (min) / -inf (max) before the first step
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }
  const ReduceLROnPlateauOptions& options() const { return options_; }

  // Type "ReduceLROnPlateau": last_epoch, best, num_bad_epochs, cooldown_counter.
  // The lrs themselves are the optimizer's (its own state carries them).
  SchedulerState state() const;
  void load_state(const SchedulerState& state);

 private:
  bool is_better(double metric) const;

  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;
  std::vector<double> min_lrs_;  // one per group
  int64_t last_epoch_ = 0;
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace bridle
