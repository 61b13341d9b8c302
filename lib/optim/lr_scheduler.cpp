// Learning-rate schedules: the closed forms of PyTorch's schedulers and
// ReduceLROnPlateau; see lr_scheduler.h. Formulas follow torch/optim/lr_scheduler.py
// (torch 1.13) term by term, in double.
#include "optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace bridle {
namespace {

constexpr double kPi = std::numbers::pi;

// Expands "one value for every group, or one per group" to one per group.
std::vector<double> per_group(const std::vector<double>& values, size_t groups,
                              const char* scheduler, const char* what) {
  BRIDLE_CHECK(values.size() == 1 || values.size() == groups,
               "{}: expected 1 or {} values of {} (one per parameter group), got {}", scheduler,
               groups, what, values.size());
  return values.size() == 1 ? std::vector<double>(groups, values[0]) : values;
}

void check_gamma(double gamma, const char* scheduler) {
  BRIDLE_CHECK(std::isfinite(gamma) && gamma > 0, "{}: gamma must be > 0, got {}", scheduler,
               gamma);
}

// A state entry that must be a whole number >= 0 (epochs, counters).
int64_t count_entry(double value, const std::string& scheduler, const char* key) {
  BRIDLE_CHECK(value >= 0 && value == std::floor(value) && value < 9e15,
               "{}::load_state: '{}' must be a whole number >= 0, got {}", scheduler, key, value);
  return static_cast<int64_t>(value);
}

double entry(const SchedulerState& state, const std::string& scheduler, const std::string& key) {
  auto it = state.values.find(key);
  BRIDLE_CHECK(it != state.values.end(), "{}::load_state: the state has no '{}'", scheduler, key);
  return it->second;
}

}  // namespace

// ---------------------------------------------------------------------------
// LRScheduler

LRScheduler::LRScheduler(Optimizer& optimizer, std::vector<double> base_lrs)
    : optimizer_(optimizer), base_lrs_(std::move(base_lrs)) {
  if (base_lrs_.empty())
    for (size_t g = 0; g < optimizer.num_param_groups(); ++g)
      base_lrs_.push_back(optimizer.param_group(g).initial_lr);
}

std::vector<double> LRScheduler::lrs_at(int64_t epoch) const {
  BRIDLE_CHECK(epoch >= 0, "{}: no learning rates for epoch {} (epochs start at 0)", type(), epoch);
  std::vector<double> lrs = closed_form(epoch);
  for (size_t g = 0; g < lrs.size(); ++g)
    BRIDLE_CHECK(lrs[g] >= 0 && lrs[g] <= std::numeric_limits<float>::max(),
                 "{}: the learning rate of parameter group {} at epoch {} would be {}", type(), g,
                 epoch, lrs[g]);
  return lrs;
}

void LRScheduler::initial_step() {
  last_epoch_ = -1;
  step();
}

void LRScheduler::step() {
  std::vector<double> lrs = lrs_at(last_epoch_ + 1);  // throws before anything changes
  for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, static_cast<float>(lrs[g]));
  last_lr_ = std::move(lrs);
  ++last_epoch_;
}

SchedulerState LRScheduler::state() const {
  SchedulerState state{.type = type(), .values = {}};
  state.values["last_epoch"] = static_cast<double>(last_epoch_);
  for (size_t g = 0; g < base_lrs_.size(); ++g)
    state.values[fmt::format("base_lr_{}", g)] = base_lrs_[g];
  return state;
}

void LRScheduler::load_state(const SchedulerState& state) {
  const std::string name = type();
  BRIDLE_CHECK(state.type == name, "{}::load_state: the state is of a {} scheduler, not {}", name,
               state.type, name);
  const size_t groups = base_lrs_.size();
  for (const auto& [key, value] : state.values) {
    bool known = key == "last_epoch";
    for (size_t g = 0; g < groups && !known; ++g) known = key == fmt::format("base_lr_{}", g);
    BRIDLE_CHECK(known, "{}::load_state: unknown entry '{}' = {} (the optimizer has {} groups)",
                 name, key, value, groups);
  }
  const int64_t epoch = count_entry(entry(state, name, "last_epoch"), name, "last_epoch");
  std::vector<double> base_lrs;
  for (size_t g = 0; g < groups; ++g) {
    const double lr = entry(state, name, fmt::format("base_lr_{}", g));
    BRIDLE_CHECK(std::isfinite(lr) && lr >= 0, "{}::load_state: invalid base_lr_{} {}", name, g,
                 lr);
    base_lrs.push_back(lr);
  }
  std::vector<double> old = base_lrs_;
  set_base_lrs(std::move(base_lrs));
  try {
    std::vector<double> lrs = lrs_at(epoch);  // e.g. OneCycleLR past total_steps
    for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, static_cast<float>(lrs[g]));
    last_lr_ = std::move(lrs);
    last_epoch_ = epoch;
  } catch (...) {
    set_base_lrs(std::move(old));
    throw;
  }
}

