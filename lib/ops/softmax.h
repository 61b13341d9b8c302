// The softmax family along one dim: softmax, log_softmax and logsumexp.
//
//   softmax(x, T)_j     = exp(x_j / T) / sum_k exp(x_k / T)
//   log_softmax(x, T)_j = x_j / T - logsumexp(x / T)
//   logsumexp(x)        = m + log sum_k exp(x_k - m),   m = max_k x_k
// All three subtract the row maximum first, so [1000, 1001, 1002] and [-1e4, 0]
// are exact, and -inf entries get probability 0. A row with no finite maximum
// (all -inf, or containing +inf or NaN) has no softmax: softmax and log_softmax
// throw and name the row. logsumexp of an all -inf row is -inf (its true value),
// with zero gradient. Temperature T must be > 0.
//
// Kernels, naive and fast, and the backward derivations are in softmax.cpp, the
// CUDA kernels in softmax.cu (declared in cuda_kernels.h); the fused softmax +
// cross-entropy loss is in cross_entropy.h.
#pragma once

#include "core/tensor.h"
#include "ops/store.h"

namespace bridle {

Tensor softmax(const Tensor& x, int64_t dim = -1, float temperature = 1.0f);
Tensor log_softmax(const Tensor& x, int64_t dim = -1, float temperature = 1.0f);
Tensor logsumexp(const Tensor& x, int64_t dim = -1, bool keepdim = false);

// softmax where a row that is entirely -inf (everything masked out) gives zeros
// and a zero gradient instead of an error; +inf and NaN are still errors.
Tensor safe_softmax(const Tensor& x, int64_t dim = -1);
// safe_softmax of x with a mask that broadcasts to x: an int32/int64 mask keeps
// the positions where it is nonzero (PyTorch's boolean attention masks: true =
// take part) and sends the rest to -inf; a float32 mask is added (additive masks:
// 0 keeps, -inf removes).
Tensor masked_softmax(const Tensor& x, const Tensor& mask, int64_t dim = -1);

namespace cpu {

// Rows are laid out [outer, n, inner]: a row's n elements are `inner` apart.
// Forward kernels return the first row with no finite maximum, or -1.
// `log` selects log_softmax; inv_temp = 1 / T.
int64_t softmax_forward_naive(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                              float inv_temp, bool log);
void softmax_backward_naive(float* dinp, const float* out, const float* dout, int64_t outer,
                            int64_t n, int64_t inner, float inv_temp, bool log);
// Fast path for contiguous rows (inner = 1): vectorized, threaded over rows.
// order: how each thread runs the two passes over its rows (see softmax.cpp):
// kInTurn, a row's first pass and then its second; kRowApart, row r's first pass
// beside row r-1's second, block by block. The results are the same to rounding.
enum class RowOrder { kInTurn, kRowApart };
int64_t softmax_forward(float* out, const float* inp, int64_t rows, int64_t n, float inv_temp,
                        bool log, RowOrder order);
// The order measured faster for rows of n on this CPU, and the forward with it.
RowOrder softmax_forward_order(int64_t n, bool log);
int64_t softmax_forward(float* out, const float* inp, int64_t rows, int64_t n, float inv_temp,
                        bool log);
// accumulate: dinp += the gradient; otherwise dinp = the gradient (a fresh buffer).
// store: how a fresh softmax dx is written (log_softmax's, and one added to, are
// always cached); softmax_backward_store gives the op's choice for the shape.
void softmax_backward(float* dinp, const float* out, const float* dout, int64_t rows, int64_t n,
                      float inv_temp, bool log, bool accumulate = true,
                      Store store = Store::kCached);
Store softmax_backward_store(int64_t rows, int64_t n, bool log);
// max + log(sum exp(x - max)) of one contiguous row, reading it from memory once;
// NaN for a row with a NaN, a +inf or no finite element.
float row_logsumexp(const float* x, int64_t n);

void logsumexp_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner);
void logsumexp_backward(float* dinp, const float* inp, const float* out, const float* dout,
                        int64_t outer, int64_t n, int64_t inner);

}  // namespace cpu
}  // namespace bridle
