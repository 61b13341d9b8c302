// Indexing ops: picking rows (index_select, embedding) and picking one or a few
// entries per row (gather), plus a helper that finds the positions whose value
// falls in a range (how adaptive softmax assigns rows to clusters).
//
// Shapes (letters fixed for this file): N rows to pick from, K picked indices,
// B rows, C classes, V vocabulary entries, d embedding width.
//   index_select(x [..., N, ...], indices [K], dim) -> x with dim N replaced by K
//   gather(x [B, C], index [B])    -> [B]     out_b  = x[b, index_b]
//   gather(x [B, C], index [B, k]) -> [B, k]  out_bj = x[b, index_bj]
//   embedding(weight [V, d], indices [any shape]) -> [indices.shape..., d]
// Indices are int32 or int64 and must lie in [0, size): negative indices are
// errors (no wrapping from the end), and every error names the op, the shapes
// and the first bad index with its position. Each backward scatter-adds, so a
// repeated index accumulates the gradients of all its copies. The gradient is
// dense (embedding's dweight is [V, d] like PyTorch's default, not sparse).
// Kernels, naive and fast, and the derivations are in indexing.cpp; the CUDA
// kernels (the same ops on a GPU, same checks and errors) in indexing.cu.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace bridle {

// Picks entries of x along dim (0 by default): out[..., k, ...] = x[..., indices[k], ...].
// Works for float32 and integer x; only float32 x is differentiable.
Tensor index_select(const Tensor& x, const Tensor& indices, int64_t dim = 0);

// One entry per row (index [B] -> [B]) or k entries per row (index [B, k] -> [B, k])
// of a 2-D float32 x, along dim 1.
Tensor gather(const Tensor& x, const Tensor& index);

// Rows of weight for each index: an embedding lookup. Differentiable in weight.
Tensor embedding(const Tensor& weight, const Tensor& indices);

// The positions i (int64 [K], increasing) where low <= values[i] < high, for 1-D
// int32/int64 values: PyTorch's ((values >= low) & (values < high)).nonzero().
// Not differentiable. On a GPU the values are scanned on the host (a copy that
// waits for the GPU) and the positions returned on the GPU.
Tensor indices_in_range(const Tensor& values, int64_t low, int64_t high);

namespace cpu {

// x is viewed as [outer, n, inner] around the indexed dim, out as [outer, K, inner].
// out[o, k, i] = x[o, indices[k], i]. Indices are already validated.
template <typename T, typename Index>
void index_select_forward(T* out, const T* x, const Index* indices, int64_t outer, int64_t n,
                          int64_t K, int64_t inner);
// dx[o, indices[k], i] += dout[o, k, i]. accumulate = false overwrites dx in full
// (zeros where no index points). Parallel over (o, column blocks), each task
// walking all K indices, so repeated indices never race.
template <typename Index>
void index_select_backward(float* dx, const float* dout, const Index* indices, int64_t outer,
                           int64_t n, int64_t K, int64_t inner, bool accumulate = true);
// The same as one serial loop: the reference the tests hold the fast one to.
template <typename Index>
void index_select_backward_naive(float* dx, const float* dout, const Index* indices, int64_t outer,
                                 int64_t n, int64_t K, int64_t inner);

// out[b, j] = x[b, index[b, j]] for x [B, C] and index [B, k].
template <typename Index>
void gather_forward(float* out, const float* x, const Index* index, int64_t B, int64_t C,
                    int64_t k);
// dx[b, index[b, j]] += dout[b, j]; accumulate = false overwrites dx in full.
template <typename Index>
void gather_backward(float* dx, const float* dout, const Index* index, int64_t B, int64_t C,
                     int64_t k, bool accumulate = true);

}  // namespace cpu
}  // namespace bridle
