// Reductions: ops, backward and CPU kernels; declarations in reduce.h.
//
// Shapes (per reduction along dim): x [outer, n, inner] -> y [outer, inner].
//   sum:  y = sum_k x[k],          dx[k] += dy
//   mean: y = sum_k x[k] / n,      dx[k] += dy / n
//   max:  y = x[k*] (first argmax), dx[k*] += dy
#include "ops/reduce.h"

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"
#include "ops/shape.h"

namespace bridle {
namespace cpu {

// out[o, i] = scale * sum_k inp[o, k, i]; accumulated in double for long rows.
void sum_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                 float scale) {
#pragma omp parallel for if (outer * n * inner > (1 << 16))
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double acc = 0.0;
      for (int64_t k = 0; k < n; ++k) acc += inp[(o * n + k) * inner + i];
      out[o * inner + i] = static_cast<float>(acc * scale);
    }
  }
}

// dinp[o, k, i] += scale * dout[o, i].
void sum_backward(float* dinp, const float* dout, int64_t outer, int64_t n, int64_t inner,
                  float scale) {
#pragma omp parallel for if (outer * n * inner > (1 << 16))
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = 0; i < inner; ++i)
        dinp[(o * n + k) * inner + i] += scale * dout[o * inner + i];
}

// out[o, i] = max_k inp[o, k, i] and index[o, i] its first position (NaN wins, as in PyTorch).
void max_forward(float* out, int64_t* index, const float* inp, int64_t outer, int64_t n,
                 int64_t inner) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float* row = inp + o * n * inner + i;
      int64_t best = 0;
      for (int64_t k = 1; k < n; ++k) {
        float v = row[k * inner], b = row[best * inner];
        if (v > b || (v != v && b == b)) best = k;
      }
      if (out) out[o * inner + i] = row[best * inner];
      index[o * inner + i] = best;
    }
  }
}

// dinp[o, index[o, i], i] += dout[o, i].
void max_backward(float* dinp, const int64_t* index, const float* dout, int64_t outer, int64_t n,
                  int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i)
      dinp[(o * n + index[o * inner + i]) * inner + i] += dout[o * inner + i];
}

}  // namespace cpu

namespace {

// sum or mean along dim (scale = 1 or 1/n).
Tensor sum_scaled(const Tensor& x, int64_t dim, bool keepdim, bool average, const char* name) {
  check_float(name, x);
  check_device(name, {x}, Kernels::kCpuAndCuda);
  dim = normalize_dim(name, dim, x.dim());
  DimSplit s = split_at(x.shape(), dim);
  BRIDLE_CHECK(!average || s.size > 0, "{}: cannot average over dim {} of size 0 in shape {}", name,
               dim, shape_str(x.shape()));
  float scale = average ? 1.0f / static_cast<float>(s.size) : 1.0f;
  if constexpr (kCudaBuild) {
    if (x.device().is_cuda()) {  // reduce.cu
      cuda::DeviceGuard guard(x.device());
      Tensor out = Tensor::empty(reduced_shape(x.shape(), dim, keepdim), x.device());
      cuda::sum_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner, scale);
      return record(out, name, {x}, [x, s, scale](const Tensor& dout, const Tensor&) {
        cuda::DeviceGuard guard(x.device());
        cuda::sum_backward(grad_buffer(x).data<float>(), dout.data<float>(), s.outer, s.size,
                           s.inner, scale);
      });
    }
  }
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dim, keepdim));
  cpu::sum_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner, scale);
  return record(out, name, {x}, [x, s, scale](const Tensor& dout, const Tensor&) {
    cpu::sum_backward(grad_buffer(x).data<float>(), dout.data<float>(), s.outer, s.size, s.inner,
                      scale);
  });
}

