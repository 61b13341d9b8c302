// Optimizer base: parameter groups and the shared parts of state(); see optimizer.h.
#include "optim/optimizer.h"

#include <cmath>

#include "autograd/profiler.h"

namespace bridle {
namespace {

void check_group_value(float value, const char* what, size_t group) {
  BRIDLE_CHECK(std::isfinite(value) && value >= 0.0f,
               "optimizer: parameter group {} has an invalid {} {}", group, what, value);
}

}  // namespace

std::vector<ParamGroup> weight_decay_groups(const std::vector<Tensor>& params) {
  ParamGroup decay, no_decay{.weight_decay = 0.0f};
  for (const Tensor& p : params) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, float default_lr, float default_weight_decay) {
  for (size_t g = 0; g < groups.size(); ++g) {
    ParamGroupSettings settings;
    settings.begin = params_.size();
    settings.lr = groups[g].lr.value_or(default_lr);
    settings.weight_decay = groups[g].weight_decay.value_or(default_weight_decay);
    settings.initial_lr = settings.lr;
    check_group_value(settings.lr, "learning rate", g);
    check_group_value(settings.weight_decay, "weight_decay", g);
    for (Tensor& p : groups[g].params) {
      BRIDLE_CHECK(p.defined() && p.requires_grad() && p.is_leaf(),
                   "optimizer: parameter {} must be a leaf tensor that requires grad",
                   params_.size());
      for (const Tensor& q : params_)
        BRIDLE_CHECK(!p.same(q), "optimizer: parameter {} {} appears twice", params_.size(),
                     shape_str(p.shape()));
      params_.push_back(std::move(p));
      group_index_.push_back(g);
    }
    settings.end = params_.size();
    groups_.push_back(settings);
  }
  BRIDLE_CHECK(!params_.empty(), "optimizer: got an empty parameter list");
}

void Optimizer::zero_grad(bool set_to_none) {
  ProfileRegion region("zero_grad");  // not an op: a row of its own under --profile
  for (Tensor& p : params_) p.zero_grad(set_to_none);
}

void Optimizer::set_lr(size_t group, float lr) {
  BRIDLE_CHECK(group < groups_.size(), "optimizer: no parameter group {} (it has {})", group,
               groups_.size());
  check_group_value(lr, "learning rate", group);
  groups_[group].lr = lr;
}

void Optimizer::set_lr(float lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

OptimizerState Optimizer::state() const {
  BRIDLE_FAIL(
      "Optimizer::state: this optimizer does not implement state() and load_state(), so it "
      "cannot be checkpointed");
}

void Optimizer::load_state(const OptimizerState& state) {
  BRIDLE_FAIL(
      "Optimizer::load_state: this optimizer does not implement state() and load_state(), so a "
      "{} state cannot be loaded into it",
      state.type);
}

OptimizerState Optimizer::base_state(const std::string& type) const {
  OptimizerState state;
  state.type = type;
  state.step_count = step_count_;
  for (const ParamGroupSettings& g : groups_)
    state.param_groups.push_back({{"size", static_cast<double>(g.end - g.begin)},
                                  {"lr", g.lr},
                                  {"weight_decay", g.weight_decay},
                                  {"initial_lr", g.initial_lr}});
  return state;
}

std::vector<ParamGroupSettings> Optimizer::validate_base_state(const OptimizerState& state,
                                                               const std::string& type, float lr,
                                                               float weight_decay) const {
  BRIDLE_CHECK(state.type == type, "{}::load_state: the state is of a {} optimizer, not {}", type,
               state.type, type);
  BRIDLE_CHECK(state.step_count >= 0, "{}::load_state: negative step count {}", type,
               state.step_count);
  std::vector<ParamGroupSettings> groups = groups_;
  if (state.param_groups.empty()) {
    // A state saved before parameter groups existed: one group, the options' lr.
    BRIDLE_CHECK(groups.size() == 1,
                 "{}::load_state: the state has no parameter groups, but the optimizer has {}",
                 type, groups.size());
    groups[0].lr = groups[0].initial_lr = lr;
    groups[0].weight_decay = weight_decay;
    return groups;
  }
  BRIDLE_CHECK(state.param_groups.size() == groups.size(),
               "{}::load_state: the state has {} parameter groups, the optimizer {}", type,
               state.param_groups.size(), groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::map<std::string, double>& saved = state.param_groups[g];
    for (const auto& [name, value] : saved)
      BRIDLE_CHECK(name == "size" || name == "lr" || name == "weight_decay" || name == "initial_lr",
                   "{}::load_state: unknown setting '{}' = {} in parameter group {}", type, name,
                   value, g);
    auto setting = [&](const char* name) {
      auto it = saved.find(name);
      BRIDLE_CHECK(it != saved.end(), "{}::load_state: parameter group {} has no '{}'", type, g,
                   name);
      return it->second;
    };
    const double size = setting("size");
    BRIDLE_CHECK(size == static_cast<double>(groups[g].end - groups[g].begin),
                 "{}::load_state: parameter group {} has {} parameters in the state but {} in "
                 "the optimizer",
                 type, g, size, groups[g].end - groups[g].begin);
    groups[g].lr = static_cast<float>(setting("lr"));
    groups[g].weight_decay = static_cast<float>(setting("weight_decay"));
    groups[g].initial_lr = static_cast<float>(setting("initial_lr"));
    check_group_value(groups[g].lr, "learning rate", g);
    check_group_value(groups[g].weight_decay, "weight_decay", g);
    check_group_value(groups[g].initial_lr, "initial learning rate", g);
  }
  return groups;
}

void Optimizer::validate_per_parameter(const OptimizerState& state,
                                       const std::vector<std::string>& kinds) const {
  const std::string& type = state.type;
  for (const auto& [kind, tensors] : state.per_parameter) {
    bool known = false;
    for (const std::string& k : kinds) known = known || k == kind;
    BRIDLE_CHECK(known, "{}::load_state: unknown per-parameter state '{}'", type, kind);
    BRIDLE_CHECK(tensors.size() == params_.size(),
                 "{}::load_state: {} {} tensors for {} parameters", type, tensors.size(), kind,
                 params_.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const Tensor& t = tensors[i];
      if (!t.defined()) continue;
      BRIDLE_CHECK(t.dtype() == kFloat32 && t.shape() == params_[i].shape(),
                   "{}::load_state: {} {} is {} {} but parameter {} is {} {}", type, kind, i,
                   dtype_name(t.dtype()), shape_str(t.shape()), i, dtype_name(params_[i].dtype()),
                   shape_str(params_[i].shape()));
    }
  }
}

}  // namespace bridle
