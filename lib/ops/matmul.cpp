// matmul and linear: ops, backward and CPU kernels (oneDNN or OpenBLAS sgemm, and
// the naive loops); declarations in matmul.h.
//
// Backward of C = A B (per batch):   dA += dC B^T,   dB += A^T dC.
// Backward of y = x W^T + b:         dx += dy W,     dW += dy^T x,   db += sum_rows(dy).
// Every backward product is a gemm with beta = 1, so it accumulates in place.
#include "ops/matmul.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/op_utils.h"

// Every oneDNN call goes through this check.
#define BRIDLE_DNNL_CHECK(call)                                                          \
  do {                                                                                   \
    dnnl_status_t status_ = (call);                                                      \
    BRIDLE_CHECK(status_ == dnnl_success, "oneDNN call {} failed with status {}", #call, \
                 static_cast<int>(status_));                                             \
  } while (0)

namespace bridle {
namespace {

// The rows of x seen as a matrix [rows, last dim] (not numel / last dim, which
// divides by zero when the last dim is 0).
int64_t leading_rows(const Tensor& x) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.shape()[d];
  return rows;
}

GemmBackend initial_backend() {
  const char* env = std::getenv("BRIDLE_GEMM");
  return env != nullptr && std::strcmp(env, "openblas") == 0 ? GemmBackend::kOpenBlas
                                                             : GemmBackend::kOneDnn;
}

std::atomic<GemmBackend> selected_backend{initial_backend()};

}  // namespace

void set_gemm_backend(GemmBackend backend) { selected_backend = backend; }
GemmBackend gemm_backend() { return selected_backend; }
const char* gemm_backend_name(GemmBackend backend) {
  return backend == GemmBackend::kOneDnn ? "oneDNN" : "OpenBLAS";
}

namespace cpu {

void gemm_with(GemmBackend backend, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
               float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  BRIDLE_CHECK(std::max({M, N, K, lda, ldb, ldc}) <= std::numeric_limits<int>::max(),
               "gemm: [{} x {}] x [{} x {}] exceeds BLAS's int sizes", M, K, K, N);
  if (K == 0) {  // a product of empty matrices: C = beta C (BLAS would reject ld = K = 0)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    return;
  }
  if (backend == GemmBackend::kOneDnn) {
    BRIDLE_DNNL_CHECK(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                 B, ldb, beta, C, ldc));
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(M), static_cast<blasint>(N),
              static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda), B,
              static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_with(selected_backend, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        float a = trans_a ? A[k * lda + m] : A[m * lda + k];
        float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
        acc += static_cast<double>(a) * b;
      }
      float c = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];  // beta = 0 ignores C, as BLAS
      C[m * ldc + n] = c + alpha * static_cast<float>(acc);
    }
  }
}

// out[m, :] = bias for every row m.
void broadcast_rows(float* out, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t n = 0; n < cols; ++n) out[m * cols + n] = bias[n];
}

// dbias[n] += sum_m dout[m, n].
void sum_rows_backward(float* dbias, const float* dout, int64_t rows, int64_t cols) {
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t n = 0; n < cols; ++n) dbias[n] += dout[m * cols + n];
}

}  // namespace cpu

