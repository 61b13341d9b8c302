// The backward pass; see engine.h.
//
// Ordering: a node may run only after every node that consumes its output has
// added its contribution to the output's gradient. A depth-first post-order from
// the root, reversed, gives exactly that order. The DFS is iterative so deep
// graphs (long unrolled sequences) do not overflow the stack.
#include "autograd/engine.h"

#include <unordered_set>
#include <utility>
#include <vector>

#include "autograd/anomaly.h"
#include "autograd/node.h"
#include "autograd/profiler.h"

namespace bridle {
namespace {

using ImplPtr = std::shared_ptr<TensorImpl>;

// Post-order of the tensors that have a grad_fn, reachable from root. Holding
// owning pointers keeps each tensor (and its gradient) alive until it has run,
// even after the nodes that consumed it have released their inputs.
std::vector<ImplPtr> topological_order(const ImplPtr& root) {
  std::vector<ImplPtr> order;
  std::unordered_set<TensorImpl*> visited;
  std::vector<std::pair<ImplPtr, size_t>> stack;  // (tensor, next input to visit)
  stack.emplace_back(root, 0);
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [impl, next] = stack.back();
    const auto& inputs = impl->grad_fn->inputs();
    if (next < inputs.size()) {
      const ImplPtr& child = inputs[next++].impl_ptr();
      if (child && child->grad_fn && child->requires_grad && visited.insert(child.get()).second)
        stack.emplace_back(child, 0);
    } else {
      order.push_back(std::move(impl));
      stack.pop_back();
    }
  }
  return order;
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  BRIDLE_CHECK(root.requires_grad(),
               "backward: the tensor does not require grad (no input of the computation "
               "requires grad, or it was computed under NoGradGuard)");
  NoGradGuard no_grad;  // backward computations are not themselves recorded
  if (root.is_leaf()) {
    accumulate_grad(root, gradient);
    return;
  }
  BRIDLE_CHECK(!root.grad_fn()->released(),
               "backward: the graph behind this tensor was already freed by an earlier "
               "backward; pass retain_graph=true to the first backward to run it twice");
  TensorImpl& root_impl = root.impl();
  if (!root_impl.grad && !root_impl.retains_grad) {
    // Nothing outlives this call holding the root's gradient and backward nodes
    // only read it, so the caller's tensor serves as it: no zero fill, no copy.
    BRIDLE_CHECK(gradient.shape() == root.shape(),
                 "backward: gradient of shape {} for a tensor of shape {}",
                 shape_str(gradient.shape()), shape_str(root.shape()));
    root_impl.grad = gradient.impl_ptr();
  } else {
    accumulate_grad(root, gradient);
  }

  std::vector<ImplPtr> order = topological_order(root.impl_ptr());
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Tensor output(std::move(*it));  // dropped at the end of this iteration
    TensorImpl& impl = output.impl();
    Node& node = *impl.grad_fn;
    BRIDLE_CHECK(!node.released(),
                 "backward: node '{}' was already freed by an earlier backward; pass "
                 "retain_graph=true to the first backward to run it twice",
                 node.name());
    if (impl.grad) {  // else no gradient reached this tensor: nothing to propagate
      Tensor grad_output(impl.grad);
      {
        detail::ProfiledBackward timer(node, grad_output);
        detail::AnomalyBackwardScope anomaly_scope;
        node.backward(grad_output, output);
      }
      detail::check_backward_anomaly(node, grad_output);
      if (!impl.retains_grad) impl.grad.reset();
    }
    if (!retain_graph) node.release();
  }
}

}  // namespace bridle
