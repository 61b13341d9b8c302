// Learning-rate schedules (lib/optim/lr_scheduler.h): every schedule against
// torch.optim.lr_scheduler in fixtures/lr_schedules.json
// (scripts/make_scheduler_fixtures.py: an SGD with two parameter groups, both
// groups' lr after construction and after each step), state round trips in the
// middle of a schedule, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_error;
using json = nlohmann::json;

const json& fixture() {
  static const json doc = [] {
    std::string path = std::string(BRIDLE_FIXTURES_DIR) + "/lr_schedules.json";
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("cannot open " + path + " (see scripts/make_scheduler_fixtures.py)");
    return json::parse(in);
  }();
  return doc;
}

// An SGD with one parameter per group and the given lrs (the fixture's: float32 values).
SGD make_sgd(const std::vector<double>& lrs) {
  std::vector<ParamGroup> groups;
  for (double lr : lrs)
    groups.push_back({.params = {ones({1}, TensorOptions().with_requires_grad())},
                      .lr = static_cast<float>(lr)});
  return SGD(std::move(groups), {.lr = 0.5f});
}

SGD fixture_sgd() { return make_sgd(fixture()["base_lrs"].get<std::vector<double>>()); }

std::unique_ptr<LRScheduler> make_scheduler(Optimizer& optimizer, const std::string& kind,
                                            const json& a) {
  if (kind == "StepLR")
    return std::make_unique<StepLR>(optimizer, a["step_size"].get<int64_t>(),
                                    a["gamma"].get<double>());
  if (kind == "MultiStepLR")
    return std::make_unique<MultiStepLR>(optimizer, a["milestones"].get<std::vector<int64_t>>(),
                                         a["gamma"].get<double>());
  if (kind == "ExponentialLR")
    return std::make_unique<ExponentialLR>(optimizer, a["gamma"].get<double>());
  if (kind == "CosineAnnealingLR")
    return std::make_unique<CosineAnnealingLR>(optimizer, a["T_max"].get<int64_t>(),
                                               a["eta_min"].get<double>());
  if (kind == "WarmupLR") {
    std::unique_ptr<LRScheduler> after;
    if (!a["after"].is_null())
      after = make_scheduler(optimizer, a["after"]["kind"].get<std::string>(), a["after"]["args"]);
    return std::make_unique<WarmupLR>(optimizer, a["warmup_steps"].get<int64_t>(),
                                      a["start_factor"].get<double>(), std::move(after));
  }
  if (kind == "OneCycleLR") {
    OneCycleLROptions o;
    o.max_lr = a["max_lr"].is_array() ? a["max_lr"].get<std::vector<double>>()
                                      : std::vector<double>{a["max_lr"].get<double>()};
    o.total_steps = a["total_steps"].get<int64_t>();
    o.pct_start = a["pct_start"].get<double>();
    o.anneal_strategy =
        a["anneal_strategy"] == "cos" ? AnnealStrategy::kCos : AnnealStrategy::kLinear;
    o.div_factor = a["div_factor"].get<double>();
    o.final_div_factor = a["final_div_factor"].get<double>();
    o.three_phase = a["three_phase"].get<bool>();
    return std::make_unique<OneCycleLR>(optimizer, o);
  }
  throw std::runtime_error("unknown scheduler kind " + kind);
}

ReduceLROnPlateauOptions plateau_options(const json& a) {
  ReduceLROnPlateauOptions o;
  o.mode = a["mode"] == "min" ? PlateauMode::kMin : PlateauMode::kMax;
  o.factor = a["factor"].get<double>();
  o.patience = a["patience"].get<int64_t>();
  o.threshold = a["threshold"].get<double>();
  o.threshold_mode = a["threshold_mode"] == "rel" ? ThresholdMode::kRel : ThresholdMode::kAbs;
  o.cooldown = a["cooldown"].get<int64_t>();
  o.min_lr = a["min_lr"].is_array() ? a["min_lr"].get<std::vector<double>>()
                                    : std::vector<double>{a["min_lr"].get<double>()};
  o.eps = a["eps"].get<double>();
  return o;
}

