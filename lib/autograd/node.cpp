// Nodes, grad mode and the helpers ops use to record themselves; see node.h.
#include "autograd/node.h"

#include "core/factory.h"
#include "ops/elementwise.h"

namespace bridle {

void Node::release() {
  inputs_.clear();
  inputs_.shrink_to_fit();
  released_ = true;
}

void LambdaNode::release() {
  Node::release();
  fn_ = nullptr;  // drops the tensors the lambda saved
}

namespace {
thread_local bool grad_mode_enabled = true;
}

bool grad_enabled() { return grad_mode_enabled; }
void set_grad_enabled(bool enabled) { grad_mode_enabled = enabled; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor output, std::string name, std::vector<Tensor> inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return output;
  TensorImpl& impl = output.impl();
  impl.requires_grad = true;
  impl.grad_fn = std::make_shared<LambdaNode>(std::move(name), std::move(inputs), std::move(fn));
  return output;
}

Tensor grad_buffer(const Tensor& t) {
  TensorImpl& impl = t.impl();
  if (!impl.grad)
    impl.grad = zeros(t.shape(), TensorOptions(t.dtype()).with_device(t.device())).impl_ptr();
  return Tensor(impl.grad);
}

void accumulate_grad(const Tensor& t, const Tensor& g) {
  BRIDLE_CHECK(g.shape() == t.shape(),
               "accumulate_grad: gradient of shape {} for a tensor of shape {}",
               shape_str(g.shape()), shape_str(t.shape()));
  Tensor buffer = grad_buffer(t);
  add_(buffer, g);
}

}  // namespace bridle