// max on a GPU. Under #ifdef, not `if constexpr`: GCC at -O0 still emits
// lambdas inside discarded branches.
#ifdef BRIDLE_WITH_CUDA
Tensor max_cuda(const Tensor& x, const DimSplit& s, const Shape& out_shape) {
  cuda::DeviceGuard guard(x.device());
  Tensor out = Tensor::empty(out_shape, x.device());
  Tensor index = Tensor::empty(out_shape, TensorOptions(kInt64).with_device(x.device()));
  cuda::max_forward(out.data<float>(), index.data<int64_t>(), x.data<float>(), s.outer, s.size,
                    s.inner);
  return record(out, "max", {x}, [x, s, index](const Tensor& dout, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    cuda::max_backward(grad_buffer(x).data<float>(), index.data<int64_t>(), dout.data<float>(),
                       s.outer, s.size, s.inner);
  });
}
#else
Tensor max_cuda(const Tensor&, const DimSplit&, const Shape&) {
  BRIDLE_FAIL("max: this build has no CUDA backend");
}
#endif

Tensor reduce_all(const Tensor& x, bool average, const char* name) {
  check_float(name, x);
  BRIDLE_CHECK(!average || x.numel() > 0, "{}: cannot average an empty tensor", name);
  return sum_scaled(x.reshape({x.numel()}), 0, false, average, name);
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce_all(x, false, "sum"); }
Tensor mean(const Tensor& x) { return reduce_all(x, true, "mean"); }
Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  return sum_scaled(x, dim, keepdim, false, "sum");
}
Tensor mean(const Tensor& x, int64_t dim, bool keepdim) {
  return sum_scaled(x, dim, keepdim, true, "mean");
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  check_float("max", x);
  check_device("max", {x}, Kernels::kCpuAndCuda);
  dim = normalize_dim("max", dim, x.dim());
  DimSplit s = split_at(x.shape(), dim);
  BRIDLE_CHECK(s.size > 0, "max: dim {} of shape {} is empty", dim, shape_str(x.shape()));
  Shape out_shape = reduced_shape(x.shape(), dim, keepdim);
  if (x.device().is_cuda()) return max_cuda(x, s, out_shape);
  Tensor out = Tensor::empty(out_shape);
  Tensor index = Tensor::empty(out_shape, kInt64);
  cpu::max_forward(out.data<float>(), index.data<int64_t>(), x.data<float>(), s.outer, s.size,
                   s.inner);
  return record(out, "max", {x}, [x, s, index](const Tensor& dout, const Tensor&) {
    cpu::max_backward(grad_buffer(x).data<float>(), index.data<int64_t>(), dout.data<float>(),
                      s.outer, s.size, s.inner);
  });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_float("argmax", x);
  check_device("argmax", {x}, Kernels::kCpuAndCuda);
  dim = normalize_dim("argmax", dim, x.dim());
  DimSplit s = split_at(x.shape(), dim);
  BRIDLE_CHECK(s.size > 0, "argmax: dim {} of shape {} is empty", dim, shape_str(x.shape()));
  Tensor index = Tensor::empty(reduced_shape(x.shape(), dim, keepdim),
                               TensorOptions(kInt64).with_device(x.device()));
  if constexpr (kCudaBuild) {
    if (x.device().is_cuda()) {  // reduce.cu
      cuda::DeviceGuard guard(x.device());
      cuda::argmax(index.data<int64_t>(), x.data<float>(), s.outer, s.size, s.inner);
      return index;
    }
  }
  cpu::max_forward(nullptr, index.data<int64_t>(), x.data<float>(), s.outer, s.size, s.inner);
  return index;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  BRIDLE_CHECK(broadcast_shapes("sum_to", shape, x.shape()) == x.shape(),
               "sum_to: {} does not broadcast to {}", shape_str(shape), shape_str(x.shape()));
  Tensor out = x;
  int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  for (int64_t d = 0; d < lead; ++d) out = sum(out, 0);
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d)
    if (shape[d] == 1 && out.shape()[d] != 1) out = sum(out, d, true);
  return out;
}

}  // namespace bridle
