// The backward pass: topological sort of the tape behind a tensor, then each
// node's backward in reverse order.
#pragma once

#include <functional>

#include "core/tensor.h"

namespace bridle {

// Seeds root's gradient with `gradient` and runs every node that root depends on.
// Leaves that require grad end with their gradient accumulated in .grad; non-leaf
// gradients are freed (unless retain_grad()). Unless retain_graph, every node's
// saved tensors are released, and a second backward through them is an error.
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

// Leaf hooks (Tensor::register_post_accumulate_grad_hook) run right after the
// last node that feeds the leaf, so later nodes still have work to overlap with.
//
// Inside a backward (from a hook or a node), queues fn to run once when that
// backward has run its last node: data-parallel training waits for its
// gradient exchange there. Callbacks run in the order queued; fn may queue more.
// Throws when no backward is running on this thread. If the backward throws,
// the queued callbacks are dropped.
void queue_backward_callback(std::function<void()> fn);

}  // namespace bridle