std::vector<json> cases(bool plateau) {
  std::vector<json> out;
  for (const json& c : fixture()["cases"])
    if ((c["kind"] == "ReduceLROnPlateau") == plateau) out.push_back(c);
  return out;
}

// The scheduler's own lrs (double) agree with PyTorch's to rounding: both start
// from the same float32 base lrs, PyTorch's recursive forms and our closed forms
// differ by a few ulps. The optimizer holds them as float32.
void expect_lrs(const std::vector<double>& scheduler_lrs, const Optimizer& optimizer,
                const json& expected, const std::string& what) {
  ASSERT_EQ(scheduler_lrs.size(), expected.size()) << what;
  for (size_t g = 0; g < expected.size(); ++g) {
    const double want = expected[g].get<double>();
    EXPECT_NEAR(scheduler_lrs[g], want, 1e-15 + 1e-10 * std::abs(want)) << what << " group " << g;
    EXPECT_NEAR(optimizer.lr(g), want, 1e-12 + 1e-6 * std::abs(want)) << what << " group " << g;
  }
}

TEST(LRScheduler, MatchesPyTorchSchedules) {
  const int64_t steps = fixture()["steps"].get<int64_t>();
  std::vector<json> schedules = cases(false);
  ASSERT_GE(schedules.size(), 10u);
  for (const json& c : schedules) {
    const std::string name = c["name"].get<std::string>();
    const json& lrs = c["lrs"];
    ASSERT_EQ(lrs.size(), static_cast<size_t>(steps + 1)) << name;
    SGD sgd = fixture_sgd();
    std::unique_ptr<LRScheduler> scheduler =
        make_scheduler(sgd, c["kind"].get<std::string>(), c["args"]);
    EXPECT_EQ(scheduler->last_epoch(), 0);
    expect_lrs(scheduler->last_lr(), sgd, lrs[0], name + " epoch 0");
    for (int64_t epoch = 1; epoch <= steps; ++epoch) {
      scheduler->step();
      ASSERT_EQ(scheduler->last_epoch(), epoch);
      expect_lrs(scheduler->last_lr(), sgd, lrs[epoch], name + " epoch " + std::to_string(epoch));
      // The closed form, without stepping, gives the same numbers.
      EXPECT_EQ(scheduler->lrs_at(epoch), scheduler->last_lr()) << name << " epoch " << epoch;
    }
  }
}

TEST(ReduceLROnPlateau, MatchesPyTorch) {
  std::vector<json> plateaus = cases(true);
  ASSERT_GE(plateaus.size(), 4u);
  for (const json& c : plateaus) {
    const std::string name = c["name"].get<std::string>();
    const json& lrs = c["lrs"];
    const std::vector<double> metrics = c["metrics"].get<std::vector<double>>();
    SGD sgd = fixture_sgd();
    ReduceLROnPlateau plateau(sgd, plateau_options(c["args"]));
    for (size_t t = 0; t <= metrics.size(); ++t) {
      if (t > 0) plateau.step(metrics[t - 1]);
      EXPECT_EQ(plateau.last_epoch(), static_cast<int64_t>(t));
      // The lrs are float32 in the optimizer, and each reduction starts from them.
      for (size_t g = 0; g < 2; ++g) {
        const double want = lrs[t][g].get<double>();
        EXPECT_NEAR(sgd.lr(g), want, 1e-6 * want) << name << " step " << t << " group " << g;
        EXPECT_EQ(plateau.last_lr()[g], static_cast<double>(sgd.lr(g)));
      }
    }
  }
}

