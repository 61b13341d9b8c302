// Reductions: sum, mean, max and argmax, over everything or along one dim.
//
// Along a dim the input is viewed as [outer, n, inner] (see op_utils.h) and the
// output is [outer, inner], reshaped to the input shape without that dim (or
// with a 1 there when keepdim). Kernels and backward are in reduce.cpp.
#pragma once

#include "core/tensor.h"

namespace bridle {

Tensor sum(const Tensor& x);  // scalar (shape [])
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
// Largest value along dim; its gradient goes to the first maximal element.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
// Index of the first largest value along dim, as int64 (not differentiable).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

// Sums x down to `shape` (the reverse of broadcasting): sum_to([B, C], [C]).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace bridle
