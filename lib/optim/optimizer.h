// Optimizer: the base of every optimizer. It holds the parameters it updates,
// in parameter groups; step() reads their .grad and updates them in place,
// outside autograd.
//
// Parameter groups (as PyTorch's param_groups) give parameters their own
// learning rate and weight decay, e.g. no decay on biases and norm parameters:
//
//   SGD sgd(weight_decay_groups(model.parameters()), {.lr = 0.1f, .weight_decay = 5e-4f});
//   SGD sgd({{.params = body}, {.params = head, .lr = 0.01f}}, {.lr = 0.1f});
//
// A group's lr and weight_decay default to the optimizer's options. Every other
// hyper-parameter (momentum, betas, eps, ...) is the optimizer's, shared by all
// groups. Learning-rate schedules (lib/optim/lr_scheduler.h) set each group's lr
// from its initial_lr, the lr it had when the optimizer was built.
//
// state() / load_state() expose what an optimizer must carry across a restart:
// its type, step count, hyper-parameters, the groups' settings and per-parameter
// tensors (momentum buffers, moments), indexed like params(). lib/io/checkpoint.h
// writes them to disk, keyed by the parameters' names.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

// Parameters that share a learning rate and weight decay; unset: the optimizer's.
struct ParamGroup {
  std::vector<Tensor> params = {};
  std::optional<float> lr = std::nullopt;
  std::optional<float> weight_decay = std::nullopt;
};

// Two groups: parameters with two or more dimensions (weights of linear and
// convolution layers) keep the optimizer's weight decay; the others (biases,
// batch-norm scales and shifts) get none. Empty groups are left out.
std::vector<ParamGroup> weight_decay_groups(const std::vector<Tensor>& params);

// A group's settings as the optimizer uses them: params()[begin, end).
struct ParamGroupSettings {
  size_t begin = 0, end = 0;
  float lr = 0;
  float weight_decay = 0;
  float initial_lr = 0;  // lr when the optimizer was built; schedules scale it
};

struct OptimizerState {
  std::string type;                               // "SGD"; load_state checks it
  int64_t step_count = 0;                         // step() calls so far
  std::map<std::string, double> hyperparameters;  // "lr", "momentum", ...; bools as 0/1
  // One map per parameter group: "size" (its number of parameters), "lr",
  // "weight_decay", "initial_lr". Empty in states saved before groups existed:
  // load_state then takes one group with the hyper-parameters' lr and weight_decay.
  std::vector<std::map<std::string, double>> param_groups;
  // Per-parameter tensors by kind, each vector indexed like params(), e.g.
  // per_parameter["momentum_buffer"][i]. An entry is undefined where the optimizer
  // has none yet (before the first step, or for a parameter no gradient reached).
  std::map<std::string, std::vector<Tensor>> per_parameter;
};

class Optimizer {
 public:
  // groups: at least one parameter in all; default_lr and default_weight_decay
  // fill a group's unset lr and weight_decay.
  Optimizer(std::vector<ParamGroup> groups, float default_lr, float default_weight_decay);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Zeroes every parameter's gradient (in place, or drops it with set_to_none).
  void zero_grad(bool set_to_none = false);
  // Every parameter, group by group.
  const std::vector<Tensor>& params() const { return params_; }
  int64_t step_count() const { return step_count_; }

  size_t num_param_groups() const { return groups_.size(); }
  const ParamGroupSettings& param_group(size_t group) const { return groups_.at(group); }
  // The learning rate of a group (of the first, by default).
  float lr(size_t group = 0) const { return groups_.at(group).lr; }
  // Sets the learning rate of one group, or of every group.
  void set_lr(size_t group, float lr);
  void set_lr(float lr);

  // A snapshot of the optimizer's state (its tensors are copies). The base
  // class throws: an optimizer that can be checkpointed overrides both.
  virtual OptimizerState state() const;
  // Restores a state from state(): validates everything first, so a bad state
  // throws bridle::Error and leaves the optimizer unchanged. Hyper-parameters
  // and the groups' settings are restored too (as in PyTorch's load_state_dict).
  virtual void load_state(const OptimizerState& state);

 protected:
  // The settings of the group that parameter i belongs to.
  const ParamGroupSettings& group_of(size_t i) const { return groups_[group_index_[i]]; }
  // For state(): type, step count and the groups' settings.
  OptimizerState base_state(const std::string& type) const;
  // For load_state(): checks the type, the step count and the groups against
  // this optimizer and returns the groups' settings to apply (with the rest of
  // the state, once the subclass has validated it too). lr and weight_decay
  // are the defaults an old state without param_groups falls back to.
  std::vector<ParamGroupSettings> validate_base_state(const OptimizerState& state,
                                                      const std::string& type, float lr,
                                                      float weight_decay) const;
  // Checks that per_parameter holds only the given kinds, with one float32
  // tensor shaped like its parameter (or undefined) per parameter.
  void validate_per_parameter(const OptimizerState& state,
                              const std::vector<std::string>& kinds) const;

  std::vector<Tensor> params_;
  std::vector<ParamGroupSettings> groups_;
  std::vector<size_t> group_index_;  // group_index_[i]: the group of params_[i]
  int64_t step_count_ = 0;           // a subclass's step() increments it
};

}  // namespace bridle
