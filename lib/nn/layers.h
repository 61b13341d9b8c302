// The basic layers: Linear, Conv2d, ReLU, Flatten and Sequential.
//
// Shapes: Linear x [..., in] -> [..., out] with weight [out, in] and bias [out],
// initialized as PyTorch does (uniform in +-1/sqrt(in) for both). Conv2d
// x [N, in, H, W] -> [N, out, OH, OW] (see ops/conv.h). Flatten
// [B, d1, d2, ...] -> [B, d1*d2*...]. Sequential calls its children in order;
// they are named "0", "1", ... as in PyTorch, so its keys are "0.weight", ...
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include "core/factory.h"
#include "nn/module.h"
#include "ops/conv.h"

namespace bridle {

class Linear : public Module {
 public:
  // Draws the initial weights from gen (the global generator by default).
  Linear(int64_t in_features, int64_t out_features, bool bias = true,
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined when built without bias

 protected:
  std::string extra_repr() const override;

 private:
  int64_t in_features_, out_features_;
};

// 2-D convolution layer: weight [out, in/groups, k, k], bias [out]; PyTorch's
// initialization (uniform in +-1/sqrt(fan_in), fan_in = in/groups * k * k).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options = {},
         bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

  Tensor weight;  // [out, in/groups, k, k]
  Tensor bias;    // [out], undefined when built without bias

 protected:
  std::string extra_repr() const override;

 private:
  int64_t in_channels_, out_channels_, kernel_size_;
  Conv2dOptions options_;
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Module("Flatten"), start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;

 private:
  int64_t start_dim_, end_dim_;
};

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  // Appends a module under the next index name.
  void push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return named_children().size(); }
};

}  // namespace bridle
