// Adagrad: the fused update kernel and the optimizer; see adagrad.h for the rule.
#include "optim/adagrad.h"

#include <cmath>

#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "optim/optimizer_util.h"
#include "optim/update_rules.h"

namespace bridle {
namespace cpu {

float adagrad_neg_clr(float lr, float lr_decay, int64_t step) {
  // In double, then float32, as PyTorch derives it from Python floats.
  return static_cast<float>(-(lr / (1.0 + static_cast<double>(step - 1) * lr_decay)));
}

void adagrad_step(float* param, const float* grad, float* sum, int64_t n, float lr, float lr_decay,
                  float weight_decay, float eps, int64_t step) {
  const float neg_clr = adagrad_neg_clr(lr, lr_decay, step);
  optim_detail::parallel_blocks(n, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i)
      update_rules::adagrad(param[i], grad[i], sum[i], neg_clr, weight_decay, eps);
  });
}

}  // namespace cpu

namespace {

// Checks the options (before the base class checks the groups, so that the
// error names the optimizer) and returns them.
const AdagradOptions& check_options(const AdagradOptions& o) {
  optim_detail::check_nonnegative_option(o.lr, "Adagrad", "learning rate");
  optim_detail::check_nonnegative_option(o.lr_decay, "Adagrad", "lr_decay");
  optim_detail::check_nonnegative_option(o.weight_decay, "Adagrad", "weight_decay");
  optim_detail::check_nonnegative_option(o.initial_accumulator_value, "Adagrad",
                                         "initial_accumulator_value");
  optim_detail::check_nonnegative_option(o.eps, "Adagrad", "epsilon");
  return o;
}

}  // namespace

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions options)
    : Adagrad(std::vector<ParamGroup>{{.params = std::move(params)}}, options) {}

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions options)
    : Optimizer(std::move(groups), check_options(options).lr, options.weight_decay),
      options_(options),
      steps_(params_.size(), 0) {
  for (const Tensor& p : params_)
    sum_.push_back(full(p.shape(), options_.initial_accumulator_value).to(p.device()));
}

void Adagrad::step() {
  ++step_count_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;  // as PyTorch: no gradient, no step for this parameter
    BRIDLE_CHECK(g.device() == p.device(), "Adagrad: parameter {} is on {} but its gradient on {}",
                 i, p.device().str(), g.device().str());
    // The sum lives with the parameter (made with it, before a model.to(cuda)).
    optim_detail::follow_param(sum_[i], p);
    const ParamGroupSettings& group = group_of(i);
    if constexpr (kCudaBuild) {
      if (p.device().is_cuda()) {  // adagrad.cu
        cuda::DeviceGuard guard(p.device());
        cuda::adagrad_step(p.data<float>(), g.data<float>(), sum_[i].data<float>(), p.numel(),
                           cpu::adagrad_neg_clr(group.lr, options_.lr_decay, ++steps_[i]),
                           group.weight_decay, options_.eps);
        continue;
      }
    }
    cpu::adagrad_step(p.data<float>(), g.data<float>(), sum_[i].data<float>(), p.numel(), group.lr,
                      options_.lr_decay, group.weight_decay, options_.eps, ++steps_[i]);
  }
}

OptimizerState Adagrad::state() const {
  OptimizerState state = base_state("Adagrad");
  state.hyperparameters = {{"lr", options_.lr},
                           {"lr_decay", options_.lr_decay},
                           {"weight_decay", options_.weight_decay},
                           {"initial_accumulator_value", options_.initial_accumulator_value},
                           {"eps", options_.eps}};
  for (size_t i = 0; i < params_.size(); ++i) {
    state.per_parameter["step"].push_back(optim_detail::step_tensor(steps_[i]));
    state.per_parameter["sum"].push_back(sum_[i].clone());
  }
  return state;
}

void Adagrad::load_state(const OptimizerState& state) {
  const std::string type = "Adagrad";
  BRIDLE_CHECK(state.type == type, "{}::load_state: the state is of a {} optimizer, not {}", type,
               state.type, type);
  optim_detail::check_hyperparameter_names(
      state, type, {"lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"});
  AdagradOptions options;
  options.lr = optim_detail::hyperparameter(state, "lr");
  options.lr_decay = optim_detail::hyperparameter(state, "lr_decay");
  options.weight_decay = optim_detail::hyperparameter(state, "weight_decay");
  options.initial_accumulator_value =
      optim_detail::hyperparameter(state, "initial_accumulator_value");
  options.eps = optim_detail::hyperparameter(state, "eps");
  check_options(options);
  std::vector<ParamGroupSettings> groups =
      validate_base_state(state, type, options.lr, options.weight_decay);
  validate_per_parameter(optim_detail::without_steps(state), {"sum"});

  const size_t n = params_.size();
  std::vector<int64_t> steps = optim_detail::read_steps(state, type, n);
  std::vector<Tensor> sum = optim_detail::clone_kind(state, "sum", n);
  for (size_t i = 0; i < n; ++i) {
    // PyTorch's Adagrad keeps a step and a sum for every parameter from the start.
    BRIDLE_CHECK(steps[i] >= 0,
                 "{}::load_state: parameter {} has no step count (Adagrad keeps one for every "
                 "parameter)",
                 type, i);
    optim_detail::check_kind_present(type, "sum", i, sum[i].defined(), true, true);
    optim_detail::check_nonnegative_tensor(type, "sum", i, sum[i]);
  }
  options_ = options;
  groups_ = std::move(groups);
  step_count_ = state.step_count;
  steps_ = std::move(steps);
  sum_ = std::move(sum);
  optim_detail::to_param_devices(sum_, params_);  // a checkpoint's are on the host
}

}  // namespace bridle
