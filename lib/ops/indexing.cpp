// Indexing ops: index_select, gather, embedding and indices_in_range; see indexing.h.
//
// Derivations. Each forward copies entries, out = x[idx], so each output entry
// depends on exactly one input entry with derivative 1, and
//   dx[idx_k] += dout_k        (summed over every k with the same idx_k).
// A repeated index therefore accumulates: embedding rows that appear twice in a
// batch get both gradients. The backward kernels are written so that this sum
// never races: index_select's splits the columns (not the indices) between
// threads, gather's splits the rows (each row's indices only touch that row).
#include "ops/indexing.h"

#include <algorithm>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // elements moved below this: one thread
// index_select_backward's unit of work: 32 floats (two cache lines) of one
// [o, ., inner] slab, so tasks never share a cache line of dx.
constexpr int64_t kColumnBlock = 32;

void zero_fill(float* dx, int64_t n) {
#pragma omp parallel for simd if (n > kParallelWork)
  for (int64_t i = 0; i < n; ++i) dx[i] = 0.0f;
}

}  // namespace

template <typename T, typename Index>
void index_select_forward(T* out, const T* x, const Index* indices, int64_t outer, int64_t n,
                          int64_t K, int64_t inner) {
#pragma omp parallel for collapse(2) if (outer * K * inner > kParallelWork)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < K; ++k)
      std::copy_n(x + (o * n + static_cast<int64_t>(indices[k])) * inner, inner,
                  out + (o * K + k) * inner);
}

template <typename Index>
void index_select_backward(float* dx, const float* dout, const Index* indices, int64_t outer,
                           int64_t n, int64_t K, int64_t inner, bool accumulate) {
  if (!accumulate) zero_fill(dx, outer * n * inner);
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for if (outer * K * inner > kParallelWork)
  for (int64_t task = 0; task < outer * blocks; ++task) {
    const int64_t o = task / blocks, lo = task % blocks * kColumnBlock;
    const int64_t hi = std::min(inner, lo + kColumnBlock);
    float* d = dx + o * n * inner;
    const float* g = dout + o * K * inner;
    for (int64_t k = 0; k < K; ++k) {
      float* dst = d + static_cast<int64_t>(indices[k]) * inner;
      const float* src = g + k * inner;
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) dst[i] += src[i];
    }
  }
}

template <typename Index>
void index_select_backward_naive(float* dx, const float* dout, const Index* indices, int64_t outer,
                                 int64_t n, int64_t K, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < inner; ++i)
        dx[(o * n + static_cast<int64_t>(indices[k])) * inner + i] += dout[(o * K + k) * inner + i];
}

template <typename Index>
void gather_forward(float* out, const float* x, const Index* index, int64_t B, int64_t C,
                    int64_t k) {
#pragma omp parallel for if (B * k > kParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < k; ++j)
      out[b * k + j] = x[b * C + static_cast<int64_t>(index[b * k + j])];
}

template <typename Index>
void gather_backward(float* dx, const float* dout, const Index* index, int64_t B, int64_t C,
                     int64_t k, bool accumulate) {
#pragma omp parallel for if (B * (accumulate ? k : C) > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    float* d = dx + b * C;
    if (!accumulate) std::fill(d, d + C, 0.0f);
    for (int64_t j = 0; j < k; ++j) d[static_cast<int64_t>(index[b * k + j])] += dout[b * k + j];
  }
}

#define BRIDLE_INDEX_KERNELS(Index)                                                                \
  template void index_select_forward<float, Index>(float*, const float*, const Index*, int64_t,    \
                                                   int64_t, int64_t, int64_t);                     \
  template void index_select_forward<int32_t, Index>(int32_t*, const int32_t*, const Index*,       \
                                                     int64_t, int64_t, int64_t, int64_t);          \
  template void index_select_forward<int64_t, Index>(int64_t*, const int64_t*, const Index*,       \
                                                     int64_t, int64_t, int64_t, int64_t);          \
  template void index_select_backward<Index>(float*, const float*, const Index*, int64_t, int64_t, \
                                             int64_t, int64_t, bool);                              \
  template void index_select_backward_naive<Index>(float*, const float*, const Index*, int64_t,    \
                                                   int64_t, int64_t, int64_t);                     \
  template void gather_forward<Index>(float*, const float*, const Index*, int64_t, int64_t,        \
                                      int64_t);                                                    \
  template void gather_backward<Index>(float*, const float*, const Index*, int64_t, int64_t,       \
                                       int64_t, bool);
