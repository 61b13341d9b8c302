// Shape ops: reshape/view and dim-0 slicing are free views of the same storage;
// transpose and cat copy (tensors stay contiguous row-major).
#pragma once

#include <vector>

#include "core/tensor.h"

namespace bridle {

// Same elements, new shape; one dim may be -1 (inferred). A view: no copy.
Tensor reshape(const Tensor& x, const Shape& shape);
// Collapses dims [start_dim, end_dim] into one: [B, 1, 28, 28] -> [B, 784].
Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1);
// Swaps two dims (copies into a new contiguous tensor).
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
// Rows [start, end) of dim 0, as a view (how a batch is cut from a data set).
Tensor slice(const Tensor& x, int64_t start, int64_t end);
// Joins tensors along dim; all other dims must match.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);

}  // namespace bridle
