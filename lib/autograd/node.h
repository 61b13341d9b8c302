// Node: one recorded op on the autograd tape.
//
// An op that produces `output` from inputs that require grad attaches a Node to
// output.grad_fn. The node keeps the inputs (its edges to the rest of the graph)
// and whatever the backward needs. backward(grad_output, output) *accumulates*
// each input's gradient into that input's grad buffer (llm.c style: d-prefixed,
// +=), so a tensor used twice needs no special code.
//
// Ops record nodes with record(), giving a lambda for the backward; users who
// want their own backward subclass Function (autograd/function.h) instead.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

class Node {
 public:
  Node(std::string name, std::vector<Tensor> inputs)
      : name_(std::move(name)), inputs_(std::move(inputs)) {}
  virtual ~Node() = default;

  const std::string& name() const { return name_; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  bool released() const { return released_; }

  // Accumulates d(loss)/d(input) into every input that requires grad.
  // `output` is the tensor this node produced (handy for softmax, exp, tanh...).
  virtual void backward(const Tensor& grad_output, const Tensor& output) = 0;

  // Frees the edges and saved tensors once backward has run.
  virtual void release();

 protected:
  std::string name_;
  std::vector<Tensor> inputs_;
  bool released_ = false;
};

using BackwardFn = std::function<void(const Tensor& grad_output, const Tensor& output)>;

// A node whose backward is a lambda; the lambda captures what it saves.
class LambdaNode : public Node {
 public:
  LambdaNode(std::string name, std::vector<Tensor> inputs, BackwardFn fn)
      : Node(std::move(name), std::move(inputs)), fn_(std::move(fn)) {}
  void backward(const Tensor& grad_output, const Tensor& output) override {
    fn_(grad_output, output);
  }
  void release() override;

 private:
  BackwardFn fn_;
};

// --- Grad mode ------------------------------------------------------------

// Whether ops record the tape on this thread (on by default).
bool grad_enabled();
void set_grad_enabled(bool enabled);

// Turns recording off for its scope, as torch::NoGradGuard.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// --- Helpers for ops --------------------------------------------------------

// True when grad mode is on and any of the inputs requires grad.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a LambdaNode to output if any input requires grad (and grad mode is
// on); otherwise does nothing and `fn` is dropped. Returns output.
Tensor record(Tensor output, std::string name, std::vector<Tensor> inputs, BackwardFn fn);

// The gradient buffer of t, allocated as zeros on first use. Backward kernels
// accumulate into it. Only call for tensors with requires_grad().
Tensor grad_buffer(const Tensor& t);

// grad_buffer(t) += g, where g has t's shape.
void accumulate_grad(const Tensor& t, const Tensor& g);

// The same for g, a gradient just computed that nothing else holds: when t has
// no gradient yet, g becomes it (no zero fill, no add), in whatever layout g is.
// Kernels that overwrite their output (oneDNN's backward) use this.
void accumulate_fresh_grad(const Tensor& t, Tensor g);

// Runs kernel(dx, accumulate) to add t's gradient into dx. When t has a gradient
// already, dx is that buffer and accumulate is true (the kernel adds). Otherwise
// dx is a fresh uninitialised buffer that the kernel must overwrite in full
// (accumulate is false) and that then becomes t's gradient: the common case pays
// neither a zero fill nor a read of dx.
template <typename Kernel>
void write_grad(const Tensor& t, Kernel&& kernel) {
  if (t.impl().grad) {
    kernel(grad_buffer(t).template data<float>(), true);
    return;
  }
  Tensor fresh = Tensor::empty(t.shape(), TensorOptions(t.dtype()).with_device(t.device()));
  kernel(fresh.template data<float>(), false);
  accumulate_fresh_grad(t, std::move(fresh));
}

}  // namespace bridle