BRIDLE_INDEX_KERNELS(int32_t)
BRIDLE_INDEX_KERNELS(int64_t)
#undef BRIDLE_INDEX_KERNELS

}  // namespace cpu

namespace {

void check_index_dtype(const char* op, const Tensor& indices, const char* arg) {
  BRIDLE_CHECK(indices.defined(), "{}: {} is an undefined tensor", op, arg);
  BRIDLE_CHECK(is_integer(indices.dtype()), "{}: {} must be int32 or int64, got {} of shape {}", op,
               arg, dtype_name(indices.dtype()), shape_str(indices.shape()));
}

// Calls fn with a value of the index type (int32_t or int64_t) of indices.
template <typename Fn>
auto dispatch_index(const Tensor& indices, Fn&& fn) {
  if (indices.dtype() == DType::kInt32) return fn(int32_t{});
  return fn(int64_t{});
}

// Calls fn with a value of the element type of dtype (float, int32_t or int64_t).
template <typename Fn>
void dispatch_value(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32:
      fn(float{});
      break;
    case DType::kInt32:
      fn(int32_t{});
      break;
    case DType::kInt64:
      fn(int64_t{});
      break;
  }
}

// The first position whose index is outside [0, size), or -1.
template <typename Index>
int64_t first_out_of_range(const Index* indices, int64_t count, int64_t size) {
  for (int64_t i = 0; i < count; ++i)
    if (indices[i] < 0 || static_cast<int64_t>(indices[i]) >= size) return i;
  return -1;
}

// On a GPU the ops check their indices on the host, as the CPU ops do and with
// the same errors: a copy of the indices that waits for the GPU, once per call.
// Below, `checked` is the indices (on the CPU) or that host copy.
Tensor host_copy_if_gpu(const Tensor& indices) {
  return indices.device().is_cuda() ? indices.cpu() : indices;
}

// index_select's kernels and backward on a GPU (indexing.cu).
template <typename Index>
Tensor index_select_cuda(const Tensor& out, const Tensor& x, const Tensor& indices,
                         const DimSplit& s, int64_t K) {
  if constexpr (!kCudaBuild) {
    BRIDLE_FAIL("index_select: this build has no CUDA backend");
  } else {
    cuda::DeviceGuard guard(x.device());
    const Index* idx = indices.data<Index>();
    dispatch_value(x.dtype(), [&](auto value_tag) {
      using T = decltype(value_tag);
      cuda::index_select_forward(out.data<T>(), x.data<T>(), idx, s.outer, s.size, K, s.inner);
    });
    if (!x.is_float()) return out;
    return record(out, "index_select", {x}, [x, indices, s, K](const Tensor& dout, const Tensor&) {
      cuda::DeviceGuard guard(x.device());
      write_grad(x, [&](float* dx, bool accumulate) {
        cuda::index_select_backward(dx, dout.data<float>(), indices.data<Index>(), s.outer, s.size,
                                    K, s.inner, accumulate);
      });
    });
  }
}

template <typename Index>
Tensor gather_cuda(const Tensor& out, const Tensor& x, const Tensor& index, int64_t B, int64_t C,
                   int64_t k) {
  if constexpr (!kCudaBuild) {
    BRIDLE_FAIL("gather: this build has no CUDA backend");
  } else {
    cuda::DeviceGuard guard(x.device());
    cuda::gather_forward(out.data<float>(), x.data<float>(), index.data<Index>(), B, C, k);
    return record(out, "gather", {x}, [x, index, B, C, k](const Tensor& dout, const Tensor&) {
      cuda::DeviceGuard guard(x.device());
      write_grad(x, [&](float* dx, bool accumulate) {
        cuda::gather_backward(dx, dout.data<float>(), index.data<Index>(), B, C, k, accumulate);
      });
    });
  }
}

