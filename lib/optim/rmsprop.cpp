// RMSprop: the fused update kernel and the optimizer; see rmsprop.h for the rule.
#include "optim/rmsprop.h"

#include <cmath>

#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "optim/optimizer_util.h"
#include "optim/update_rules.h"

namespace bridle {
namespace cpu {
namespace {

template <bool kCentered, bool kMomentum>
void rmsprop_loop(float* param, const float* grad, float* square_avg, float* grad_avg,
                  float* momentum_buffer, int64_t n, float lr, float alpha, float one_minus_alpha,
                  float eps, float weight_decay, float momentum) {
  optim_detail::parallel_blocks(n, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i)
      update_rules::rmsprop<kCentered, kMomentum>(
          param[i], grad[i], square_avg[i], kCentered ? grad_avg + i : nullptr,
          kMomentum ? momentum_buffer + i : nullptr, lr, alpha, one_minus_alpha, eps, weight_decay,
          momentum);
  });
}

}  // namespace

void rmsprop_step(float* param, const float* grad, float* square_avg, float* grad_avg,
                  float* momentum_buffer, int64_t n, float lr, float alpha, float eps,
                  float weight_decay, float momentum) {
  const float one_minus_alpha = rmsprop_one_minus_alpha(alpha);
  const bool centered = grad_avg != nullptr, with_momentum = momentum_buffer != nullptr;
  auto* loop = centered
                   ? (with_momentum ? &rmsprop_loop<true, true> : &rmsprop_loop<true, false>)
                   : (with_momentum ? &rmsprop_loop<false, true> : &rmsprop_loop<false, false>);
  loop(param, grad, square_avg, grad_avg, momentum_buffer, n, lr, alpha, one_minus_alpha, eps,
       weight_decay, momentum);
}

}  // namespace cpu

namespace {

// Checks the options (before the base class checks the groups, so that the
// error names the optimizer) and returns them.
const RMSpropOptions& check_options(const RMSpropOptions& o) {
  optim_detail::check_nonnegative_option(o.lr, "RMSprop", "learning rate");
  optim_detail::check_nonnegative_option(o.eps, "RMSprop", "epsilon");
  optim_detail::check_nonnegative_option(o.momentum, "RMSprop", "momentum");
  optim_detail::check_nonnegative_option(o.weight_decay, "RMSprop", "weight_decay");
  optim_detail::check_nonnegative_option(o.alpha, "RMSprop", "alpha");
  return o;
}

}  // namespace

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions options)
    : RMSprop(std::vector<ParamGroup>{{.params = std::move(params)}}, options) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options)
    : Optimizer(std::move(groups), check_options(options).lr, options.weight_decay),
      options_(options),
      steps_(params_.size(), 0),
      square_avg_(params_.size()),
      momentum_buffer_(params_.size()),
      grad_avg_(params_.size()) {}

void RMSprop::step() {
  ++step_count_;
  const bool with_momentum = options_.momentum > 0.0f;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;  // as PyTorch: no gradient, no step for this parameter
    BRIDLE_CHECK(g.device() == p.device(), "RMSprop: parameter {} is on {} but its gradient on {}",
                 i, p.device().str(), g.device().str());
    // The state lives with the parameter.
    for (Tensor* state : {&square_avg_[i], &momentum_buffer_[i], &grad_avg_[i]})
      optim_detail::follow_param(*state, p);
    if (!square_avg_[i].defined()) square_avg_[i] = zeros_like(p);
    if (with_momentum && !momentum_buffer_[i].defined()) momentum_buffer_[i] = zeros_like(p);
    if (options_.centered && !grad_avg_[i].defined()) grad_avg_[i] = zeros_like(p);
    ++steps_[i];
    const ParamGroupSettings& group = group_of(i);
    float* grad_avg = options_.centered ? grad_avg_[i].data<float>() : nullptr;
    float* momentum_buffer = with_momentum ? momentum_buffer_[i].data<float>() : nullptr;
    if constexpr (kCudaBuild) {
      if (p.device().is_cuda()) {  // rmsprop.cu
        cuda::DeviceGuard guard(p.device());
        cuda::rmsprop_step(p.data<float>(), g.data<float>(), square_avg_[i].data<float>(), grad_avg,
                           momentum_buffer, p.numel(), group.lr, options_.alpha,
                           cpu::rmsprop_one_minus_alpha(options_.alpha), options_.eps,
                           group.weight_decay, options_.momentum);
        continue;
      }
    }
    cpu::rmsprop_step(p.data<float>(), g.data<float>(), square_avg_[i].data<float>(), grad_avg,
                      momentum_buffer, p.numel(), group.lr, options_.alpha, options_.eps,
                      group.weight_decay, options_.momentum);
  }
}

