// Module: the base of every layer and model, after PyTorch's nn.Module.
//
// A module owns named parameters, named buffers (state that is not trained,
// e.g. running statistics) and named child modules. Names join with dots into
// the keys checkpoints use: a child "fc1" with a parameter "weight" gives
// "fc1.weight". A user layer subclasses Module, registers its pieces in the
// constructor, and writes forward() from ops; autograd supplies the backward.
//
//   struct Mlp : bridle::Module {
//     std::shared_ptr<bridle::Linear> fc1, fc2;
//     Mlp() : Module("Mlp") {
//       fc1 = register_module("fc1", std::make_shared<bridle::Linear>(784, 128));
//       fc2 = register_module("fc2", std::make_shared<bridle::Linear>(128, 10));
//     }
//     bridle::Tensor forward(const bridle::Tensor& x) override {
//       return fc2->forward(bridle::relu(fc1->forward(x)));
//     }
//   };
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace bridle {

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The computation. The default throws: a module meant to be called overrides it.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  int64_t num_parameters() const;

  // Training mode (the default) vs evaluation mode, for this module and its children.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad(bool set_to_none = false);

  // Moves every parameter and buffer to device, in place: each tensor keeps its
  // identity (the handles a layer holds, e.g. Linear::weight, see the move) and
  // drops its gradient. Build the optimizer after the move. All or nothing: if
  // one tensor cannot be moved (no such device), none is.
  Module& to(Device device);

  const std::string& type_name() const { return type_name_; }
  // A tree of the module and its children, as PyTorch prints models.
  virtual std::string str() const;

 protected:
  // Registers t as a parameter (it is made a leaf that requires grad).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_new_name(name);
    children_.emplace_back(name, module);
    return module;
  }
  // Extra text inside the parentheses of str(), e.g. "in=784, out=512".
  virtual std::string extra_repr() const { return ""; }

 private:
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool recurse, bool buffers,
               std::vector<std::pair<std::string, Tensor>>& out) const;

  std::string type_name_;
  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace bridle
