// SGD: the fused update kernel and the optimizer; see sgd.h for the rule.
#include "optim/sgd.h"

#include <cmath>

#include "core/factory.h"

namespace bridle {
namespace cpu {

void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, float lr,
              float momentum, float dampening, float weight_decay, bool nesterov, bool first) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + weight_decay * param[i];
    if (momentum != 0.0f) {
      float buf = first ? g : momentum * momentum_buffer[i] + (1.0f - dampening) * g;
      momentum_buffer[i] = buf;
      g = nesterov ? g + momentum * buf : buf;
    }
    param[i] -= lr * g;
  }
}

}  // namespace cpu

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : Optimizer(std::move(params)), options_(options), momentum_buffers_(params_.size()) {
  BRIDLE_CHECK(options.lr >= 0.0f && std::isfinite(options.lr), "SGD: invalid learning rate {}",
               options.lr);
  BRIDLE_CHECK(options.momentum >= 0.0f, "SGD: invalid momentum {}", options.momentum);
  BRIDLE_CHECK(options.weight_decay >= 0.0f, "SGD: invalid weight_decay {}", options.weight_decay);
  BRIDLE_CHECK(!options.nesterov || (options.momentum > 0.0f && options.dampening == 0.0f),
               "SGD: Nesterov momentum requires a momentum and zero dampening");
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;  // a parameter no gradient reached is left alone
    BRIDLE_CHECK(p.device().is_cpu(), "SGD: no kernel for device {}", p.device().str());
    bool first = !momentum_buffers_[i].defined();
    if (options_.momentum != 0.0f && first) momentum_buffers_[i] = Tensor::empty(p.shape());
    float* buf = options_.momentum != 0.0f ? momentum_buffers_[i].data<float>() : nullptr;
    cpu::sgd_step(p.data<float>(), g.data<float>(), buf, p.numel(), options_.lr, options_.momentum,
                  options_.dampening, options_.weight_decay, options_.nesterov, first);
  }
}

}  // namespace bridle
