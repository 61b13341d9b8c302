// batch_norm on a GPU: cuDNN's spatial batch normalization for the training
// forward, the evaluation forward and the training backward, and a kernel of
// ours for the evaluation backward (the op and the CPU kernels are in
// batch_norm.cpp).
//
// x [N, C, *] is seen as the 4-D NCHW tensor [N, C, HW, 1]; CUDNN_BATCHNORM_SPATIAL
// normalizes each channel over its N HW values, as batch_norm.h does. In
// training cuDNN saves the batch mean and 1 / sqrt(var + eps) for backward and
// updates the running statistics with
//   running = (1 - momentum) running + momentum batch_stat
// using the unbiased variance (M / (M - 1)), as the CPU op.
//
// Evaluation backward, per channel with s = 1 / sqrt(var + eps), xhat = (x - mean) s:
//   dx += g weight s,  dweight += sum g xhat,  dbias += sum g
// (the statistics were constants; cuDNN's backward always differentiates
// through the batch's).
#include "core/cuda/cudnn_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr cudnnBatchNormMode_t kMode = CUDNN_BATCHNORM_SPATIAL;

// One block per channel: its threads stride over the channel's N HW values,
// write dx as they go, and reduce the two sums for dweight and dbias.
__global__ void batch_norm_backward_eval_kernel(float* dx, float* dweight, float* dbias,
                                                const float* dy, const float* x, const float* mean,
                                                const float* var, const float* weight, int64_t N,
                                                int64_t C, int64_t HW, float eps,
                                                bool accumulate_dx) {
  const int64_t c = blockIdx.x;
  const float inv_std = rsqrtf(var[c] + eps);
  const float dx_scale = (weight ? weight[c] : 1.0f) * inv_std;
  float sum_g = 0.0f, sum_g_xhat = 0.0f;
  for (int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
    const int64_t k = ((j / HW) * C + c) * HW + j % HW;
    const float g = dy[k];
    sum_g += g;
    sum_g_xhat += g * (x[k] - mean[c]) * inv_std;
    if (dx) dx[k] = accumulate_dx ? dx[k] + g * dx_scale : g * dx_scale;
  }
  if (!dweight && !dbias) return;  // the same for the whole block: no thread waits alone
  sum_g = block_sum(sum_g);
  sum_g_xhat = block_sum(sum_g_xhat);
  if (threadIdx.x == 0) {
    if (dbias) dbias[c] += sum_g;
    if (dweight) dweight[c] += sum_g_xhat;
  }
}

}  // namespace

void batch_norm_forward_training(float* y, float* save_mean, float* save_inv_std,
                                 float* running_mean, float* running_var, const float* x,
                                 const float* weight, const float* bias, int64_t N, int64_t C,
                                 int64_t HW, float momentum, float eps) {
  TensorDescriptor data(N, C, HW, 1), params(1, C, 1, 1);
  const float one = 1.0f, zero = 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_handle(), kMode, &one, &zero, data, x, data, y, params, weight, bias, momentum,
      running_mean, running_var, eps, save_mean, save_inv_std));
}

void batch_norm_forward_eval(float* y, const float* x, const float* mean, const float* var,
                             const float* weight, const float* bias, int64_t N, int64_t C,
                             int64_t HW, float eps) {
  TensorDescriptor data(N, C, HW, 1), params(1, C, 1, 1);
  const float one = 1.0f, zero = 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      cudnn_handle(), kMode, &one, &zero, data, x, data, y, params, weight, bias, mean, var, eps));
}

void batch_norm_backward_training(float* dx, float* dweight, float* dbias, const float* dy,
                                  const float* x, const float* weight, const float* save_mean,
                                  const float* save_inv_std, int64_t N, int64_t C, int64_t HW,
                                  float eps, bool accumulate_dx) {
  TensorDescriptor data(N, C, HW, 1), params(1, C, 1, 1);
  const float one = 1.0f, zero = 0.0f, dx_beta = accumulate_dx ? 1.0f : 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_handle(), kMode, &one, &dx_beta, &one, &zero, data, x, data, dy, data, dx, params,
      weight, dweight, dbias, eps, save_mean, save_inv_std));
}

void batch_norm_backward_eval(float* dx, float* dweight, float* dbias, const float* dy,
                              const float* x, const float* mean, const float* var,
                              const float* weight, int64_t N, int64_t C, int64_t HW, float eps,
                              bool accumulate_dx) {
  if (C == 0) return;
  constexpr int kThreads = 256;
  batch_norm_backward_eval_kernel<<<static_cast<unsigned>(C), kThreads, 0, stream()>>>(
      dx, dweight, dbias, dy, x, mean, var, weight, N, C, HW, eps, accumulate_dx);
  BRIDLE_CUDA_CHECK_LAUNCH("batch_norm_backward_eval_kernel");
}

}  // namespace bridle::cuda
