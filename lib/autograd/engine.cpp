// The backward pass; see engine.h.
//
// Ordering: a node may run only after every node that consumes its output has
// added its contribution to the output's gradient. A depth-first post-order from
// the root, reversed, gives exactly that order. The DFS is iterative so deep
// graphs (long unrolled sequences) do not overflow the stack.
#include "autograd/engine.h"

#include <functional>
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

// For each position in the execution order (order reversed), the leaves with
// hooks whose gradient is complete once that node has run: a leaf is ready after
// the last node, in execution order, that has it as an input.
std::vector<std::vector<ImplPtr>> leaves_ready_after(const std::vector<ImplPtr>& order) {
  std::vector<std::vector<ImplPtr>> ready(order.size());
  std::unordered_set<TensorImpl*> seen;
  // Walking the execution order backwards, the first time a leaf shows up is
  // its last use.
  for (size_t step = 0; step < order.size(); ++step) {
    const size_t position = order.size() - 1 - step;  // in execution order
    for (const Tensor& input : order[step]->grad_fn->inputs()) {
      const ImplPtr& leaf = input.impl_ptr();
      if (!leaf || leaf->grad_fn || leaf->post_accumulate_grad_hooks.empty()) continue;
      if (seen.insert(leaf.get()).second) ready[position].push_back(leaf);
    }
  }
  return ready;
}

void run_hooks(const ImplPtr& leaf) {
  if (!leaf->grad) return;  // the backward did not reach it after all
  Tensor tensor(leaf);
  // A copy: a hook may remove itself.
  auto hooks = leaf->post_accumulate_grad_hooks;
  for (auto& [handle, hook] : hooks) hook(tensor);
}

// The callbacks of the backward running on this thread (null: none running).
thread_local std::vector<std::function<void()>>* t_callbacks = nullptr;

// Installs a callback list for one backward and runs it at the end; a nested
// backward (e.g. gradcheck inside a node) gets its own list.
class BackwardCallbacks {
 public:
  BackwardCallbacks() : outer_(t_callbacks) { t_callbacks = &callbacks_; }
  ~BackwardCallbacks() { t_callbacks = outer_; }
  void run() {
    for (size_t i = 0; i < callbacks_.size(); ++i) {
      auto fn = std::move(callbacks_[i]);  // fn may queue more: index, not iterator
      fn();
    }
    callbacks_.clear();
  }

 private:
  std::vector<std::function<void()>>* outer_;
  std::vector<std::function<void()>> callbacks_;
};

}  // namespace

void queue_backward_callback(std::function<void()> fn) {
  BRIDLE_CHECK(t_callbacks != nullptr,
               "queue_backward_callback: no backward is running on this thread");
  t_callbacks->push_back(std::move(fn));
}

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  BRIDLE_CHECK(root.requires_grad(),
               "backward: the tensor does not require grad (no input of the computation "
               "requires grad, or it was computed under NoGradGuard)");
  NoGradGuard no_grad;  // backward computations are not themselves recorded
  BackwardCallbacks callbacks;
  if (root.is_leaf()) {
    accumulate_grad(root, gradient);
    run_hooks(root.impl_ptr());
    callbacks.run();
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
  std::vector<std::vector<ImplPtr>> ready = leaves_ready_after(order);
  size_t position = 0;
  for (auto it = order.rbegin(); it != order.rend(); ++it, ++position) {
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
    for (const ImplPtr& leaf : ready[position]) run_hooks(leaf);
  }
  callbacks.run();
}

}  // namespace bridle
