// sparsemax, 1.5-entmax, alpha-entmax and their Fenchel-Young losses on a GPU:
// the CUDA kernels (the ops, the CPU kernels and the formulas are in
// sparsemax.cpp and sparsemax.h).
//
// A block per row; every reduction over the row is a block reduction in double,
// as the CPU kernels sum in double.
//
// Thresholds. The CPU sorts each row to find the support of sparsemax and
// 1.5-entmax; a sort per row does not suit a GPU, so the support comes from
// bisection on tau instead. The mass m(tau) = sum_j [x_j - tau]_+^(1/(alpha-1))
// falls as tau rises and m(tau*) = 1, so halving a bracket [lo, hi] with
// m(lo) >= 1 >= m(hi) for kBisectSteps steps leaves lo just below tau*, and
// S = {j : x_j > lo} is the support (an x_j within the last bracket of tau*
// would enter with p_j = 0 either way). On S tau has a closed form, the one the
// CPU evaluates at the support's size:
//   sparsemax (x = z):            tau = (sum_S x - 1) / k
//   1.5-entmax (x = (z - max)/2): tau = mean_S - sqrt((1 - k var_S) / k)
// and p_j = [x_j - tau]_+ (squared for 1.5-entmax): exact zeros off the support.
// kBisect runs the CPU's bisection step for step (cpu::entmax_bisect_rows).
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

// Enough halvings of a bracket of width <= 1 to reach double precision.
constexpr int kBisectSteps = 64;

__device__ double block_sum_double(double value) {
  return block_reduce(
             Double{value}, [](Double a, Double b) { return Double{a.v + b.v}; }, Double{0.0})
      .v;
}

__device__ float block_max(float value) {
  return block_reduce(
             Float{value}, [](Float a, Float b) { return Float{fmaxf(a.v, b.v)}; },
             Float{-INFINITY})
      .v;
}

// Threads for a block per row of n: a warp for short rows, up to 256 for long ones.
int threads_for(int64_t n) {
  const int64_t warps = (n + kWarpSize - 1) / kWarpSize;
  return static_cast<int>(std::clamp<int64_t>(warps, 1, 8)) * kWarpSize;
}

template <EntmaxKind kKind>
__device__ double mapped(float z, float max) {
  if constexpr (kKind == EntmaxKind::kSparsemax) {
    return z;
  } else {
    return (static_cast<double>(z) - max) / 2.0;
  }
}

// sparsemax and 1.5-entmax (see the top of the file).
template <EntmaxKind kKind>
__global__ void entmax_exact_kernel(float* out, const float* inp, int64_t n) {
  constexpr bool kSparse = kKind == EntmaxKind::kSparsemax;
  const float* z = inp + blockIdx.x * n;
  float* p = out + blockIdx.x * n;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, z[j]);
  m = block_max(m);
  // m(top - 1) >= 1 (the largest entry alone gives 1); m(top - 1/n) <= 1 for
  // sparsemax and m(-1/sqrt(n)) <= 1 for 1.5-entmax (each entry gives <= 1/n).
  const double top = mapped<kKind>(m, m);
  double lo = top - 1.0;
  double hi = kSparse ? top - 1.0 / static_cast<double>(n) : -1.0 / sqrt(static_cast<double>(n));
  for (int step = 0; step < kBisectSteps; ++step) {
    const double mid = lo + (hi - lo) / 2.0;
    double mass = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const double v = mapped<kKind>(z[j], m) - mid;
      if (v > 0.0) mass += kSparse ? v : v * v;
    }
    if (block_sum_double(mass) >= 1.0)
      lo = mid;
    else
      hi = mid;
  }
  double k = 0.0, sum = 0.0, sum_sq = 0.0;  // over the support, x > lo
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const double x = mapped<kKind>(z[j], m);
    if (x > lo) {
      k += 1.0;
      sum += x;
      sum_sq += x * x;
    }
  }
  k = block_sum_double(k);
  sum = block_sum_double(sum);
  double tau;
  if constexpr (kSparse) {
    tau = (sum - 1.0) / k;
  } else {
    sum_sq = block_sum_double(sum_sq);
    const double mean = sum / k, ss = k * (sum_sq / k - mean * mean);
    tau = mean - sqrt(fmax((1.0 - ss) / k, 0.0));
  }
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const double v = fmax(mapped<kKind>(z[j], m) - tau, 0.0);
    p[j] = static_cast<float>(kSparse ? v : v * v);
  }
}

