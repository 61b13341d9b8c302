// The backward pass: topological sort of the tape behind a tensor, then each
// node's backward in reverse order.
#pragma once

#include "core/tensor.h"

namespace bridle {

// Seeds root's gradient with `gradient` and runs every node that root depends on.
// Leaves that require grad end with their gradient accumulated in .grad; non-leaf
// gradients are freed (unless retain_grad()). Unless retain_graph, every node's
// saved tensors are released, and a second backward through them is an error.
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

}  // namespace bridle