template <typename Index>
Tensor embedding_cuda(const Tensor& out, const Tensor& weight, const Tensor& indices, int64_t V,
                      int64_t d, int64_t N) {
  if constexpr (!kCudaBuild) {
    BRIDLE_FAIL("embedding: this build has no CUDA backend");
  } else {
    cuda::DeviceGuard guard(weight.device());
    cuda::index_select_forward(out.data<float>(), weight.data<float>(), indices.data<Index>(), 1, V,
                               N, d);
    return record(out, "embedding", {weight},
                  [weight, indices, V, d, N](const Tensor& dout, const Tensor&) {
                    cuda::DeviceGuard guard(weight.device());
                    write_grad(weight, [&](float* dw, bool accumulate) {
                      cuda::index_select_backward(dw, dout.data<float>(), indices.data<Index>(), 1,
                                                  V, N, d, accumulate);
                    });
                  });
  }
}

}  // namespace

Tensor index_select(const Tensor& x, const Tensor& indices, int64_t dim) {
  BRIDLE_CHECK(x.defined(), "index_select: input is an undefined tensor");
  check_index_dtype("index_select", indices, "indices");
  check_device("index_select", {x, indices}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() >= 1, "index_select: input must have at least one dim, got a scalar");
  BRIDLE_CHECK(indices.dim() == 1, "index_select: indices must be 1-D, got {}",
               shape_str(indices.shape()));
  dim = normalize_dim("index_select", dim, x.dim());
  const DimSplit s = split_at(x.shape(), dim);
  const int64_t K = indices.numel();
  Shape shape = x.shape();
  shape[dim] = K;
  Tensor out = Tensor::empty(shape, TensorOptions(x.dtype()).with_device(x.device()));
  const Tensor checked = host_copy_if_gpu(indices);
  return dispatch_index(indices, [&](auto tag) {
    using Index = decltype(tag);
    const Index* idx = checked.data<Index>();
    const int64_t bad = first_out_of_range(idx, K, s.size);
    BRIDLE_CHECK(bad < 0,
                 "index_select: index {} at position {} is out of range for dim {} of size {} "
                 "(input {}, indices {})",
                 bad < 0 ? 0 : static_cast<int64_t>(idx[bad]), bad, dim, s.size,
                 shape_str(x.shape()), shape_str(indices.shape()));
    if (x.device().is_cuda()) return index_select_cuda<Index>(out, x, indices, s, K);
    dispatch_value(x.dtype(), [&](auto value_tag) {
      using T = decltype(value_tag);
      cpu::index_select_forward(out.data<T>(), x.data<T>(), idx, s.outer, s.size, K, s.inner);
    });
    if (!x.is_float()) return out;
    return record(out, "index_select", {x}, [x, indices, s, K](const Tensor& dout, const Tensor&) {
      write_grad(x, [&](float* dx, bool accumulate) {
        cpu::index_select_backward(dx, dout.data<float>(), indices.data<Index>(), s.outer, s.size,
                                   K, s.inner, accumulate);
      });
    });
  });
}

