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

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
               Conv2dOptions options, bool with_bias, Generator& gen)
    : Module("Conv2d"),
      in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      options_(options) {
  BRIDLE_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0 && options.groups > 0,
               "Conv2d: channels ({}, {}), kernel size {} and groups {} must be positive",
               in_channels, out_channels, kernel_size, options.groups);
  BRIDLE_CHECK(in_channels % options.groups == 0 && out_channels % options.groups == 0,
               "Conv2d: {} input and {} output channels must divide into {} groups", in_channels,
               out_channels, options.groups);
  int64_t fan_in = in_channels / options.groups * kernel_size * kernel_size;
  float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  weight = register_parameter(
      "weight", uniform({out_channels, in_channels / options.groups, kernel_size, kernel_size},
                        -bound, bound, gen));
  if (with_bias) bias = register_parameter("bias", uniform({out_channels}, -bound, bound, gen));
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, options_); }

std::string Conv2d::extra_repr() const {
  std::string s = fmt::format("{}, {}, kernel_size={}, stride={}, padding={}", in_channels_,
                              out_channels_, kernel_size_, options_.stride[0], options_.padding[0]);
  if (options_.dilation[0] != 1) s += fmt::format(", dilation={}", options_.dilation[0]);
  if (options_.groups != 1) s += fmt::format(", groups={}", options_.groups);
  return s + fmt::format(", bias={}", bias.defined());
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