// A run stopped after `split` steps and resumed from state() continues exactly
// like the uninterrupted one. The resumed optimizer starts with other lrs: the
// base lrs come from the scheduler's state.
TEST(LRScheduler, StateRoundTripContinuesTheSchedule) {
  const int64_t steps = fixture()["steps"].get<int64_t>();
  const int64_t split = 13;
  for (const json& c : cases(false)) {
    const std::string name = c["name"].get<std::string>();
    SGD sgd = fixture_sgd();
    std::unique_ptr<LRScheduler> scheduler =
        make_scheduler(sgd, c["kind"].get<std::string>(), c["args"]);
    for (int64_t t = 0; t < split; ++t) scheduler->step();
    SchedulerState state = scheduler->state();
    EXPECT_EQ(state.type, scheduler->type());
    EXPECT_EQ(state.values.at("last_epoch"), static_cast<double>(split));
    EXPECT_EQ(state.values.size(), 3u) << name;  // last_epoch, base_lr_0, base_lr_1

    SGD resumed_sgd = make_sgd({0.7, 0.3});
    std::unique_ptr<LRScheduler> resumed =
        make_scheduler(resumed_sgd, c["kind"].get<std::string>(), c["args"]);
    resumed->load_state(state);
    EXPECT_EQ(resumed->last_epoch(), split);
    EXPECT_EQ(resumed->last_lr(), scheduler->last_lr()) << name;
    EXPECT_EQ(resumed_sgd.lr(0), sgd.lr(0)) << name;
    for (int64_t epoch = split + 1; epoch <= steps; ++epoch) {
      scheduler->step();
      resumed->step();
      EXPECT_EQ(resumed->last_lr(), scheduler->last_lr()) << name << " epoch " << epoch;
      expect_lrs(resumed->last_lr(), resumed_sgd, c["lrs"][epoch],
                 name + " resumed, epoch " + std::to_string(epoch));
    }
  }
}

// ReduceLROnPlateau's counters travel in its state, its lrs in the optimizer's.
TEST(ReduceLROnPlateau, StateRoundTripContinues) {
  const size_t split = 11;
  for (const json& c : cases(true)) {
    const std::string name = c["name"].get<std::string>();
    const std::vector<double> metrics = c["metrics"].get<std::vector<double>>();
    SGD sgd = fixture_sgd();
    ReduceLROnPlateau plateau(sgd, plateau_options(c["args"]));
    for (size_t t = 0; t < split; ++t) plateau.step(metrics[t]);
    SchedulerState state = plateau.state();
    OptimizerState optimizer_state = sgd.state();

    SGD resumed_sgd = fixture_sgd();
    resumed_sgd.load_state(optimizer_state);
    ReduceLROnPlateau resumed(resumed_sgd, plateau_options(c["args"]));
    resumed.load_state(state);
    EXPECT_EQ(resumed.best(), plateau.best()) << name;
    EXPECT_EQ(resumed.num_bad_epochs(), plateau.num_bad_epochs()) << name;
    EXPECT_EQ(resumed.cooldown_counter(), plateau.cooldown_counter()) << name;
    for (size_t t = split; t < metrics.size(); ++t) {
      plateau.step(metrics[t]);
      resumed.step(metrics[t]);
      EXPECT_EQ(resumed.last_epoch(), plateau.last_epoch());
      EXPECT_EQ(resumed.last_lr(), plateau.last_lr()) << name << " step " << t + 1;
    }
  }
}

TEST(LRScheduler, WarmupThenCosineByHand) {
  // base 1, 4 warmup steps from 0.25: 0.25, 0.4375, 0.625, 0.8125, then cosine
  // with T_max 2: 1, 0.5, 0.
  SGD sgd = make_sgd({1.0});
  WarmupLR schedule(sgd, 4, 0.25, std::make_unique<CosineAnnealingLR>(sgd, 2));
  EXPECT_EQ(schedule.type(), "WarmupLR(CosineAnnealingLR)");
  const std::vector<double> expected = {0.25, 0.4375, 0.625, 0.8125, 1.0, 0.5, 0.0};
  for (size_t e = 0; e < expected.size(); ++e) {
    if (e > 0) schedule.step();
    EXPECT_NEAR(schedule.last_lr()[0], expected[e], 1e-15) << "epoch " << e;
  }
}