OptimizerState RMSprop::state() const {
  OptimizerState state = base_state("RMSprop");
  state.hyperparameters = {{"lr", options_.lr},
                           {"alpha", options_.alpha},
                           {"eps", options_.eps},
                           {"weight_decay", options_.weight_decay},
                           {"momentum", options_.momentum},
                           {"centered", options_.centered ? 1.0 : 0.0}};
  auto copy = [](const Tensor& t) { return t.defined() ? t.clone() : t; };
  for (size_t i = 0; i < params_.size(); ++i) {
    const bool has = square_avg_[i].defined();
    state.per_parameter["step"].push_back(has ? optim_detail::step_tensor(steps_[i]) : Tensor());
    state.per_parameter["square_avg"].push_back(copy(square_avg_[i]));
    if (options_.momentum > 0.0f)
      state.per_parameter["momentum_buffer"].push_back(copy(momentum_buffer_[i]));
    if (options_.centered) state.per_parameter["grad_avg"].push_back(copy(grad_avg_[i]));
  }
  return state;
}

void RMSprop::load_state(const OptimizerState& state) {
  const std::string type = "RMSprop";
  BRIDLE_CHECK(state.type == type, "{}::load_state: the state is of a {} optimizer, not {}", type,
               state.type, type);
  optim_detail::check_hyperparameter_names(
      state, type, {"lr", "alpha", "eps", "weight_decay", "momentum", "centered"});
  RMSpropOptions options;
  options.lr = optim_detail::hyperparameter(state, "lr");
  options.alpha = optim_detail::hyperparameter(state, "alpha");
  options.eps = optim_detail::hyperparameter(state, "eps");
  options.weight_decay = optim_detail::hyperparameter(state, "weight_decay");
  options.momentum = optim_detail::hyperparameter(state, "momentum");
  options.centered = optim_detail::bool_hyperparameter(state, type, "centered");
  check_options(options);
  std::vector<ParamGroupSettings> groups =
      validate_base_state(state, type, options.lr, options.weight_decay);
  validate_per_parameter(optim_detail::without_steps(state),
                         {"square_avg", "momentum_buffer", "grad_avg"});

  const size_t n = params_.size();
  std::vector<int64_t> steps = optim_detail::read_steps(state, type, n);
  std::vector<Tensor> square_avg = optim_detail::clone_kind(state, "square_avg", n);
  std::vector<Tensor> momentum_buffer = optim_detail::clone_kind(state, "momentum_buffer", n);
  std::vector<Tensor> grad_avg = optim_detail::clone_kind(state, "grad_avg", n);
  for (size_t i = 0; i < n; ++i) {
    const bool has = steps[i] >= 0;
    optim_detail::check_kind_present(type, "square_avg", i, square_avg[i].defined(), has, true);
    optim_detail::check_kind_present(type, "momentum_buffer", i, momentum_buffer[i].defined(), has,
                                     options.momentum > 0.0f, "momentum");
    optim_detail::check_kind_present(type, "grad_avg", i, grad_avg[i].defined(), has,
                                     options.centered, "centered");
    optim_detail::check_nonnegative_tensor(type, "square_avg", i, square_avg[i]);
    if (!has) steps[i] = 0;
  }
  options_ = options;
  groups_ = std::move(groups);
  step_count_ = state.step_count;
  steps_ = std::move(steps);
  square_avg_ = std::move(square_avg);
  momentum_buffer_ = std::move(momentum_buffer);
  grad_avg_ = std::move(grad_avg);
  optim_detail::to_param_devices(square_avg_, params_);  // a checkpoint's are on the host
  optim_detail::to_param_devices(momentum_buffer_, params_);
  optim_detail::to_param_devices(grad_avg_, params_);
}

}  // namespace bridle
