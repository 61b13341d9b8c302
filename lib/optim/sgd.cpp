// SGD: the fused update kernel and the optimizer; see sgd.h for the rule.
#include "optim/sgd.h"

#include <algorithm>
#include <cmath>

#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "optim/optimizer_util.h"
#include "optim/update_rules.h"

namespace bridle {
namespace cpu {

void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, float lr,
              float momentum, float dampening, float weight_decay, bool nesterov, bool first) {
  // Blocks for the threads, a plain simd loop inside each: GCC does not vectorize
  // the body of a combined `parallel for simd if(...)`.
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
#pragma omp simd
    for (int64_t i = b * kBlock; i < end; ++i)
      update_rules::sgd(param[i], grad[i], momentum_buffer ? momentum_buffer + i : nullptr, lr,
                        momentum, dampening, weight_decay, nesterov, first);
  }
}

}  // namespace cpu

namespace {

void check_options(const SGDOptions& options) {
  BRIDLE_CHECK(options.lr >= 0.0f && std::isfinite(options.lr), "SGD: invalid learning rate {}",
               options.lr);
  BRIDLE_CHECK(options.momentum >= 0.0f, "SGD: invalid momentum {}", options.momentum);
  BRIDLE_CHECK(options.weight_decay >= 0.0f, "SGD: invalid weight_decay {}", options.weight_decay);
  BRIDLE_CHECK(!options.nesterov || (options.momentum > 0.0f && options.dampening == 0.0f),
               "SGD: Nesterov momentum requires a momentum and zero dampening");
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(std::vector<ParamGroup>{{.params = std::move(params)}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(std::move(groups), options.lr, options.weight_decay),
      options_(options),
      momentum_buffers_(params_.size()) {
  check_options(options_);
}

void SGD::step() {
  ++step_count_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;  // a parameter no gradient reached is left alone
    BRIDLE_CHECK(g.device() == p.device(), "SGD: parameter {} is on {} but its gradient on {}", i,
                 p.device().str(), g.device().str());
    optim_detail::follow_param(momentum_buffers_[i], p);
    bool first = !momentum_buffers_[i].defined();
    if (options_.momentum != 0.0f && first)  // the buffer lives with the parameter
      momentum_buffers_[i] = Tensor::empty(p.shape(), p.device());
    float* buf = options_.momentum != 0.0f ? momentum_buffers_[i].data<float>() : nullptr;
    const ParamGroupSettings& group = group_of(i);
    if constexpr (kCudaBuild) {
      if (p.device().is_cuda()) {  // sgd.cu
        cuda::DeviceGuard guard(p.device());
        cuda::sgd_step(p.data<float>(), g.data<float>(), buf, p.numel(), group.lr,
                       options_.momentum, options_.dampening, group.weight_decay, options_.nesterov,
                       first);
        continue;
      }
    }
    cpu::sgd_step(p.data<float>(), g.data<float>(), buf, p.numel(), group.lr, options_.momentum,
                  options_.dampening, group.weight_decay, options_.nesterov, first);
  }
}

OptimizerState SGD::state() const {
  OptimizerState state = base_state("SGD");
  state.hyperparameters = {{"lr", options_.lr},
                           {"momentum", options_.momentum},
                           {"dampening", options_.dampening},
                           {"weight_decay", options_.weight_decay},
                           {"nesterov", options_.nesterov ? 1.0 : 0.0}};
  std::vector<Tensor>& buffers = state.per_parameter["momentum_buffer"];
  for (const Tensor& buf : momentum_buffers_) buffers.push_back(buf.defined() ? buf.clone() : buf);
  return state;
}

void SGD::load_state(const OptimizerState& state) {
  BRIDLE_CHECK(state.type == "SGD", "SGD::load_state: the state is of a {} optimizer, not SGD",
               state.type);
  for (const auto& [name, value] : state.hyperparameters)
    BRIDLE_CHECK(name == "lr" || name == "momentum" || name == "dampening" ||
                     name == "weight_decay" || name == "nesterov",
                 "SGD::load_state: unknown hyper-parameter '{}' = {}", name, value);
  auto hyper = [&](const char* name) {
    auto it = state.hyperparameters.find(name);
    BRIDLE_CHECK(it != state.hyperparameters.end(),
                 "SGD::load_state: hyper-parameter '{}' is missing", name);
    return it->second;
  };
  SGDOptions options;
  options.lr = static_cast<float>(hyper("lr"));
  options.momentum = static_cast<float>(hyper("momentum"));
  options.dampening = static_cast<float>(hyper("dampening"));
  options.weight_decay = static_cast<float>(hyper("weight_decay"));
  const double nesterov = hyper("nesterov");
  BRIDLE_CHECK(nesterov == 0.0 || nesterov == 1.0,
               "SGD::load_state: nesterov must be 0 or 1, got {}", nesterov);
  options.nesterov = nesterov == 1.0;
  check_options(options);
  std::vector<ParamGroupSettings> groups =
      validate_base_state(state, "SGD", options.lr, options.weight_decay);
  validate_per_parameter(state, {"momentum_buffer"});

  std::vector<Tensor> buffers(params_.size());
  auto saved = state.per_parameter.find("momentum_buffer");
  if (saved != state.per_parameter.end()) {
    for (size_t i = 0; i < buffers.size(); ++i) {
      if (!saved->second[i].defined()) continue;
      BRIDLE_CHECK(options.momentum != 0.0f,
                   "SGD::load_state: momentum buffer {} given, but momentum is 0", i);
      buffers[i] = saved->second[i].clone();
    }
  }
  optim_detail::to_param_devices(buffers, params_);  // a checkpoint's are on the host
  options_ = options;
  groups_ = std::move(groups);
  step_count_ = state.step_count;
  momentum_buffers_ = std::move(buffers);
}

}  // namespace bridle
