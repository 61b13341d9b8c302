// Adam and AdamW: the fused update kernel and the optimizers; see adam.h for the rule.
#include "optim/adam.h"

#include <algorithm>
#include <cmath>

#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "optim/optimizer_util.h"

namespace bridle {
namespace cpu {
namespace {

// The rule (update_rules.h) over blocks of elements, one block per thread.
template <bool kAmsgrad>
void adam_loop(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const AdamScalars& scalars, float beta1,
               float beta2, float eps) {
  const AdamScalars k = scalars;  // by value: the lambda below copies it
  optim_detail::parallel_blocks(n, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i)
      update_rules::adam<kAmsgrad>(param[i], grad[i], exp_avg[i], exp_avg_sq[i],
                                   kAmsgrad ? max_exp_avg_sq + i : nullptr, k, beta1, beta2, eps);
  });
}

}  // namespace

AdamScalars adam_scalars(float lr, float beta1, float beta2, float weight_decay, bool decoupled,
                         int64_t step) {
  // Scalars in double, then float32, as PyTorch derives them from Python floats.
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(beta1), step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(beta2), step);
  return {.decay = static_cast<float>(decoupled ? 1.0 - double{lr} * weight_decay : 1.0),
          .l2 = decoupled ? 0.0f : weight_decay,
          .one_minus_beta1 = static_cast<float>(1.0 - beta1),
          .one_minus_beta2 = static_cast<float>(1.0 - beta2),
          .bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2)),
          .neg_step_size = static_cast<float>(-(lr / bias_correction1))};
}

void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, int64_t step) {
  const AdamScalars k = adam_scalars(lr, beta1, beta2, weight_decay, decoupled, step);
  auto* loop = max_exp_avg_sq != nullptr ? &adam_loop<true> : &adam_loop<false>;
  loop(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, k, beta1, beta2, eps);
}

}  // namespace cpu

namespace {

// Checks the options (before the base class checks the groups, so that the
// error names the optimizer) and returns them.
const AdamOptions& check_options(const AdamOptions& o, const std::string& type) {
  optim_detail::check_nonnegative_option(o.lr, type, "learning rate");
  optim_detail::check_nonnegative_option(o.eps, type, "epsilon");
  for (int k = 0; k < 2; ++k)
    BRIDLE_CHECK(o.betas[k] >= 0.0f && o.betas[k] < 1.0f,
                 "{}: invalid beta{} {} (betas[{}]; must be in [0, 1))", type, k + 1, o.betas[k],
                 k);
  optim_detail::check_nonnegative_option(o.weight_decay, type, "weight_decay");
  return o;
}

AdamOptions from_adamw(const AdamWOptions& o) {
  return {.lr = o.lr,
          .betas = o.betas,
          .eps = o.eps,
          .weight_decay = o.weight_decay,
          .amsgrad = o.amsgrad};
}

}  // namespace

AdamBase::AdamBase(std::vector<ParamGroup> groups, const AdamOptions& options, const char* type,
                   bool decoupled)
    : Optimizer(std::move(groups), check_options(options, type).lr, options.weight_decay),
      options_(options),
      type_(type),
      decoupled_(decoupled),
      steps_(params_.size(), 0),
      exp_avg_(params_.size()),
      exp_avg_sq_(params_.size()),
      max_exp_avg_sq_(params_.size()) {}

void AdamBase::step() {
  ++step_count_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;  // as PyTorch: no gradient, no step for this parameter
    BRIDLE_CHECK(g.device() == p.device(), "{}: parameter {} is on {} but its gradient on {}",
                 type_, i, p.device().str(), g.device().str());
    for (Tensor* state : {&exp_avg_[i], &exp_avg_sq_[i], &max_exp_avg_sq_[i]})
      optim_detail::follow_param(*state, p);
    if (!exp_avg_[i].defined()) {  // the moments live with the parameter
      exp_avg_[i] = zeros_like(p);
      exp_avg_sq_[i] = zeros_like(p);
    }
    if (options_.amsgrad && !max_exp_avg_sq_[i].defined()) max_exp_avg_sq_[i] = zeros_like(p);
    float* max_sq = options_.amsgrad ? max_exp_avg_sq_[i].data<float>() : nullptr;
    const ParamGroupSettings& group = group_of(i);
    if constexpr (kCudaBuild) {
      if (p.device().is_cuda()) {  // adam.cu
        const cpu::AdamScalars k = cpu::adam_scalars(group.lr, options_.betas[0], options_.betas[1],
                                                     group.weight_decay, decoupled_, ++steps_[i]);
        cuda::DeviceGuard guard(p.device());
        cuda::adam_update(p.data<float>(), g.data<float>(), exp_avg_[i].data<float>(),
                          exp_avg_sq_[i].data<float>(), max_sq, p.numel(), k, options_.betas[0],
                          options_.betas[1], options_.eps);
        continue;
      }
    }
    cpu::adam_step(p.data<float>(), g.data<float>(), exp_avg_[i].data<float>(),
                   exp_avg_sq_[i].data<float>(), max_sq, p.numel(), group.lr, options_.betas[0],
                   options_.betas[1], options_.eps, group.weight_decay, decoupled_, ++steps_[i]);
  }
}

