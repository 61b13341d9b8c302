// Nodes, grad mode and the helpers ops use to record themselves; see node.h.
#include "autograd/node.h"

#include <cstring>

#include "autograd/anomaly.h"
#include "autograd/profiler.h"
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
  // Every op passes here, taped or not: the profiler and the anomaly check hook in.
  detail::check_forward_anomaly(name, inputs, output);
  detail::profile_op(name, inputs, output);
  if (!any_requires_grad(inputs)) return output;
  TensorImpl& impl = output.impl();
  impl.requires_grad = true;
  impl.grad_fn = std::make_shared<LambdaNode>(std::move(name), std::move(inputs), std::move(fn));
  return output;
}

Tensor grad_buffer(const Tensor& t) {
  TensorImpl& impl = t.impl();
  if (!impl.grad && impl.layout) {  // the gradient of an opaque tensor shares its layout
    Tensor g = Tensor::empty_opaque(t.shape(), impl.layout, t.device());
    std::memset(g.opaque_data(), 0, impl.layout->nbytes());
    impl.grad = g.impl_ptr();
  }
  if (!impl.grad)
    impl.grad = zeros(t.shape(), TensorOptions(t.dtype()).with_device(t.device())).impl_ptr();
  return Tensor(impl.grad);
}

void accumulate_fresh_grad(const Tensor& t, Tensor g) {
  BRIDLE_CHECK(g.shape() == t.shape(),
               "accumulate_fresh_grad: gradient of shape {} for a tensor of shape {}",
               shape_str(g.shape()), shape_str(t.shape()));
  TensorImpl& impl = t.impl();
  if (!impl.grad) {
    impl.grad = g.impl_ptr();
    return;
  }
  Tensor buffer(impl.grad);
  if (!buffer.is_plain() && same_layout(buffer, g)) {  // add over the raw memory
    auto* dst = static_cast<float*>(buffer.opaque_data());
    const auto* src = static_cast<const float*>(g.opaque_data());
    const auto n = static_cast<int64_t>(buffer.layout()->nbytes() / sizeof(float));
#pragma omp parallel for simd if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
    return;
  }
  add_(buffer, g);  // plain (converting either if needed)
}

void accumulate_grad(const Tensor& t, const Tensor& g) {
  BRIDLE_CHECK(g.shape() == t.shape(),
               "accumulate_grad: gradient of shape {} for a tensor of shape {}",
               shape_str(g.shape()), shape_str(t.shape()));
  Tensor buffer = grad_buffer(t);
  add_(buffer, g);
}

}  // namespace bridle
