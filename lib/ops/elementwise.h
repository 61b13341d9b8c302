// Elementwise ops: unary math, binary arithmetic with PyTorch broadcasting, and
// the in-place accumulate that gradients and optimizers use.
//
// Shapes: a unary op keeps its input's shape. A binary op's output has the
// broadcast shape of its inputs (align trailing dims; a dim of 1 stretches).
// Backward sums the gradient over the stretched dims. CPU kernels are in
// elementwise.cpp; each op's derivative is written next to its forward there.
#pragma once

#include "core/tensor.h"

namespace bridle {

// Binary, broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& base,
           const Tensor& exponent);  // needs base > 0 where exponent's grad is wanted

// With a scalar.
Tensor add(const Tensor& a, float b);
Tensor mul(const Tensor& a, float b);
Tensor pow(const Tensor& x, float exponent);

// Unary.
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);

// The broadcast shape of a and b, or an error naming op and both shapes.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// dst += alpha * src, same shapes, in place; never recorded by autograd.
void add_(const Tensor& dst, const Tensor& src, float alpha = 1.0f);

}  // namespace bridle