namespace {

// The kernels of the device the tensors are on: the CPU ones above, or cuBLAS
// and matmul.cu's on a GPU.
void gemm_on(Device device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
             float* C, int64_t ldc) {
  if constexpr (kCudaBuild) {
    if (device.is_cuda()) {
      cuda::DeviceGuard guard(device);
      cuda::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
  }
  cpu::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void broadcast_rows_on(Device device, float* out, const float* bias, int64_t rows, int64_t cols) {
  if constexpr (kCudaBuild) {
    if (device.is_cuda()) {
      cuda::DeviceGuard guard(device);
      cuda::broadcast_rows(out, bias, rows, cols);
      return;
    }
  }
  cpu::broadcast_rows(out, bias, rows, cols);
}

void sum_rows_backward_on(Device device, float* dbias, const float* dout, int64_t rows,
                          int64_t cols) {
  if constexpr (kCudaBuild) {
    if (device.is_cuda()) {
      cuda::DeviceGuard guard(device);
      cuda::sum_rows_backward(dbias, dout, rows, cols);
      return;
    }
  }
  cpu::sum_rows_backward(dbias, dout, rows, cols);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_float("matmul", a, "a");
  check_float("matmul", b, "b");
  check_device("matmul", {a, b}, Kernels::kCpuAndCuda);
  bool batched = a.dim() == 3 && b.dim() == 3;
  bool shapes_ok = (a.dim() == 2 || a.dim() == 3) && b.dim() == 2 ? true : batched;
  BRIDLE_CHECK(
      shapes_ok,
      "matmul: expects [M, K] x [K, N], [B, M, K] x [B, K, N] or [B, M, K] x [K, N], got {} x {}",
      shape_str(a.shape()), shape_str(b.shape()));
  int64_t K = a.shape().back();
  BRIDLE_CHECK(b.shape()[b.dim() - 2] == K, "matmul: inner dims differ: {} x {} ({} vs {})",
               shape_str(a.shape()), shape_str(b.shape()), K, b.shape()[b.dim() - 2]);
  BRIDLE_CHECK(!batched || a.shape()[0] == b.shape()[0], "matmul: batch sizes differ: {} x {}",
               shape_str(a.shape()), shape_str(b.shape()));
  int64_t N = b.shape().back();
  // A batch against one matrix is a single tall product: [B*M, K] x [K, N].
  int64_t batch = batched ? a.shape()[0] : 1;
  int64_t M = batched ? a.shape()[1] : leading_rows(a);
  Shape out_shape = a.shape();
  out_shape.back() = N;
  const Device device = a.device();
  Tensor out = Tensor::empty(out_shape, device);
  const float* A = a.data<float>();
  const float* B = b.data<float>();
  float* C = out.data<float>();
  for (int64_t i = 0; i < batch; ++i)
    gemm_on(device, false, false, M, N, K, 1.0f, A + i * M * K, K, B + (batched ? i * K * N : 0), N,
            0.0f, C + i * M * N, N);
  return record(out, "matmul", {a, b},
                [a, b, batch, batched, M, N, K, device](const Tensor& dout, const Tensor&) {
                  const float* dC = dout.data<float>();
                  if (a.requires_grad()) {
                    float* dA = grad_buffer(a).data<float>();
                    for (int64_t i = 0; i < batch; ++i)  // dA += dC B^T
                      gemm_on(device, false, true, M, K, N, 1.0f, dC + i * M * N, N,
                              b.data<float>() + (batched ? i * K * N : 0), N, 1.0f, dA + i * M * K,
                              K);
                  }
                  if (b.requires_grad()) {
                    float* dB = grad_buffer(b).data<float>();
                    for (int64_t i = 0; i < batch;
                         ++i)  // dB += A^T dC (summed over the batch when B is shared)
                      gemm_on(device, true, false, K, N, M, 1.0f, a.data<float>() + i * M * K, K,
                              dC + i * M * N, N, 1.0f, dB + (batched ? i * K * N : 0), N);
                  }
                });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float("linear", x, "input");
  check_float("linear", weight, "weight");
  check_device("linear", {x, weight, bias}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got {}",
               shape_str(weight.shape()));
  BRIDLE_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[1],
               "linear: input {} does not end in in_features = {} (weight is {})",
               shape_str(x.shape()), weight.shape()[1], shape_str(weight.shape()));
  int64_t in = weight.shape()[1], out_features = weight.shape()[0];
  if (bias.defined()) {
    check_float("linear", bias, "bias");
    BRIDLE_CHECK(bias.dim() == 1 && bias.shape()[0] == out_features,
                 "linear: bias must be [{}] for weight {}, got {}", out_features,
                 shape_str(weight.shape()), shape_str(bias.shape()));
  }
  int64_t M = leading_rows(x);
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  const Device device = x.device();
  Tensor out = Tensor::empty(out_shape, device);
  float* y = out.data<float>();
  if (bias.defined()) broadcast_rows_on(device, y, bias.data<float>(), M, out_features);
  gemm_on(device, false, true, M, out_features, in, 1.0f, x.data<float>(), in, weight.data<float>(),
          in, bias.defined() ? 1.0f : 0.0f, y, out_features);
  return record(out, "linear", {x, weight, bias},
                [x, weight, bias, M, in, out_features, device](const Tensor& dout, const Tensor&) {
                  const float* dy = dout.data<float>();
                  if (x.requires_grad())  // dx += dy W
                    gemm_on(device, false, false, M, in, out_features, 1.0f, dy, out_features,
                            weight.data<float>(), in, 1.0f, grad_buffer(x).data<float>(), in);
                  if (weight.requires_grad())  // dW += dy^T x
                    gemm_on(device, true, false, out_features, in, M, 1.0f, dy, out_features,
                            x.data<float>(), in, 1.0f, grad_buffer(weight).data<float>(), in);
                  if (bias.defined() && bias.requires_grad())
                    sum_rows_backward_on(device, grad_buffer(bias).data<float>(), dy, M,
                                         out_features);
                });
}

}  // namespace bridle