TEST(LRScheduler, InvalidArgumentsAreErrors) {
  SGD sgd = make_sgd({0.1, 0.02});
  expect_error([&] { StepLR(sgd, 0); }, {"StepLR", "step_size", "0"});
  expect_error([&] { StepLR(sgd, 3, 0.0); }, {"StepLR", "gamma", "0"});
  expect_error([&] { StepLR(sgd, 3, -0.5); }, {"gamma", "-0.5"});
  EXPECT_EQ(sgd.lr(0), 0.1f);  // a failed constructor leaves the lrs alone
  expect_error([&] { MultiStepLR(sgd, {}); }, {"MultiStepLR", "empty"});
  expect_error([&] { MultiStepLR(sgd, {5, 3}); }, {"increase", "3 after 5"});
  expect_error([&] { MultiStepLR(sgd, {3, 3}); }, {"increase", "3 after 3"});
  expect_error([&] { MultiStepLR(sgd, {0, 3}); }, {"milestone 0 is 0"});
  expect_error([&] { MultiStepLR(sgd, {2, 3}, 0.0); }, {"gamma", "0"});
  expect_error([&] { ExponentialLR(sgd, -1.0); }, {"ExponentialLR", "gamma", "-1"});
  expect_error([&] { CosineAnnealingLR(sgd, 0); }, {"CosineAnnealingLR", "T_max", "0"});
  expect_error([&] { CosineAnnealingLR(sgd, 10, -0.1); }, {"eta_min", "-0.1"});
  expect_error([&] { WarmupLR(sgd, 0, 0.1); }, {"WarmupLR", "warmup_steps", "0"});
  expect_error([&] { WarmupLR(sgd, 5, 0.0); }, {"start_factor", "0"});
  expect_error([&] { WarmupLR(sgd, 5, 1.5); }, {"start_factor", "1.5"});
  SGD other = make_sgd({0.1, 0.02});
  expect_error([&] { WarmupLR(sgd, 5, 0.1, std::make_unique<StepLR>(other, 3)); },
               {"WarmupLR", "StepLR", "another optimizer"});
  expect_error(
      [&] {
        WarmupLR(sgd, 5, 0.1, std::make_unique<OneCycleLR>(sgd, OneCycleLROptions{{1.0}, 10}));
      },
      {"WarmupLR", "OneCycleLR", "initial"});
  expect_error(
      [&] {
        OneCycleLR(sgd, {.max_lr = {1, 2, 3}, .total_steps = 10});
      },
      {"OneCycleLR", "max_lr", "got 3"});
  expect_error([&] { OneCycleLR(sgd, {.max_lr = {}, .total_steps = 10}); }, {"max_lr", "got 0"});
  expect_error([&] { OneCycleLR(sgd, {.max_lr = {0.0}, .total_steps = 10}); },
               {"max_lr", "group 0", "0"});
  expect_error([&] { OneCycleLR(sgd, {.max_lr = {1.0}, .total_steps = 0}); }, {"total_steps", "0"});
  expect_error([&] { OneCycleLR(sgd, {.max_lr = {1.0}, .total_steps = 10, .pct_start = 1.5}); },
               {"pct_start", "1.5"});
  expect_error([&] { OneCycleLR(sgd, {.max_lr = {1.0}, .total_steps = 10, .div_factor = 0}); },
               {"div_factor", "0"});

  // OneCycleLR allows total_steps steps; one more throws and changes nothing.
  OneCycleLR cycle(sgd, {.max_lr = {1.0, 0.5}, .total_steps = 3});
  for (int t = 0; t < 3; ++t) cycle.step();
  const float lr = sgd.lr(0);
  expect_error([&] { cycle.step(); }, {"OneCycleLR", "step 4", "total_steps 3"});
  EXPECT_EQ(cycle.last_epoch(), 3);
  EXPECT_EQ(sgd.lr(0), lr);
  expect_error([&] { cycle.lrs_at(-1); }, {"epoch -1"});

  using O = ReduceLROnPlateauOptions;
  expect_error([&] { ReduceLROnPlateau(sgd, O{.factor = 1.0}); }, {"factor", "1"});
  expect_error([&] { ReduceLROnPlateau(sgd, O{.factor = 0.0}); }, {"factor", "0"});
  expect_error([&] { ReduceLROnPlateau(sgd, O{.patience = -1}); }, {"patience", "-1"});
  expect_error([&] { ReduceLROnPlateau(sgd, O{.threshold = -1e-3}); }, {"threshold", "-0.001"});
  expect_error([&] { ReduceLROnPlateau(sgd, O{.cooldown = -2}); }, {"cooldown", "-2"});
  expect_error([&] { ReduceLROnPlateau(sgd, O{.min_lr = {0, 0, 0}}); }, {"min_lr", "got 3"});
  expect_error(
      [&] {
        ReduceLROnPlateau(sgd, O{.min_lr = {0.0, -1.0}});
      },
      {"min_lr", "group 1", "-1"});
  expect_error([&] { ReduceLROnPlateau(sgd, O{.eps = -1.0}); }, {"eps", "-1"});
}

