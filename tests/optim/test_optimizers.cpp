// Adam, AdamW, RMSprop and Adagrad (and SGD) against torch.optim: every case of
// tests/fixtures/optimizer_trajectories.json (scripts/make_optimizer_fixtures.py)
// replays fixed gradients for 25 steps and must follow PyTorch's parameter
// values at every step, including two parameter groups with their own lr and
// weight decay and parameters whose gradient is missing on some steps. Also:
// state() / load_state() mid-trajectory (in memory and through a checkpoint)
// continues identically, bad options and bad states are clear errors, the
// multi-threaded kernels agree with the serial ones, and each optimizer solves
// a small logistic regression.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "../test_util.h"

namespace bridle {
namespace {

using json = nlohmann::json;
using testing::expect_error;

// Per element: |bridle - torch| <= kAtol + kRtol |torch|. Both compute in float32
// with the same coefficients; they differ only in rounding (FMA contraction,
// division vs reciprocal), which stays within a few float32 ulps over 25 steps.
constexpr double kAtol = 1e-6, kRtol = 1e-6;

const json& fixtures() {
  static const json doc = [] {
    std::string path = std::string(BRIDLE_FIXTURES_DIR) + "/optimizer_trajectories.json";
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("cannot open " + path + " (see scripts/make_optimizer_fixtures.py)");
    return json::parse(in);
  }();
  return doc;
}

// An optimizer of the given kind; options not in o keep their defaults.
std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, std::vector<ParamGroup> groups,
                                          const json& o = json::object()) {
  auto get = [&](const char* name, auto fallback) {
    return o.contains(name) ? o.at(name).get<decltype(fallback)>() : fallback;
  };
  if (kind == "SGD") {
    SGDOptions d;
    return std::make_unique<SGD>(std::move(groups),
                                 SGDOptions{.lr = get("lr", d.lr),
                                            .momentum = get("momentum", d.momentum),
                                            .dampening = get("dampening", d.dampening),
                                            .weight_decay = get("weight_decay", d.weight_decay),
                                            .nesterov = get("nesterov", d.nesterov)});
  }
  if (kind == "Adam") {
    AdamOptions d;
    return std::make_unique<Adam>(
        std::move(groups),
        AdamOptions{.lr = get("lr", d.lr),
                    .betas = {get("beta1", d.betas[0]), get("beta2", d.betas[1])},
                    .eps = get("eps", d.eps),
                    .weight_decay = get("weight_decay", d.weight_decay),
                    .amsgrad = get("amsgrad", d.amsgrad)});
  }
  if (kind == "AdamW") {
    AdamWOptions d;
    return std::make_unique<AdamW>(
        std::move(groups),
        AdamWOptions{.lr = get("lr", d.lr),
                     .betas = {get("beta1", d.betas[0]), get("beta2", d.betas[1])},
                     .eps = get("eps", d.eps),
                     .weight_decay = get("weight_decay", d.weight_decay),
                     .amsgrad = get("amsgrad", d.amsgrad)});
  }
  if (kind == "RMSprop") {
    RMSpropOptions d;
    return std::make_unique<RMSprop>(
        std::move(groups), RMSpropOptions{.lr = get("lr", d.lr),
                                          .alpha = get("alpha", d.alpha),
                                          .eps = get("eps", d.eps),
                                          .weight_decay = get("weight_decay", d.weight_decay),
                                          .momentum = get("momentum", d.momentum),
                                          .centered = get("centered", d.centered)});
  }
  if (kind == "Adagrad") {
    AdagradOptions d;
    return std::make_unique<Adagrad>(
        std::move(groups),
        AdagradOptions{.lr = get("lr", d.lr),
                       .lr_decay = get("lr_decay", d.lr_decay),
                       .weight_decay = get("weight_decay", d.weight_decay),
                       .initial_accumulator_value =
                           get("initial_accumulator_value", d.initial_accumulator_value),
                       .eps = get("eps", d.eps)});
  }
  throw std::runtime_error("unknown optimizer " + kind);
}

// One fixture case: its parameters, built as torch built them.
struct Case {
  const json& c;
  std::string name() const { return c.at("name").get<std::string>(); }
  std::string kind() const { return c.at("optimizer").get<std::string>(); }
  size_t num_params() const { return c.at("shapes").size(); }
  Shape shape(size_t i) const { return c.at("shapes")[i].get<Shape>(); }

