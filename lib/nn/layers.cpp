// The basic layers; see layers.h.
#include "nn/layers.h"

#include <cmath>

#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/shape.h"

namespace bridle {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator& gen)
    : Module("Linear"), in_features_(in_features), out_features_(out_features) {
  BRIDLE_CHECK(in_features > 0 && out_features > 0,
               "Linear: sizes must be positive, got in={} out={}", in_features, out_features);
  // PyTorch: kaiming_uniform_(a=sqrt(5)) for the weight, which is U(-1/sqrt(in), 1/sqrt(in)),
  // and the same bound for the bias.
  float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
  weight = register_parameter("weight", uniform({out_features, in_features}, -bound, bound, gen));
  if (with_bias) bias = register_parameter("bias", uniform({out_features}, -bound, bound, gen));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", in_features_, out_features_,
                     bias.defined());
}

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim_, end_dim_); }

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) : Sequential() {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  BRIDLE_CHECK(module != nullptr, "Sequential: cannot add a null module");
  register_module(std::to_string(size()), std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor out = x;
  for (const auto& [name, module] : named_children()) out = module->forward(out);
  return out;
}

}  // namespace bridle