// cpu::entmax_bisect_rows on a block: the same bracket, steps and final
// normalization by the mass at the last tau evaluated.
__global__ void entmax_bisect_kernel(float* out, const float* inp, int64_t n, double am1,
                                     int n_iter) {
  const double power = 1.0 / am1;
  const float* z = inp + blockIdx.x * n;
  float* p = out + blockIdx.x * n;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, z[j]);
  const double max = am1 * block_max(m);  // am1 > 0: the largest am1 z_j
  auto mass = [&](double tau) {
    double total = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const double v = am1 * z[j] - tau;
      if (v > 0.0) total += pow(v, power);
    }
    return block_sum_double(total);
  };
  double tau_lo = max - 1.0;
  const double tau_hi = max - pow(1.0 / static_cast<double>(n), am1);
  const double f_lo = mass(tau_lo) - 1.0;
  double width = tau_hi - tau_lo, total = 0.0, tau_last = tau_lo;
  for (int it = 0; it < n_iter; ++it) {
    width /= 2.0;
    const double tau_mid = tau_lo + width;
    total = mass(tau_mid);
    tau_last = tau_mid;
    if ((total - 1.0) * f_lo >= 0.0) tau_lo = tau_mid;
  }
  if (n_iter == 0) total = mass(tau_lo);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const double v = am1 * z[j] - tau_last;
    p[j] = static_cast<float>((v > 0.0 ? pow(v, power) : 0.0) / total);
  }
}

// dz = g dp - g (sum_j g_j dp_j) / (sum_j g_j) on the support, g = p^(2 - alpha).
__global__ void entmax_backward_kernel(float* din, const float* out, const float* dout, int64_t n,
                                       double exponent, bool accumulate) {
  const float* p = out + blockIdx.x * n;
  const float* dp = dout + blockIdx.x * n;
  float* d = din + blockIdx.x * n;
  auto g_of = [exponent](float pj) { return exponent == 0.0 ? 1.0 : pow(double{pj}, exponent); };
  double g_dp = 0.0, g_sum = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    if (p[j] <= 0.0f) continue;
    const double g = g_of(p[j]);
    g_dp += g * dp[j];
    g_sum += g;
  }
  const double q = block_sum_double(g_dp) / block_sum_double(g_sum);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float grad = p[j] > 0.0f ? static_cast<float>(g_of(p[j]) * (dp[j] - q)) : 0.0f;
    d[j] = accumulate ? d[j] + grad : grad;
  }
}

template <typename Target>
__global__ void fenchel_young_forward_kernel(float* row_loss, const float* p, const float* z,
                                             const Target* targets, int64_t C, double alpha,
                                             int64_t ignore_index) {
  const int64_t b = blockIdx.x;
  const auto y = static_cast<int64_t>(targets[b]);
  if (y == ignore_index) {  // the whole block leaves together
    if (threadIdx.x == 0) row_loss[b] = 0.0f;
    return;
  }
  double sum_pa = 0.0, p_dot_z = 0.0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const double pj = p[b * C + j];
    sum_pa += alpha == 2.0 ? pj * pj : pow(pj, alpha);
    p_dot_z += pj * z[b * C + j];
  }
  sum_pa = block_sum_double(sum_pa);
  p_dot_z = block_sum_double(p_dot_z);
  if (threadIdx.x == 0)
    row_loss[b] =
        static_cast<float>((1.0 - sum_pa) / (alpha * (alpha - 1.0)) + p_dot_z - z[b * C + y]);
}

