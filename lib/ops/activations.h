// Activations beyond elementwise.h: GELU (exact and tanh forms) and leaky ReLU.
//
// Shapes: any x -> y of the same shape.
//   gelu(x)            = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))          ("none")
//   gelu(x, "tanh")    = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
//   leaky_relu(x, a)   = x if x > 0 else a x
// The formulas and derivatives follow PyTorch's CPU kernels; each derivative sits
// next to its forward in activations.cpp, the CUDA kernels in activations.cu.
#pragma once

#include <string_view>

#include "core/tensor.h"

namespace bridle {

// approximate: "none" (exact, erf) or "tanh", as torch.nn.functional.gelu.
Tensor gelu(const Tensor& x, std::string_view approximate = "none");
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);

namespace cpu {

void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form);
void gelu_backward(float* dx, const float* x, const float* dy, int64_t n, bool tanh_form);
void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope);
void leaky_relu_backward(float* dx, const float* x, const float* dy, int64_t n,
                         float negative_slope);

}  // namespace cpu
}  // namespace bridle
