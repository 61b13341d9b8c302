// Matrix products: matmul (2-D and batched) and linear (x W^T + b), on OpenBLAS.
//
// The products run on oneDNN's sgemm by default: it dispatches on the CPU it
// finds at run time, while Debian's OpenBLAS 0.3.21 does not recognize recent
// Xeons and falls back to its generic (Prescott) kernels, about 4x slower.
// OpenBLAS stays available (set_gemm_backend, or BRIDLE_GEMM=openblas).
//
// Shapes: matmul [M, K] x [K, N] -> [M, N]; [B, M, K] x [B, K, N] -> [B, M, N];
// [B, M, K] x [K, N] -> [B, M, N]. linear: x [..., in], W [out, in], b [out] -> [..., out].
#pragma once

#include "core/tensor.h"

namespace bridle {

Tensor matmul(const Tensor& a, const Tensor& b);
// PyTorch's F.linear: x W^T + b, one fused op (bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

enum class GemmBackend { kOneDnn, kOpenBlas };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();
const char* gemm_backend_name(GemmBackend backend);

namespace cpu {

// C = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_*.
// op(A) is [M, K], op(B) is [K, N], C is [M, N]; lda/ldb/ldc are row strides.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// gemm on a given backend (gemm() uses the selected one).
void gemm_with(GemmBackend backend, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
               float* C, int64_t ldc);
// The same, as three textbook loops: the reference the tests hold gemm to.
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc);

}  // namespace cpu
}  // namespace bridle
