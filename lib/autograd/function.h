// Function: the public way to add an op with a hand-written backward.
//
// Subclass it, compute the result in forward() from the input tensors, keep what
// the backward needs as members, and return one gradient per input from
// backward(). Function::apply<YourFunction>(inputs) runs forward without
// recording and records one node that calls your backward. See examples/04_custom_layer for a
// worked example.
//
//   struct Cube : bridle::Function {
//     bridle::Tensor x;
//     bridle::Tensor forward(const std::vector<bridle::Tensor>& in) override {
//       x = in[0]; return x * x * x;
//     }
//     std::vector<bridle::Tensor> backward(const bridle::Tensor& g) override {
//       return {g * 3.0f * x * x};
//     }
//   };
//   bridle::Tensor y = bridle::Function::apply<Cube>({x});
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

class Function {
 public:
  virtual ~Function() = default;
  // The name shown in errors and graph dumps.
  virtual std::string name() const { return "Function"; }
  virtual Tensor forward(const std::vector<Tensor>& inputs) = 0;
  // One gradient per input, each of its input's shape; an undefined Tensor
  // means "no gradient" for that input.
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;

  // Makes an F from args and applies it to inputs.
  template <typename F, typename... Args>
  static Tensor apply(const std::vector<Tensor>& inputs, Args&&... args) {
    return apply_function(std::make_shared<F>(std::forward<Args>(args)...), inputs);
  }
};

// Runs function->forward(inputs) without recording, then records one node whose
// backward calls function->backward. The node owns the function (its saved state).
Tensor apply_function(std::shared_ptr<Function> function, const std::vector<Tensor>& inputs);

}  // namespace bridle