  std::vector<Tensor> initial_params() const {
    std::vector<Tensor> params;
    for (size_t i = 0; i < num_params(); ++i)
      params.push_back(from_vector(c.at("init")[i].get<std::vector<float>>(), shape(i),
                                   TensorOptions().with_requires_grad()));
    return params;
  }
  // The case's groups over params; with_overrides = false drops their lr and
  // weight_decay (an optimizer that load_state will fill in).
  std::vector<ParamGroup> groups(const std::vector<Tensor>& params,
                                 bool with_overrides = true) const {
    std::vector<ParamGroup> groups;
    size_t begin = 0;
    for (const json& g : c.at("groups")) {
      ParamGroup group;
      const size_t size = g.at("size").get<size_t>();
      group.params.assign(params.begin() + begin, params.begin() + begin + size);
      begin += size;
      if (with_overrides && g.contains("lr")) group.lr = g.at("lr").get<float>();
      if (with_overrides && g.contains("weight_decay"))
        group.weight_decay = g.at("weight_decay").get<float>();
      groups.push_back(std::move(group));
    }
    return groups;
  }
  std::unique_ptr<Optimizer> optimizer(const std::vector<Tensor>& params) const {
    return make_optimizer(kind(), groups(params), c.at("options"));
  }
  // The gradients of step t (from 0); a null gradient leaves p.grad undefined.
  void set_grads(size_t t, std::vector<Tensor>& params) const {
    for (size_t i = 0; i < params.size(); ++i) {
      const json& g = c.at("grads")[t][i];
      params[i].set_grad(g.is_null() ? Tensor()
                                     : from_vector(g.get<std::vector<float>>(), shape(i)));
    }
  }
  // Compares params with torch's after step t; returns "" or the first mismatch.
  // worst, if given, keeps the largest |bridle - torch| / (1 + |torch|) seen.
  std::string mismatch(size_t t, const std::vector<Tensor>& params, double* worst = nullptr) const {
    for (size_t i = 0; i < params.size(); ++i) {
      const std::vector<float> got = params[i].to_vector();
      const std::vector<double> want = c.at("trajectory")[t][i].get<std::vector<double>>();
      for (size_t k = 0; k < want.size(); ++k) {
        const double diff = std::abs(got[k] - want[k]);
        if (worst != nullptr) *worst = std::max(*worst, diff / (1 + std::abs(want[k])));
        if (!(diff <= kAtol + kRtol * std::abs(want[k])))
          return fmt::format(
              "{}: step {} parameter {} element {}: bridle {} torch {} (diff {:.3g})", name(),
              t + 1, i, k, got[k], want[k], got[k] - want[k]);
      }
    }
    return "";
  }
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const json& c : fixtures().at("cases")) out.push_back(Case{c});
  return out;
}