TEST(LRScheduler, BadStatesAreErrors) {
  SGD sgd = make_sgd({0.1, 0.02});
  StepLR step(sgd, 5);
  SchedulerState good = step.state();

  CosineAnnealingLR cosine(sgd, 10);
  expect_error([&] { cosine.load_state(good); },
               {"CosineAnnealingLR::load_state", "StepLR scheduler"});
  SchedulerState s = good;
  s.values.erase("last_epoch");
  expect_error([&] { step.load_state(s); }, {"StepLR::load_state", "last_epoch"});
  s = good;
  s.values["last_epoch"] = 2.5;
  expect_error([&] { step.load_state(s); }, {"last_epoch", "2.5"});
  s.values["last_epoch"] = -1;
  expect_error([&] { step.load_state(s); }, {"last_epoch", "-1"});
  s = good;
  s.values["gamma"] = 0.5;
  expect_error([&] { step.load_state(s); }, {"unknown entry 'gamma'"});
  s = good;
  s.values["base_lr_2"] = 0.5;  // a third group
  expect_error([&] { step.load_state(s); }, {"unknown entry 'base_lr_2'", "2 groups"});
  s = good;
  s.values.erase("base_lr_1");
  expect_error([&] { step.load_state(s); }, {"base_lr_1"});
  s = good;
  s.values["base_lr_0"] = -0.1;
  expect_error([&] { step.load_state(s); }, {"base_lr_0", "-0.1"});

  // Past OneCycleLR's total_steps: refused, nothing changes.
  OneCycleLR cycle(sgd, {.max_lr = {1.0}, .total_steps = 5});
  SchedulerState late = cycle.state();
  late.values["last_epoch"] = 6;
  late.values["base_lr_0"] = 2.0;
  expect_error([&] { cycle.load_state(late); }, {"OneCycleLR", "step 6", "total_steps 5"});
  EXPECT_EQ(cycle.last_epoch(), 0);
  EXPECT_EQ(cycle.base_lrs()[0], 1.0);

  ReduceLROnPlateau plateau(sgd);
  SchedulerState p = plateau.state();
  EXPECT_EQ(p.values.at("best"), std::numeric_limits<double>::infinity());
  expect_error([&] { plateau.load_state(good); }, {"ReduceLROnPlateau::load_state", "StepLR"});
  p.values["num_bad_epochs"] = -3;
  expect_error([&] { plateau.load_state(p); }, {"num_bad_epochs", "-3"});
  p = plateau.state();
  p.values["best"] = std::nan("");
  expect_error([&] { plateau.load_state(p); }, {"best", "NaN"});
  p = plateau.state();
  p.values["patience"] = 3;
  expect_error([&] { plateau.load_state(p); }, {"unknown entry 'patience'"});
}

}  // namespace
}  // namespace bridle