// ---------------------------------------------------------------------------
// StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  BRIDLE_CHECK(step_size >= 1, "StepLR: step_size must be >= 1, got {}", step_size);
  check_gamma(gamma, "StepLR");
  initial_step();
}

std::vector<double> StepLR::closed_form(int64_t epoch) const {
  std::vector<double> lrs;
  for (double base : base_lrs())
    lrs.push_back(base * std::pow(gamma_, static_cast<double>(epoch / step_size_)));
  return lrs;
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  BRIDLE_CHECK(!milestones_.empty(), "MultiStepLR: milestones is empty");
  for (size_t i = 0; i < milestones_.size(); ++i) {
    BRIDLE_CHECK(milestones_[i] >= 1, "MultiStepLR: milestone {} is {}; milestones must be >= 1", i,
                 milestones_[i]);
    BRIDLE_CHECK(i == 0 || milestones_[i] > milestones_[i - 1],
                 "MultiStepLR: milestones must increase, but milestone {} is {} after {}", i,
                 milestones_[i], milestones_[i - 1]);
  }
  check_gamma(gamma, "MultiStepLR");
  initial_step();
}

std::vector<double> MultiStepLR::closed_form(int64_t epoch) const {
  // gamma to the number of milestones reached: bisect_right(milestones, epoch).
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), epoch);
  const double decays = static_cast<double>(passed - milestones_.begin());
  std::vector<double> lrs;
  for (double base : base_lrs()) lrs.push_back(base * std::pow(gamma_, decays));
  return lrs;
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer), gamma_(gamma) {
  check_gamma(gamma, "ExponentialLR");
  initial_step();
}

std::vector<double> ExponentialLR::closed_form(int64_t epoch) const {
  std::vector<double> lrs;
  for (double base : base_lrs()) lrs.push_back(base * std::pow(gamma_, static_cast<double>(epoch)));
  return lrs;
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  BRIDLE_CHECK(T_max >= 1, "CosineAnnealingLR: T_max must be >= 1, got {}", T_max);
  BRIDLE_CHECK(std::isfinite(eta_min) && eta_min >= 0,
               "CosineAnnealingLR: eta_min must be >= 0, got {}", eta_min);
  initial_step();
}

std::vector<double> CosineAnnealingLR::closed_form(int64_t epoch) const {
  const double c = std::cos(kPi * static_cast<double>(epoch) / static_cast<double>(T_max_));
  std::vector<double> lrs;
  for (double base : base_lrs()) lrs.push_back(eta_min_ + (base - eta_min_) * (1 + c) / 2);
  return lrs;
}

// ---------------------------------------------------------------------------
// WarmupLR

WarmupLR::WarmupLR(Optimizer& optimizer, int64_t warmup_steps, double start_factor,
                   std::unique_ptr<LRScheduler> after)
    : LRScheduler(optimizer), warmup_steps_(warmup_steps), start_factor_(start_factor) {
  BRIDLE_CHECK(warmup_steps >= 1, "WarmupLR: warmup_steps must be >= 1, got {}", warmup_steps);
  BRIDLE_CHECK(start_factor > 0 && start_factor <= 1,
               "WarmupLR: start_factor must be in (0, 1], got {}", start_factor);
  if (after) {
    BRIDLE_CHECK(&after->optimizer() == &optimizer,
                 "WarmupLR: the scheduler after the warmup ({}) is on another optimizer",
                 after->type());
    BRIDLE_CHECK(after->base_lrs() == base_lrs(),
                 "WarmupLR: the scheduler after the warmup ({}) must scale the groups' initial "
                 "lrs (OneCycleLR has a warmup of its own)",
                 after->type());
  }
  after_ = std::move(after);
  initial_step();
}