// dz_bj (+)= g_b p_bj - g_b [j == y], in the CPU's order of the two adds.
template <typename Target>
__global__ void fenchel_young_backward_kernel(float* dz, const float* p, const Target* targets,
                                              const float* dout, float dout_scale, bool per_row,
                                              int64_t C, int64_t ignore_index, int64_t total,
                                              bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t b = e / C, j = e % C;
    const auto y = static_cast<int64_t>(targets[b]);
    float d = accumulate ? dz[e] : 0.0f;
    if (y != ignore_index) {
      const float g = per_row ? dout[b] : dout[0] * dout_scale;
      d += g * p[e];
      if (j == y) d -= g;
    }
    dz[e] = d;
  }
}

__global__ void first_non_finite_kernel(unsigned long long* first, const float* x, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    if (!isfinite(x[i])) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

template <typename Target>
void fy_forward(float* row_loss, const float* p, const float* z, const Target* targets, int64_t B,
                int64_t C, float alpha, int64_t ignore_index) {
  if (B == 0) return;
  fenchel_young_forward_kernel<<<static_cast<unsigned>(B), threads_for(C), 0, stream()>>>(
      row_loss, p, z, targets, C, static_cast<double>(alpha), ignore_index);
  BRIDLE_CUDA_CHECK_LAUNCH("fenchel_young_forward_kernel");
}

template <typename Target>
void fy_backward(float* dz, const float* p, const Target* targets, const float* dout,
                 float dout_scale, bool per_row, int64_t B, int64_t C, int64_t ignore_index,
                 bool accumulate) {
  const int64_t total = B * C;
  if (total == 0) return;
  constexpr int kThreads = 256;
  fenchel_young_backward_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(
      dz, p, targets, dout, dout_scale, per_row, C, ignore_index, total, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("fenchel_young_backward_kernel");
}

}  // namespace

void entmax_forward(EntmaxKind kind, float* out, const float* inp, int64_t rows, int64_t n,
                    float alpha, int n_iter) {
  if (rows * n == 0) return;
  const auto blocks = static_cast<unsigned>(rows);
  const int threads = threads_for(n);
  switch (kind) {
    case EntmaxKind::kSparsemax:
      entmax_exact_kernel<EntmaxKind::kSparsemax><<<blocks, threads, 0, stream()>>>(out, inp, n);
      break;
    case EntmaxKind::kEntmax15:
      entmax_exact_kernel<EntmaxKind::kEntmax15><<<blocks, threads, 0, stream()>>>(out, inp, n);
      break;
    case EntmaxKind::kBisect:
      entmax_bisect_kernel<<<blocks, threads, 0, stream()>>>(
          out, inp, n, static_cast<double>(alpha) - 1.0, n_iter);
      break;
  }
  BRIDLE_CUDA_CHECK_LAUNCH("entmax_forward");
}

void entmax_backward(float* din, const float* out, const float* dout, int64_t rows, int64_t n,
                     float alpha, bool accumulate) {
  if (rows * n == 0) return;
  entmax_backward_kernel<<<static_cast<unsigned>(rows), threads_for(n), 0, stream()>>>(
      din, out, dout, n, 2.0 - static_cast<double>(alpha), accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("entmax_backward_kernel");
}

void fenchel_young_forward(float* row_loss, const float* p, const float* z, const int64_t* targets,
                           int64_t B, int64_t C, float alpha, int64_t ignore_index) {
  fy_forward(row_loss, p, z, targets, B, C, alpha, ignore_index);
}

void fenchel_young_forward(float* row_loss, const float* p, const float* z, const int32_t* targets,
                           int64_t B, int64_t C, float alpha, int64_t ignore_index) {
  fy_forward(row_loss, p, z, targets, B, C, alpha, ignore_index);
}

void fenchel_young_backward(float* dz, const float* p, const int64_t* targets, const float* dout,
                            float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, bool accumulate) {
  fy_backward(dz, p, targets, dout, dout_scale, per_row, B, C, ignore_index, accumulate);
}

void fenchel_young_backward(float* dz, const float* p, const int32_t* targets, const float* dout,
                            float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, bool accumulate) {
  fy_backward(dz, p, targets, dout, dout_scale, per_row, B, C, ignore_index, accumulate);
}

void first_non_finite(unsigned long long* first, const float* x, int64_t n) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  first_non_finite_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(first, x, n);
  BRIDLE_CUDA_CHECK_LAUNCH("first_non_finite_kernel");
}

}  // namespace bridle::cuda
