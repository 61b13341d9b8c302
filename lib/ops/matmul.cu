// matmul and linear on a GPU: the products through cuBLAS, and the two small
// kernels for linear's bias (the ops and the CPU kernels are in matmul.cpp).
//
// cuBLAS is column-major; bridle is row-major. A row-major [M, N] matrix is the
// same memory as a column-major [N, M] one, its transpose, so
//   C = op(A) op(B)   (row-major)   is   C^T = op(B)^T op(A)^T   (column-major),
// which is one cublasSgemm with A and B swapped (and M and N): no copies.
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

__global__ void broadcast_rows_kernel(float* out, const float* bias, int64_t rows, int64_t cols) {
  BRIDLE_GRID_STRIDE_LOOP(i, rows * cols) out[i] = bias[i % cols];
}

// One thread per column walks the rows: neighbouring threads read neighbouring
// columns, so each row's read is coalesced.
__global__ void sum_rows_backward_kernel(float* dbias, const float* dout, int64_t rows,
                                         int64_t cols) {
  BRIDLE_GRID_STRIDE_LOOP(n, cols) {
    float sum = 0.0f;
    for (int64_t m = 0; m < rows; ++m) sum += dout[m * cols + n];
    dbias[n] += sum;
  }
}

cublasOperation_t op(bool transpose) { return transpose ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  check_fits_int("cublasSgemm", {M, N, K, lda, ldb, ldc});
  // K = 0 is a product of empty matrices: C = beta C. Done here for beta 0 and 1
  // (cuBLAS's batched paths have left C unwritten for it); for another beta
  // cuBLAS scales C, given leading dimensions of at least 1 (ld = K = 0 here).
  if (K == 0 && beta == 0.0f) {
    BRIDLE_CUDA_CHECK(cudaMemset2DAsync(C, static_cast<size_t>(ldc) * sizeof(float), 0,
                                        static_cast<size_t>(N) * sizeof(float),
                                        static_cast<size_t>(M), stream()));
    return;
  }
  if (K == 0 && beta == 1.0f) return;
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  BRIDLE_CUBLAS_CHECK(cublasSgemm(cublas_handle(), op(trans_b), op(trans_a), static_cast<int>(N),
                                  static_cast<int>(M), static_cast<int>(K), &alpha, B,
                                  static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C,
                                  static_cast<int>(ldc)));
}

void broadcast_rows(float* out, const float* bias, int64_t rows, int64_t cols) {
  if (rows * cols == 0) return;
  constexpr int kThreads = 256;
  broadcast_rows_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, stream()>>>(out, bias,
                                                                                      rows, cols);
  BRIDLE_CUDA_CHECK_LAUNCH("broadcast_rows_kernel");
}

void sum_rows_backward(float* dbias, const float* dout, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  constexpr int kThreads = 256;
  sum_rows_backward_kernel<<<blocks_for(cols, kThreads), kThreads, 0, stream()>>>(dbias, dout, rows,
                                                                                  cols);
  BRIDLE_CUDA_CHECK_LAUNCH("sum_rows_backward_kernel");
}

}  // namespace bridle::cuda