std::string WarmupLR::type() const {
  return after_ ? "WarmupLR(" + after_->type() + ")" : "WarmupLR";
}

std::vector<double> WarmupLR::closed_form(int64_t epoch) const {
  if (epoch >= warmup_steps_) {
    if (after_) return after_->lrs_at(epoch - warmup_steps_);
    return base_lrs();
  }
  // LinearLR's closed form with end_factor 1.
  const double factor = start_factor_ + (1.0 - start_factor_) * static_cast<double>(epoch) /
                                            static_cast<double>(warmup_steps_);
  std::vector<double> lrs;
  for (double base : base_lrs()) lrs.push_back(base * factor);
  return lrs;
}

void WarmupLR::set_base_lrs(std::vector<double> base_lrs) {
  if (after_) after_->set_base_lrs(base_lrs);
  LRScheduler::set_base_lrs(std::move(base_lrs));
}

// ---------------------------------------------------------------------------
// OneCycleLR

OneCycleLR::OneCycleLR(Optimizer& optimizer, OneCycleLROptions options)
    : LRScheduler(optimizer,
                  per_group(options.max_lr, optimizer.num_param_groups(), "OneCycleLR", "max_lr")),
      options_(std::move(options)) {
  for (size_t g = 0; g < base_lrs().size(); ++g)
    BRIDLE_CHECK(std::isfinite(base_lrs()[g]) && base_lrs()[g] > 0,
                 "OneCycleLR: max_lr of parameter group {} must be > 0, got {}", g, base_lrs()[g]);
  const OneCycleLROptions& o = options_;
  BRIDLE_CHECK(o.total_steps >= 1, "OneCycleLR: total_steps must be >= 1, got {}", o.total_steps);
  BRIDLE_CHECK(o.pct_start >= 0 && o.pct_start <= 1,
               "OneCycleLR: pct_start must be in [0, 1], got {}", o.pct_start);
  BRIDLE_CHECK(std::isfinite(o.div_factor) && o.div_factor > 0,
               "OneCycleLR: div_factor must be > 0, got {}", o.div_factor);
  BRIDLE_CHECK(std::isfinite(o.final_div_factor) && o.final_div_factor > 0,
               "OneCycleLR: final_div_factor must be > 0, got {}", o.final_div_factor);
  const double total = static_cast<double>(o.total_steps);
  // Each phase runs from the previous phase's end_step (0 for the first) to its own.
  if (o.three_phase)
    phases_ = {{o.pct_start * total - 1, Point::kInitial, Point::kMax},
               {2 * o.pct_start * total - 2, Point::kMax, Point::kInitial},
               {total - 1, Point::kInitial, Point::kMin}};
  else
    phases_ = {{o.pct_start * total - 1, Point::kInitial, Point::kMax},
               {total - 1, Point::kMax, Point::kMin}};
  initial_step();
}

std::vector<double> OneCycleLR::closed_form(int64_t epoch) const {
  BRIDLE_CHECK(epoch <= options_.total_steps, "OneCycleLR: step {} is past total_steps {}", epoch,
               options_.total_steps);
  const double step = static_cast<double>(epoch);
  std::vector<double> lrs;
  for (double max_lr : base_lrs()) {
    const double initial_lr = max_lr / options_.div_factor;
    const double min_lr = initial_lr / options_.final_div_factor;
    auto value = [&](Point p) {
      return p == Point::kInitial ? initial_lr : p == Point::kMax ? max_lr : min_lr;
    };
    double start_step = 0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& phase = phases_[i];
      if (step <= phase.end_step || i + 1 == phases_.size()) {
        BRIDLE_CHECK(phase.end_step != start_step,
                     "OneCycleLR: phase {} has no steps (pct_start {}, total_steps {})", i,
                     options_.pct_start, options_.total_steps);
        const double pct = (step - start_step) / (phase.end_step - start_step);
        const double start = value(phase.start), end = value(phase.end);
        lrs.push_back(options_.anneal_strategy == AnnealStrategy::kCos
                          ? end + (start - end) / 2.0 * (std::cos(kPi * pct) + 1)
                          : (end - start) * pct + start);
        break;
      }
      start_step = phase.end_step;
    }
  }
  return lrs;
}