OptimizerState AdamBase::state() const {
  OptimizerState state = base_state(type_);
  state.hyperparameters = {{"lr", options_.lr},
                           {"beta1", options_.betas[0]},
                           {"beta2", options_.betas[1]},
                           {"eps", options_.eps},
                           {"weight_decay", options_.weight_decay},
                           {"amsgrad", options_.amsgrad ? 1.0 : 0.0}};
  auto copy = [](const Tensor& t) { return t.defined() ? t.clone() : t; };
  for (size_t i = 0; i < params_.size(); ++i) {
    const bool has = exp_avg_[i].defined();
    state.per_parameter["step"].push_back(has ? optim_detail::step_tensor(steps_[i]) : Tensor());
    state.per_parameter["exp_avg"].push_back(copy(exp_avg_[i]));
    state.per_parameter["exp_avg_sq"].push_back(copy(exp_avg_sq_[i]));
    if (options_.amsgrad) state.per_parameter["max_exp_avg_sq"].push_back(copy(max_exp_avg_sq_[i]));
  }
  return state;
}

void AdamBase::load_state(const OptimizerState& state) {
  const std::string type = type_;
  BRIDLE_CHECK(state.type == type, "{}::load_state: the state is of a {} optimizer, not {}", type,
               state.type, type);
  optim_detail::check_hyperparameter_names(
      state, type, {"lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"});
  AdamOptions options;
  options.lr = optim_detail::hyperparameter(state, "lr");
  options.betas = {optim_detail::hyperparameter(state, "beta1"),
                   optim_detail::hyperparameter(state, "beta2")};
  options.eps = optim_detail::hyperparameter(state, "eps");
  options.weight_decay = optim_detail::hyperparameter(state, "weight_decay");
  options.amsgrad = optim_detail::bool_hyperparameter(state, type, "amsgrad");
  check_options(options, type);
  std::vector<ParamGroupSettings> groups =
      validate_base_state(state, type, options.lr, options.weight_decay);
  validate_per_parameter(optim_detail::without_steps(state),
                         {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"});

  const size_t n = params_.size();
  std::vector<int64_t> steps = optim_detail::read_steps(state, type, n);
  std::vector<Tensor> exp_avg = optim_detail::clone_kind(state, "exp_avg", n);
  std::vector<Tensor> exp_avg_sq = optim_detail::clone_kind(state, "exp_avg_sq", n);
  std::vector<Tensor> max_exp_avg_sq = optim_detail::clone_kind(state, "max_exp_avg_sq", n);
  for (size_t i = 0; i < n; ++i) {
    const bool has = steps[i] >= 0;
    optim_detail::check_kind_present(type, "exp_avg", i, exp_avg[i].defined(), has, true);
    optim_detail::check_kind_present(type, "exp_avg_sq", i, exp_avg_sq[i].defined(), has, true);
    optim_detail::check_kind_present(type, "max_exp_avg_sq", i, max_exp_avg_sq[i].defined(), has,
                                     options.amsgrad, "amsgrad");
    optim_detail::check_nonnegative_tensor(type, "exp_avg_sq", i, exp_avg_sq[i]);
    optim_detail::check_nonnegative_tensor(type, "max_exp_avg_sq", i, max_exp_avg_sq[i]);
    if (!has) steps[i] = 0;
  }
  optim_detail::to_param_devices(exp_avg, params_);
  optim_detail::to_param_devices(exp_avg_sq, params_);
  optim_detail::to_param_devices(max_exp_avg_sq, params_);
  options_ = options;
  groups_ = std::move(groups);
  step_count_ = state.step_count;
  steps_ = std::move(steps);
  exp_avg_ = std::move(exp_avg);
  exp_avg_sq_ = std::move(exp_avg_sq);
  max_exp_avg_sq_ = std::move(max_exp_avg_sq);
}

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::vector<ParamGroup>{{.params = std::move(params)}}, options) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : AdamBase(std::move(groups), options, "Adam", /*decoupled=*/false) {}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW(std::vector<ParamGroup>{{.params = std::move(params)}}, options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : AdamBase(std::move(groups), from_adamw(options), "AdamW", /*decoupled=*/true) {}

AdamWOptions AdamW::options() const {
  return {.lr = options_.lr,
          .betas = options_.betas,
          .eps = options_.eps,
          .weight_decay = options_.weight_decay,
          .amsgrad = options_.amsgrad};
}

}  // namespace bridle
