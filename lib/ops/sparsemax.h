// Sparse alternatives to softmax: sparsemax (Martins & Astudillo 2016), 1.5-entmax
// and alpha-entmax (Peters, Niculae & Martins 2019), with their Fenchel-Young
// losses. Like softmax they map a row z to a probability distribution, but they
// can give classes *exactly* zero probability.
//
//   alpha-entmax(z) = argmax_p <p, z> + H_alpha(p)   over the simplex, where H_alpha
//   is the Tsallis entropy; the solution is p_j = [(alpha - 1) z_j - tau]_+^(1/(alpha-1))
//   with the threshold tau chosen so that sum_j p_j = 1.
//   alpha = 1: softmax. alpha = 2: sparsemax, p = [z - tau]_+ (the Euclidean
//   projection of z onto the simplex). alpha = 1.5: p = [z/2 - tau]_+^2.
//
// sparsemax and entmax15 find tau exactly by sorting the row (as the `entmax`
// package does); entmax_bisect finds it for any alpha > 1 by bisection. Backward,
// with S the support {p_j > 0} and g_j = p_j^(2 - alpha) on S (1 for sparsemax):
//   dz = g * dp - g * (sum_j g_j dp_j) / (sum_j g_j)
// which is the exact Jacobian-vector product wherever the support is locally fixed.
//
// The Fenchel-Young losses of class targets y (the `entmax` package's
// SparsemaxLoss / Entmax15Loss / EntmaxBisectLoss):
//   loss_b = Omega(p) + <p - e_y, z_b>,   Omega(p) = (1 - sum_j p_j^alpha) / (alpha (alpha - 1))
// are >= 0, zero when p = e_y, and have gradient p - e_y (no Jacobian needed).
// All operate along dim (default the last); rows with NaN or an infinity are errors.
#pragma once

#include "core/tensor.h"
#include "ops/cross_entropy.h"

namespace bridle {

Tensor sparsemax(const Tensor& x, int64_t dim = -1);
Tensor entmax15(const Tensor& x, int64_t dim = -1);
// alpha >= 1 (alpha = 1 is softmax); n_iter bisection steps halve the bracket each.
Tensor entmax_bisect(const Tensor& x, float alpha = 1.5f, int64_t dim = -1, int n_iter = 50);

// logits [B, C], class targets [B] (int32/int64, ignore_index rows give 0).
// kMean averages over the rows that are not ignored.
struct FenchelYoungOptions {
  Reduction reduction = Reduction::kMean;
  int64_t ignore_index = -100;
};
Tensor sparsemax_loss(const Tensor& logits, const Tensor& targets,
                      const FenchelYoungOptions& options = {});
Tensor entmax15_loss(const Tensor& logits, const Tensor& targets,
                     const FenchelYoungOptions& options = {});
Tensor entmax_bisect_loss(const Tensor& logits, const Tensor& targets, float alpha,
                          const FenchelYoungOptions& options = {});

namespace cpu {

// One row of n values each: p = alpha-entmax(z) in place of out. The sort-based
// exact thresholds (alpha = 2 and alpha = 1.5) and the bisection for any alpha > 1.
void sparsemax_rows(float* out, const float* in, int64_t rows, int64_t n);
void entmax15_rows(float* out, const float* in, int64_t rows, int64_t n);
void entmax_bisect_rows(float* out, const float* in, int64_t rows, int64_t n, float alpha,
                        int n_iter);
// din += the backward above, from p = out and dout.
void entmax_backward_rows(float* din, const float* out, const float* dout, int64_t rows, int64_t n,
                          float alpha);

}  // namespace cpu
}  // namespace bridle