TEST(OptimizerTrajectories, FixturesCoverEveryOptimizer) {
  std::map<std::string, int> count;
  for (const Case& c : cases()) ++count[c.kind()];
  for (const char* kind : {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"})
    EXPECT_GE(count[kind], 4) << kind;
  EXPECT_EQ(fixtures().at("steps").get<int>(), 25);
}

// Every case, every step, every element against torch.optim.
TEST(OptimizerTrajectories, MatchTorchOptimAtEveryStep) {
  double worst = 0;
  std::string worst_case;
  for (const Case& c : cases()) {
    std::vector<Tensor> params = c.initial_params();
    std::unique_ptr<Optimizer> opt = c.optimizer(params);
    const size_t steps = c.c.at("trajectory").size();
    ASSERT_EQ(steps, 25u);
    for (size_t t = 0; t < steps; ++t) {
      c.set_grads(t, params);
      opt->step();
      const double before = worst;
      const std::string problem = c.mismatch(t, params, &worst);
      if (worst > before) worst_case = c.name();
      if (!problem.empty()) {
        ADD_FAILURE() << problem;  // the first mismatch of this case only
        break;
      }
    }
  }
  std::cout << "largest difference from torch, |d| / (1 + |torch|): " << worst << " (" << worst_case
            << ")\n";
}

// The options' defaults are PyTorch's.
TEST(OptimizerTrajectories, DefaultsArePyTorchs) {
  AdamOptions adam;
  EXPECT_EQ(adam.lr, 1e-3f);
  EXPECT_EQ(adam.betas[0], 0.9f);
  EXPECT_EQ(adam.betas[1], 0.999f);
  EXPECT_EQ(adam.eps, 1e-8f);
  EXPECT_EQ(adam.weight_decay, 0.0f);
  EXPECT_FALSE(adam.amsgrad);
  AdamWOptions adamw;
  EXPECT_EQ(adamw.lr, 1e-3f);
  EXPECT_EQ(adamw.weight_decay, 1e-2f);
  EXPECT_EQ(adamw.betas[1], 0.999f);
  RMSpropOptions rmsprop;
  EXPECT_EQ(rmsprop.lr, 1e-2f);
  EXPECT_EQ(rmsprop.alpha, 0.99f);
  EXPECT_EQ(rmsprop.eps, 1e-8f);
  EXPECT_EQ(rmsprop.momentum, 0.0f);
  EXPECT_FALSE(rmsprop.centered);
  AdagradOptions adagrad;
  EXPECT_EQ(adagrad.lr, 1e-2f);
  EXPECT_EQ(adagrad.lr_decay, 0.0f);
  EXPECT_EQ(adagrad.initial_accumulator_value, 0.0f);
  EXPECT_EQ(adagrad.eps, 1e-10f);
  // The "_defaults" fixture cases were made with torch's own defaults.
  for (const Case& c : cases()) {
    if (c.name().find("_defaults") == std::string::npos) continue;
    std::vector<Tensor> params = c.initial_params();
    std::unique_ptr<Optimizer> opt = make_optimizer(c.kind(), c.groups(params));
    for (size_t t = 0; t < 25; ++t) {
      c.set_grads(t, params);
      opt->step();
    }
    EXPECT_EQ(c.mismatch(24, params), "");
  }
}

// state() after `split` steps, loaded into a fresh optimizer (built with the
// defaults and no group overrides) over copies of the parameters: both continue
// bit for bit alike, and on torch's trajectory.
TEST(OptimizerState, RoundTripMidTrajectoryContinuesIdentically) {
  for (const Case& c : cases()) {
    for (size_t split : {2u, 12u}) {
      std::vector<Tensor> params = c.initial_params();
      std::unique_ptr<Optimizer> opt = c.optimizer(params);
      for (size_t t = 0; t < split; ++t) {
        c.set_grads(t, params);
        opt->step();
      }
      std::vector<Tensor> copies;
      for (const Tensor& p : params) copies.push_back(p.detach().clone().set_requires_grad(true));
      std::unique_ptr<Optimizer> resumed =
          make_optimizer(c.kind(), c.groups(copies, /*with_overrides=*/false));
      resumed->load_state(opt->state());
      EXPECT_EQ(resumed->step_count(), static_cast<int64_t>(split));
      for (size_t g = 0; g < opt->num_param_groups(); ++g) {
        EXPECT_EQ(resumed->lr(g), opt->lr(g)) << c.name();
        EXPECT_EQ(resumed->param_group(g).weight_decay, opt->param_group(g).weight_decay);
      }
      for (size_t t = split; t < 25; ++t) {
        c.set_grads(t, params);
        c.set_grads(t, copies);
        opt->step();
        resumed->step();
        for (size_t i = 0; i < params.size(); ++i)
          ASSERT_EQ(params[i].to_vector(), copies[i].to_vector())
              << c.name() << " split " << split << " step " << t + 1 << " parameter " << i;
      }
      EXPECT_EQ(c.mismatch(24, copies), "") << "split " << split;
    }
  }
}

// What state() holds, named as PyTorch names it, with per-parameter step counts.
TEST(OptimizerState, HoldsPyTorchsKindsAndPerParameterSteps) {
  std::optional<Case> c;
  for (const Case& each : cases())
    if (each.name() == "adam_missing_grads") c.emplace(each);
  ASSERT_TRUE(c.has_value());
  std::vector<Tensor> params = c->initial_params();
  Adam adam(params, {.lr = 0.05f, .amsgrad = true});
  c->set_grads(0, params);
  adam.step();
  EXPECT_TRUE(adam.exp_avg(0).defined());
  EXPECT_FALSE(adam.exp_avg(1).defined());  // no gradient yet
  OptimizerState early = adam.state();
  EXPECT_FALSE(early.per_parameter.at("step")[1].defined());
  for (size_t t = 1; t < 25; ++t) {
    c->set_grads(t, params);
    adam.step();
  }
  // Parameter 1 has no gradient on 6 steps, parameter 2 on 3.
  EXPECT_EQ(adam.param_step(0), 25);
  EXPECT_EQ(adam.param_step(1), 19);
  EXPECT_EQ(adam.param_step(2), 22);
  OptimizerState state = adam.state();
  EXPECT_EQ(state.type, "Adam");
  EXPECT_EQ(state.step_count, 25);
  std::vector<std::string> names;
  for (const auto& [name, value] : state.hyperparameters) names.push_back(name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"amsgrad", "beta1", "beta2", "eps", "lr", "weight_decay"}));
  EXPECT_EQ(state.hyperparameters.at("amsgrad"), 1.0);
  std::vector<std::string> kinds;
  for (const auto& [kind, tensors] : state.per_parameter) kinds.push_back(kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"}));
  const Tensor& step1 = state.per_parameter.at("step")[1];
  EXPECT_EQ(step1.dtype(), kFloat32);
  EXPECT_EQ(step1.shape(), (Shape{1}));
  EXPECT_EQ(step1.item(), 19.0f);
  // Copies: changing the state does not change the optimizer.
  state.per_parameter.at("exp_avg")[0].fill_(123.0);
  EXPECT_NE(adam.exp_avg(0).to_vector()[0], 123.0f);

  auto kinds_of = [](const Optimizer& opt) {
    std::vector<std::string> out;
    for (const auto& [kind, tensors] : opt.state().per_parameter) out.push_back(kind);
    return out;
  };
  Tensor p = ones({2}, TensorOptions().with_requires_grad());
  EXPECT_EQ(kinds_of(Adam({p})), (std::vector<std::string>{"exp_avg", "exp_avg_sq", "step"}));
  EXPECT_EQ(kinds_of(AdamW({p})), (std::vector<std::string>{"exp_avg", "exp_avg_sq", "step"}));
  EXPECT_EQ(AdamW({p}).state().type, "AdamW");
  EXPECT_EQ(kinds_of(RMSprop({p})), (std::vector<std::string>{"square_avg", "step"}));
  EXPECT_EQ(kinds_of(RMSprop({p}, {.momentum = 0.9f, .centered = true})),
            (std::vector<std::string>{"grad_avg", "momentum_buffer", "square_avg", "step"}));
  // Adagrad's state exists from the start: sums at initial_accumulator_value, steps 0.
  Adagrad adagrad({p}, {.initial_accumulator_value = 0.25f});
  OptimizerState fresh = adagrad.state();
  EXPECT_EQ(fresh.per_parameter.at("sum")[0].to_vector(), (std::vector<float>{0.25f, 0.25f}));
  EXPECT_EQ(fresh.per_parameter.at("step")[0].item(), 0.0f);
  EXPECT_EQ(fresh.hyperparameters.size(), 5u);
}

// Through an HDF5 checkpoint, keyed by parameter name: each optimizer resumes
// exactly (the bias gets no gradient on the first step, so its step count lags).
TEST(OptimizerState, CheckpointRoundTripResumesExactly) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       fmt::format("bridle_optimizers_{}", static_cast<long>(::getpid()));
  fs::create_directories(dir);
  Generator data(11);
  Tensor x = randn({32, 4}, data);
  Tensor y = argmax(randn({32, 3}, data), 1);
  auto train_step = [&](Linear& model, Optimizer& opt, bool drop_bias_grad) {
    opt.zero_grad(/*set_to_none=*/true);
    cross_entropy(model.forward(x), y).backward();
    if (drop_bias_grad) model.bias.set_grad(Tensor());
    opt.step();
  };
  const std::vector<std::pair<std::string, json>> setups = {
      {"Adam", {{"lr", 0.05}, {"amsgrad", true}, {"weight_decay", 0.01}}},
      {"AdamW", {{"lr", 0.05}}},
      {"RMSprop", {{"momentum", 0.9}, {"centered", true}}},
      {"Adagrad", {{"lr", 0.1}, {"lr_decay", 0.01}, {"initial_accumulator_value", 0.1}}},
  };
  for (const auto& [kind, options] : setups) {
    Generator init(1);
    Linear model(4, 3, true, init);
    std::unique_ptr<Optimizer> opt =
        make_optimizer(kind, {{.params = model.parameters()}}, options);
    for (int t = 0; t < 3; ++t) train_step(model, *opt, t == 0);
    const std::string path = (dir / (kind + ".h5")).string();
    save_checkpoint(path,
                    {.model = &model, .optimizer = opt.get(), .with_default_generator = false});

    Generator other_init(2);
    Linear resumed_model(4, 3, true, other_init);
    std::unique_ptr<Optimizer> resumed =
        make_optimizer(kind, {{.params = resumed_model.parameters()}});
    Checkpoint in{
        .model = &resumed_model, .optimizer = resumed.get(), .with_default_generator = false};
    load_checkpoint(path, in);
    EXPECT_EQ(resumed->step_count(), 3) << kind;
    for (int t = 0; t < 4; ++t) {
      train_step(model, *opt, false);
      train_step(resumed_model, *resumed, false);
    }
    EXPECT_EQ(model.weight.to_vector(), resumed_model.weight.to_vector()) << kind;
    EXPECT_EQ(model.bias.to_vector(), resumed_model.bias.to_vector()) << kind;
    OptimizerState a = opt->state(), b = resumed->state();
    EXPECT_EQ(a.hyperparameters, b.hyperparameters) << kind;
    for (const auto& [k, tensors] : a.per_parameter)
      for (size_t i = 0; i < tensors.size(); ++i)
        EXPECT_EQ(tensors[i].to_vector(), b.per_parameter.at(k)[i].to_vector()) << kind << " " << k;
  }
  // The bias's lagging step count went through the file.
  Generator init(1);
  Linear model(4, 3, true, init);
  Adam adam(model.parameters(), {.lr = 0.05f});
  for (int t = 0; t < 3; ++t) train_step(model, adam, t == 0);
  const std::string path = (dir / "steps.h5").string();
  save_checkpoint(path, {.model = &model, .optimizer = &adam, .with_default_generator = false});
  Adam loaded(model.parameters());
  Checkpoint in{.model = &model, .optimizer = &loaded, .with_default_generator = false};
  load_checkpoint(path, in);
  EXPECT_EQ(loaded.param_step(0), 3);
  EXPECT_EQ(loaded.param_step(1), 2);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(OptimizerOptions, InvalidOptionsAreErrorsNamingTheValue) {
  Tensor p = ones({1}, TensorOptions().with_requires_grad());
  expect_error([&] { Adam({p}, {.lr = -0.1f}); }, {"Adam", "learning rate", "-0.1"});
  expect_error([&] { Adam({p}, {.lr = NAN}); }, {"Adam", "learning rate", "nan"});
  expect_error([&] { Adam({p}, {.betas = {1.0f, 0.999f}}); }, {"Adam", "beta1", "1"});
  expect_error([&] { Adam({p}, {.betas = {0.9f, -0.5f}}); }, {"Adam", "beta2", "-0.5"});
  expect_error([&] { Adam({p}, {.eps = -1e-8f}); }, {"Adam", "epsilon", "-1e-08"});
  expect_error([&] { Adam({p}, {.weight_decay = -0.01f}); }, {"Adam", "weight_decay", "-0.01"});
  expect_error([&] { AdamW({p}, {.betas = {0.9f, 1.5f}}); }, {"AdamW", "beta2", "1.5"});
  expect_error([&] { AdamW({p}, {.weight_decay = -1.0f}); }, {"AdamW", "weight_decay", "-1"});
  expect_error([&] { RMSprop({p}, {.lr = -1.0f}); }, {"RMSprop", "learning rate", "-1"});
  expect_error([&] { RMSprop({p}, {.alpha = -0.99f}); }, {"RMSprop", "alpha", "-0.99"});
  expect_error([&] { RMSprop({p}, {.eps = -1.0f}); }, {"RMSprop", "epsilon", "-1"});
  expect_error([&] { RMSprop({p}, {.weight_decay = -2.0f}); }, {"RMSprop", "weight_decay", "-2"});
  expect_error([&] { RMSprop({p}, {.momentum = -0.9f}); }, {"RMSprop", "momentum", "-0.9"});
  expect_error([&] { Adagrad({p}, {.lr = -1.0f}); }, {"Adagrad", "learning rate", "-1"});
  expect_error([&] { Adagrad({p}, {.lr_decay = -0.1f}); }, {"Adagrad", "lr_decay", "-0.1"});
  expect_error([&] { Adagrad({p}, {.weight_decay = -0.1f}); }, {"Adagrad", "weight_decay", "-0.1"});
  expect_error([&] { Adagrad({p}, {.initial_accumulator_value = -3.0f}); },
               {"Adagrad", "initial_accumulator_value", "-3"});
  expect_error([&] { Adagrad({p}, {.eps = -1.0f}); }, {"Adagrad", "epsilon", "-1"});
  // The base class checks the groups and the parameters.
  expect_error([&] { Adam({{.params = {p}, .lr = -1.0f}}); }, {"group 0", "learning rate", "-1"});
  expect_error([&] { RMSprop({ones({1})}); }, {"requires grad"});
  expect_error([&] { Adagrad(std::vector<Tensor>{}); }, {"empty"});
}

// Loads `bad`, expects an error with the fragments, and checks that the
// optimizer's state did not change.
void expect_rejected(Optimizer& opt, const OptimizerState& bad,
                     const std::vector<std::string>& fragments) {
  const OptimizerState before = opt.state();
  expect_error([&] { opt.load_state(bad); }, fragments);
  const OptimizerState after = opt.state();
  EXPECT_EQ(before.hyperparameters, after.hyperparameters);
  EXPECT_EQ(before.step_count, after.step_count);
  ASSERT_EQ(before.per_parameter.size(), after.per_parameter.size());
  for (const auto& [kind, tensors] : before.per_parameter)
    for (size_t i = 0; i < tensors.size(); ++i) {
      ASSERT_EQ(tensors[i].defined(), after.per_parameter.at(kind)[i].defined());
      if (tensors[i].defined()) {
        EXPECT_EQ(tensors[i].to_vector(), after.per_parameter.at(kind)[i].to_vector());
      }
    }
}

TEST(OptimizerState, BadStatesAreErrorsNamingTheValueKindAndShape) {
  auto leaf = [](const Shape& shape) { return ones(shape, TensorOptions().with_requires_grad()); };
  Tensor a = leaf({3}), b = leaf({2, 2});
  Adam adam({a, b}, {.lr = 0.01f, .amsgrad = true});
  a.set_grad(full({3}, 0.5));  // b has no gradient: no state
  adam.step();
  const OptimizerState good = adam.state();
  auto edit = [&](auto change) {
    OptimizerState s = good;
    change(s);
    return s;
  };
  SGD sgd({a, b}, {.lr = 0.1f});
  expect_rejected(adam, sgd.state(), {"Adam::load_state", "of a SGD optimizer, not Adam"});
  AdamW adamw({a, b});
  expect_error([&] { adamw.load_state(good); }, {"AdamW::load_state", "of a Adam optimizer"});
  expect_rejected(adam, edit([](auto& s) { s.hyperparameters["momentum"] = 0.9; }),
                  {"unknown hyper-parameter 'momentum' = 0.9"});
  expect_rejected(adam, edit([](auto& s) { s.hyperparameters.erase("beta2"); }),
                  {"'beta2' is missing"});
  expect_rejected(adam, edit([](auto& s) { s.hyperparameters["amsgrad"] = 0.5; }),
                  {"amsgrad must be 0 or 1, got 0.5"});
  expect_rejected(adam, edit([](auto& s) { s.hyperparameters["beta1"] = 1.0; }),
                  {"invalid beta1 1"});
  expect_rejected(adam, edit([](auto& s) { s.hyperparameters["eps"] = -1.0; }),
                  {"invalid epsilon -1"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["exp_avg"][0] = zeros({2}); }),
                  {"exp_avg 0 is float32 [2] but parameter 0 is float32 [3]"});
  expect_rejected(adam, edit([](auto& s) {
                    s.per_parameter["momentum_buffer"] = {Tensor(), Tensor()};
                  }),
                  {"unknown per-parameter state 'momentum_buffer'"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["exp_avg"].pop_back(); }),
                  {"1 exp_avg tensors for 2 parameters"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["step"][0] = zeros({2}); }),
                  {"step 0 is float32 [2], not float32 [1]"});
  expect_rejected(adam, edit([](auto& s) {
                    s.per_parameter["step"][0] = from_vector(std::vector<int64_t>{1}, {1});
                  }),
                  {"step 0 is int64 [1], not float32 [1]"});
  expect_rejected(adam,
                  edit([](auto& s) { s.per_parameter["step"][0] = from_vector({1.5f}, {1}); }),
                  {"step 0 is 1.5, not a whole number >= 0"});
  expect_rejected(adam,
                  edit([](auto& s) { s.per_parameter["step"][0] = from_vector({-1.0f}, {1}); }),
                  {"step 0 is -1"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["step"].pop_back(); }),
                  {"1 step tensors for 2 parameters"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["exp_avg_sq"][0] = Tensor(); }),
                  {"parameter 0 has a step count but no exp_avg_sq"});
  expect_rejected(adam, edit([](auto& s) {
                    s.per_parameter["exp_avg"][1] = zeros({2, 2});
                  }),
                  {"parameter 1 has exp_avg but no step count"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["max_exp_avg_sq"][0] = Tensor(); }),
                  {"parameter 0 has a step count but no max_exp_avg_sq (amsgrad is on)"});
  expect_rejected(adam, edit([](auto& s) { s.hyperparameters["amsgrad"] = 0; }),
                  {"parameter 0 has max_exp_avg_sq but amsgrad is off"});
  expect_rejected(adam, edit([](auto& s) { s.per_parameter["exp_avg_sq"][0] = full({3}, -1.0); }),
                  {"exp_avg_sq 0 has the value -1 at element 0"});
  expect_rejected(adam, edit([](auto& s) { s.param_groups[0]["lr"] = -1; }),
                  {"group 0", "learning rate", "-1"});
  // The good state loads.
  adam.load_state(good);
  EXPECT_EQ(adam.param_step(0), 1);

  RMSprop rmsprop({a, b}, {.momentum = 0.9f, .centered = true});
  rmsprop.step();
  const OptimizerState r = rmsprop.state();
  auto edit_r = [&](auto change) {
    OptimizerState s = r;
    change(s);
    return s;
  };
  expect_rejected(rmsprop, edit_r([](auto& s) { s.hyperparameters["momentum"] = 0; }),
                  {"RMSprop::load_state", "parameter 0 has momentum_buffer but momentum is off"});
  expect_rejected(rmsprop, edit_r([](auto& s) { s.per_parameter.erase("grad_avg"); }),
                  {"parameter 0 has a step count but no grad_avg (centered is on)"});
  expect_rejected(rmsprop, edit_r([](auto& s) { s.per_parameter["square_avg"][1] = zeros({4}); }),
                  {"square_avg 1 is float32 [4] but parameter 1 is float32 [2, 2]"});
  expect_rejected(rmsprop, edit_r([](auto& s) { s.hyperparameters["centered"] = 2; }),
                  {"centered must be 0 or 1, got 2"});
  expect_rejected(rmsprop, edit_r([](auto& s) { s.hyperparameters["alpha"] = -1; }),
                  {"invalid alpha -1"});

  Adagrad adagrad({a, b}, {.lr = 0.1f});
  adagrad.step();
  const OptimizerState g = adagrad.state();
  auto edit_g = [&](auto change) {
    OptimizerState s = g;
    change(s);
    return s;
  };
  expect_rejected(adagrad, edit_g([](auto& s) { s.per_parameter["step"][1] = Tensor(); }),
                  {"Adagrad::load_state", "parameter 1 has no step count"});
  expect_rejected(adagrad, edit_g([](auto& s) { s.per_parameter.erase("sum"); }),
                  {"parameter 0 has a step count but no sum"});
  expect_rejected(adagrad, edit_g([](auto& s) { s.per_parameter["sum"][1] = zeros({2}); }),
                  {"sum 1 is float32 [2] but parameter 1 is float32 [2, 2]"});
  expect_rejected(adagrad, edit_g([](auto& s) { s.per_parameter["sum"][0] = full({3}, NAN); }),
                  {"sum 0 has the value nan at element 0"});
  expect_rejected(adagrad, edit_g([](auto& s) { s.hyperparameters["lr_decay"] = -0.5; }),
                  {"invalid lr_decay -0.5"});
  expect_rejected(adagrad,
                  edit_g([](auto& s) { s.hyperparameters.erase("initial_accumulator_value"); }),
                  {"'initial_accumulator_value' is missing"});
  adagrad.load_state(g);
  EXPECT_EQ(adagrad.param_step(0), 1);
  EXPECT_EQ(adagrad.param_step(1), 0);
}

