// Adagrad's fused update on a GPU: update_rules::adagrad (the rule the CPU loop in
// adagrad.cpp runs too), one thread per element, with the step's scale derived on
// the host (cpu::adagrad_neg_clr).
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "optim/update_rules.h"

namespace bridle::cuda {
namespace {

__global__ void adagrad_kernel(float* param, const float* grad, float* sum, int64_t n,
                               float neg_clr, float weight_decay, float eps) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    update_rules::adagrad(param[i], grad[i], sum[i], neg_clr, weight_decay, eps);
  }
}

}  // namespace

void adagrad_step(float* param, const float* grad, float* sum, int64_t n, float neg_clr,
                  float weight_decay, float eps) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  adagrad_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(param, grad, sum, n, neg_clr,
                                                                     weight_decay, eps);
  BRIDLE_CUDA_CHECK_LAUNCH("adagrad_kernel");
}

}  // namespace bridle::cuda