Tensor gather(const Tensor& x, const Tensor& index) {
  check_float("gather", x, "input");
  check_index_dtype("gather", index, "index");
  check_device("gather", {x, index}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() == 2, "gather: input must be [B, C], got {}", shape_str(x.shape()));
  const int64_t B = x.shape()[0], C = x.shape()[1];
  BRIDLE_CHECK((index.dim() == 1 || index.dim() == 2) && index.shape()[0] == B,
               "gather: index must be [{}] or [{}, k] for input {}, got {}", B, B,
               shape_str(x.shape()), shape_str(index.shape()));
  const int64_t k = index.dim() == 2 ? index.shape()[1] : 1;
  Tensor out = Tensor::empty(index.shape(), x.device());
  const Tensor checked = host_copy_if_gpu(index);
  return dispatch_index(index, [&](auto tag) {
    using Index = decltype(tag);
    const Index* idx = checked.data<Index>();
    const int64_t bad = first_out_of_range(idx, B * k, C);
    BRIDLE_CHECK(
        bad < 0, "gather: index {} at {} is out of range for {} columns (input {}, index {})",
        bad < 0 ? 0 : static_cast<int64_t>(idx[bad]),
        index.dim() == 2 ? fmt::format("[{}, {}]", bad / k, bad % k) : fmt::format("[{}]", bad), C,
        shape_str(x.shape()), shape_str(index.shape()));
    if (x.device().is_cuda()) return gather_cuda<Index>(out, x, index, B, C, k);
    cpu::gather_forward(out.data<float>(), x.data<float>(), idx, B, C, k);
    return record(out, "gather", {x}, [x, index, B, C, k](const Tensor& dout, const Tensor&) {
      write_grad(x, [&](float* dx, bool accumulate) {
        cpu::gather_backward(dx, dout.data<float>(), index.data<Index>(), B, C, k, accumulate);
      });
    });
  });
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  check_float("embedding", weight, "weight");
  check_index_dtype("embedding", indices, "indices");
  check_device("embedding", {weight, indices}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(weight.dim() == 2, "embedding: weight must be [num_embeddings, dim], got {}",
               shape_str(weight.shape()));
  const int64_t V = weight.shape()[0], d = weight.shape()[1], N = indices.numel();
  Shape shape = indices.shape();
  shape.push_back(d);
  Tensor out = Tensor::empty(shape, weight.device());
  const Tensor checked = host_copy_if_gpu(indices);
  return dispatch_index(indices, [&](auto tag) {
    using Index = decltype(tag);
    const Index* idx = checked.data<Index>();
    const int64_t bad = first_out_of_range(idx, N, V);
    BRIDLE_CHECK(bad < 0,
                 "embedding: index {} at position {} (flattened) is out of range for {} "
                 "embeddings (weight {}, indices {})",
                 bad < 0 ? 0 : static_cast<int64_t>(idx[bad]), bad, V, shape_str(weight.shape()),
                 shape_str(indices.shape()));
    if (weight.device().is_cuda()) return embedding_cuda<Index>(out, weight, indices, V, d, N);
    cpu::index_select_forward(out.data<float>(), weight.data<float>(), idx, 1, V, N, d);
    return record(out, "embedding", {weight},
                  [weight, indices, V, d, N](const Tensor& dout, const Tensor&) {
                    // dweight[v] = sum of dout rows whose index is v
                    write_grad(weight, [&](float* dw, bool accumulate) {
                      cpu::index_select_backward(dw, dout.data<float>(), indices.data<Index>(), 1,
                                                 V, N, d, accumulate);
                    });
                  });
  });
}

Tensor indices_in_range(const Tensor& values, int64_t low, int64_t high) {
  check_index_dtype("indices_in_range", values, "values");
  check_device("indices_in_range", {values}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(values.dim() == 1, "indices_in_range: values must be 1-D, got {}",
               shape_str(values.shape()));
  // On a GPU the scan runs over a host copy: the result's length is only known
  // after it, and its callers (adaptive softmax) sort rows on the host anyway.
  // The positions go back to values' device.
  const Tensor checked = host_copy_if_gpu(values);
  return dispatch_index(values, [&](auto tag) {
    using Index = decltype(tag);
    const Index* v = checked.data<Index>();
    const int64_t n = values.numel();
    std::vector<int64_t> found;
    for (int64_t i = 0; i < n; ++i)
      if (low <= static_cast<int64_t>(v[i]) && static_cast<int64_t>(v[i]) < high)
        found.push_back(i);
    Tensor out = Tensor::empty({static_cast<int64_t>(found.size())}, kInt64);
    std::copy(found.begin(), found.end(), out.data<int64_t>());
    return out.to(values.device());
  });
}

}  // namespace bridle
