// hardmax, topk and gumbel_softmax; see selection.h. All walk rows of the
// [outer, size, inner] view of the input (op_utils.h), so any dim works without
// a transpose. hardmax and topk have CUDA kernels (selection.cu).
#include "ops/selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"
#include "ops/softmax.h"

namespace bridle {

namespace {

#ifdef BRIDLE_WITH_CUDA
Tensor hardmax_cuda(const Tensor& x, const DimSplit& s) {
  cuda::DeviceGuard guard(x.device());
  Tensor out = Tensor::empty(x.shape(), x.device());
  cuda::hardmax_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner);
  return out;
}

std::pair<Tensor, Tensor> topk_cuda(const Tensor& x, const DimSplit& s, const Shape& out_shape,
                                    int64_t k, bool largest) {
  cuda::DeviceGuard guard(x.device());
  Tensor values = Tensor::empty(out_shape, x.device());
  Tensor indices = Tensor::empty(out_shape, TensorOptions(DType::kInt64).with_device(x.device()));
  cuda::topk_forward(values.data<float>(), indices.data<int64_t>(), x.data<float>(), s.outer,
                     s.size, s.inner, k, largest);
  values = record(values, "topk", {x}, [x, indices, s, k](const Tensor& dv, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::topk_backward(dx, dv.data<float>(), indices.data<int64_t>(), s.outer, s.size, s.inner,
                          k, accumulate);
    });
  });
  return {values, indices};
}
#else
Tensor hardmax_cuda(const Tensor&, const DimSplit&) {
  BRIDLE_FAIL("hardmax: this build has no CUDA backend");
}

std::pair<Tensor, Tensor> topk_cuda(const Tensor&, const DimSplit&, const Shape&, int64_t, bool) {
  BRIDLE_FAIL("topk: this build has no CUDA backend");
}
#endif

}  // namespace

Tensor hardmax(const Tensor& x, int64_t dim) {
  check_float("hardmax", x);
  check_device("hardmax", {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() >= 1, "hardmax: needs at least one dim, got a scalar");
  dim = normalize_dim("hardmax", dim, x.dim());
  const DimSplit s = split_at(x.shape(), dim);
  if (x.device().is_cuda()) return hardmax_cuda(x, s);
  Tensor out = zeros(x.shape());
  const float* in = x.data<float>();
  float* y = out.data<float>();
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      int64_t best = 0;
      for (int64_t j = 1; j < s.size; ++j)  // strict >: ties keep the first index
        if (in[(o * s.size + j) * s.inner + i] > in[(o * s.size + best) * s.inner + i]) best = j;
      if (s.size > 0) y[(o * s.size + best) * s.inner + i] = 1.0f;
    }
  return out;
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  check_float("topk", x);
  check_device("topk", {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() >= 1, "topk: needs at least one dim, got a scalar");
  dim = normalize_dim("topk", dim, x.dim());
  BRIDLE_CHECK(k >= 0 && k <= x.size(dim), "topk: k = {} is out of range for dim {} of size {}", k,
               dim, x.size(dim));
  const DimSplit s = split_at(x.shape(), dim);
  Shape out_shape = x.shape();
  out_shape[dim] = k;
  if (x.device().is_cuda()) return topk_cuda(x, s, out_shape, k, largest);
  Tensor values = Tensor::empty(out_shape), indices = Tensor::empty(out_shape, DType::kInt64);
  const float* in = x.data<float>();
  std::vector<int64_t> order(s.size);
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      auto at = [&](int64_t j) { return in[(o * s.size + j) * s.inner + i]; };
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return largest ? at(a) > at(b) : at(a) < at(b);
      });
      for (int64_t j = 0; j < k; ++j) {
        const int64_t out_index = (o * k + j) * s.inner + i;
        values.data<float>()[out_index] = at(order[j]);
        indices.data<int64_t>()[out_index] = order[j];
      }
    }
  values = record(values, "topk", {x}, [x, indices, s, k](const Tensor& dv, const Tensor&) {
    float* dx = grad_buffer(x).data<float>();
    const float* g = dv.data<float>();
    const int64_t* idx = indices.data<int64_t>();
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < s.inner; ++i) {
          const int64_t out_index = (o * k + j) * s.inner + i;
          dx[(o * s.size + idx[out_index]) * s.inner + i] += g[out_index];
        }
  });
  return {values, indices};
}

Tensor gumbel_softmax(const Tensor& logits, float tau, bool hard, int64_t dim,
                      Generator& generator) {
  check_float("gumbel_softmax", logits);
  BRIDLE_CHECK(tau > 0.0f && std::isfinite(tau),
               "gumbel_softmax: tau must be a positive finite number, got {}", tau);
  Tensor gumbels = Tensor::empty(logits.shape());
  float* g = gumbels.data<float>();
  for (int64_t k = 0; k < gumbels.numel(); ++k) {
    // 24 random bits as a float strictly inside (0, 1): never 0, never 1.
    const double u = (static_cast<double>(generator.next_u64() >> 40) + 0.5) / 16777216.0;
    g[k] = static_cast<float>(-std::log(-std::log(u)));
  }
  // The noise is drawn on the host, from the generator's one stream of numbers,
  // so a GPU run draws what a CPU run with the same seed does.
  Tensor y_soft = softmax(logits + gumbels.to(logits.device()), dim, tau);
  if (!hard) return y_soft;
  return hardmax(y_soft.detach(), dim) - y_soft.detach() + y_soft;
}

}  // namespace bridle