// A tensor large enough for the kernels' OpenMP path gives what the same
// elements give in small (serial) pieces.
TEST(OptimizerKernels, LargeTensorsMatchSmallPieces) {
  const int64_t n = 200003, piece = 1000;
  Generator gen(5);
  std::vector<float> p0 = randn({n}, gen).to_vector(), grad = randn({n}, gen).to_vector();
  auto run = [&](auto kernel, int num_state) {
    std::vector<float> big = p0, small = p0;
    std::vector<std::vector<float>> big_state(num_state, std::vector<float>(n, 0.0f));
    std::vector<std::vector<float>> small_state = big_state;
    for (int64_t step = 1; step <= 3; ++step) {
      kernel(big.data(), grad.data(), big_state, 0, n, step);
      for (int64_t at = 0; at < n; at += piece)
        kernel(small.data(), grad.data(), small_state, at, std::min(piece, n - at), step);
    }
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(big[i], small[i], 1e-6f * (1 + std::abs(small[i]))) << "element " << i;
  };
  using State = std::vector<std::vector<float>>;
  run(
      [](float* p, const float* g, State& s, int64_t at, int64_t m, int64_t step) {
        cpu::adam_step(p + at, g + at, s[0].data() + at, s[1].data() + at, s[2].data() + at, m,
                       0.01f, 0.9f, 0.999f, 1e-8f, 0.01f, true, step);
      },
      3);
  run(
      [](float* p, const float* g, State& s, int64_t at, int64_t m, int64_t) {
        cpu::rmsprop_step(p + at, g + at, s[0].data() + at, s[1].data() + at, s[2].data() + at, m,
                          0.01f, 0.99f, 1e-8f, 0.01f, 0.9f);
      },
      3);
  run(
      [](float* p, const float* g, State& s, int64_t at, int64_t m, int64_t step) {
        cpu::adagrad_step(p + at, g + at, s[0].data() + at, m, 0.1f, 0.01f, 0.01f, 1e-10f, step);
      },
      1);
}