// ---------------------------------------------------------------------------
// ReduceLROnPlateau

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : optimizer_(optimizer), options_(std::move(options)) {
  const ReduceLROnPlateauOptions& o = options_;
  BRIDLE_CHECK(o.factor > 0 && o.factor < 1, "ReduceLROnPlateau: factor must be in (0, 1), got {}",
               o.factor);
  BRIDLE_CHECK(o.patience >= 0, "ReduceLROnPlateau: patience must be >= 0, got {}", o.patience);
  BRIDLE_CHECK(std::isfinite(o.threshold) && o.threshold >= 0,
               "ReduceLROnPlateau: threshold must be >= 0, got {}", o.threshold);
  BRIDLE_CHECK(o.cooldown >= 0, "ReduceLROnPlateau: cooldown must be >= 0, got {}", o.cooldown);
  BRIDLE_CHECK(std::isfinite(o.eps) && o.eps >= 0, "ReduceLROnPlateau: eps must be >= 0, got {}",
               o.eps);
  min_lrs_ = per_group(o.min_lr, optimizer.num_param_groups(), "ReduceLROnPlateau", "min_lr");
  for (size_t g = 0; g < min_lrs_.size(); ++g)
    BRIDLE_CHECK(std::isfinite(min_lrs_[g]) && min_lrs_[g] >= 0,
                 "ReduceLROnPlateau: min_lr of parameter group {} must be >= 0, got {}", g,
                 min_lrs_[g]);
  best_ = o.mode == PlateauMode::kMin ? std::numeric_limits<double>::infinity()
                                      : -std::numeric_limits<double>::infinity();
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) last_lr_.push_back(optimizer.lr(g));
}

bool ReduceLROnPlateau::is_better(double metric) const {
  const double t = options_.threshold;
  const bool rel = options_.threshold_mode == ThresholdMode::kRel;
  if (options_.mode == PlateauMode::kMin) return metric < (rel ? best_ * (1.0 - t) : best_ - t);
  return metric > (rel ? best_ * (t + 1.0) : best_ + t);
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (in_cooldown()) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
  }
  if (num_bad_epochs_ > options_.patience) {
    for (size_t g = 0; g < optimizer_.num_param_groups(); ++g) {
      const double old_lr = optimizer_.lr(g);
      const double new_lr = std::max(old_lr * options_.factor, min_lrs_[g]);
      if (old_lr - new_lr > options_.eps) optimizer_.set_lr(g, static_cast<float>(new_lr));
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
  for (size_t g = 0; g < last_lr_.size(); ++g) last_lr_[g] = optimizer_.lr(g);
}

SchedulerState ReduceLROnPlateau::state() const {
  return {.type = "ReduceLROnPlateau",
          .values = {{"last_epoch", static_cast<double>(last_epoch_)},
                     {"best", best_},
                     {"num_bad_epochs", static_cast<double>(num_bad_epochs_)},
                     {"cooldown_counter", static_cast<double>(cooldown_counter_)}}};
}

void ReduceLROnPlateau::load_state(const SchedulerState& state) {
  const std::string name = "ReduceLROnPlateau";
  BRIDLE_CHECK(state.type == name, "{}::load_state: the state is of a {} scheduler, not {}", name,
               state.type, name);
  for (const auto& [key, value] : state.values)
    BRIDLE_CHECK(key == "last_epoch" || key == "best" || key == "num_bad_epochs" ||
                     key == "cooldown_counter",
                 "{}::load_state: unknown entry '{}' = {}", name, key, value);
  const int64_t epoch = count_entry(entry(state, name, "last_epoch"), name, "last_epoch");
  const double best = entry(state, name, "best");
  BRIDLE_CHECK(!std::isnan(best), "{}::load_state: best is NaN", name);
  const int64_t bad = count_entry(entry(state, name, "num_bad_epochs"), name, "num_bad_epochs");
  const int64_t cooldown =
      count_entry(entry(state, name, "cooldown_counter"), name, "cooldown_counter");
  last_epoch_ = epoch;
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  for (size_t g = 0; g < last_lr_.size(); ++g) last_lr_[g] = optimizer_.lr(g);
}

}  // namespace bridle