// Logistic regression on a fixed, linearly separable problem (as SGD's test):
// every optimizer brings the loss well below its start.
TEST(OptimizerTraining, EachSolvesASmallClassificationProblem) {
  Generator gen(7);
  Tensor x = randn({200, 5}, gen);
  Tensor true_w = randn({3, 5}, gen);
  Tensor y = argmax(matmul(x, true_w.transpose(0, 1)), 1);
  const std::vector<std::pair<std::string, json>> setups = {
      {"Adam", {{"lr", 0.05}}},
      {"Adam", {{"lr", 0.05}, {"amsgrad", true}}},
      {"AdamW", {{"lr", 0.05}}},
      {"RMSprop", {{"lr", 0.01}}},
      {"RMSprop", {{"lr", 0.005}, {"momentum", 0.9}, {"centered", true}}},
      {"Adagrad", {{"lr", 0.5}}},
  };
  for (const auto& [kind, options] : setups) {
    Generator init(1);
    Linear model(5, 3, true, init);
    std::unique_ptr<Optimizer> opt =
        make_optimizer(kind, {{.params = model.parameters()}}, options);
    float first = 0, last = 0;
    for (int step = 0; step < 200; ++step) {
      opt->zero_grad();
      Tensor loss = cross_entropy(model.forward(x), y);
      loss.backward();
      opt->step();
      if (step == 0) first = loss.item();
      last = loss.item();
    }
    EXPECT_LT(last, 0.25f * first) << kind << " " << options.dump();
    Tensor predicted = argmax(model.forward(x), 1);
    int64_t correct = 0;
    for (int64_t i = 0; i < 200; ++i) correct += predicted.at({i}) == y.at({i});
    EXPECT_GE(correct, 185) << kind << " " << options.dump();
  }
}

}  // namespace
}  // namespace bridle
