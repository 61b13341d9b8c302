// Shape ops: views, transpose and cat; declarations in shape.h.
//
// Views share the input's storage and only need to route the gradient: reshape's
// backward reshapes it back; slice's backward adds it into rows [start, end) of
// the input's gradient. transpose's backward is the same transpose; cat's backward
// hands each input its own block of the gradient.
//
// On a GPU (shape.cu) transpose and cat run the same copies; reshape, flatten
// and slice are views on any device.
#include "ops/shape.h"

#include <cstring>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"

namespace bridle {
namespace {

// A new impl over x's storage: same dtype, given offset and shape.
Tensor make_view(const Tensor& x, int64_t offset, const Shape& shape) {
  x.make_plain();  // a view indexes row-major elements
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl().storage;
  impl->offset = offset;
  impl->shape = shape;
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

// The GPU paths. Under #ifdef, not `if constexpr`: GCC at -O0 still emits
// lambdas inside discarded branches, and a CPU-only build has no shape.cu.
#ifdef BRIDLE_WITH_CUDA
void transpose_cuda(const Tensor& out, const Tensor& x, int64_t outer, int64_t a, int64_t mid,
                    int64_t b, int64_t inner) {
  cuda::DeviceGuard guard(x.device());
  cuda::transpose_copy(out.raw_data(), x.raw_data(), static_cast<int64_t>(dtype_size(x.dtype())),
                       outer, a, mid, b, inner);
}

// Input k's block [outer, size_k * inner] goes to columns [offset_k * inner, ...)
// of the output's rows of size * inner; the backward takes it back.
Tensor cat_cuda(const std::vector<Tensor>& tensors, int64_t dim, const Shape& shape) {
  const Tensor& first = tensors.front();
  cuda::DeviceGuard guard(first.device());
  Tensor out = Tensor::empty(shape, TensorOptions(first.dtype()).with_device(first.device()));
  const DimSplit s = split_at(shape, dim);
  const auto elem = static_cast<int64_t>(dtype_size(first.dtype()));
  char* dst = static_cast<char*>(out.raw_data());
  int64_t offset = 0;  // along dim, in the output
  for (const Tensor& t : tensors) {
    const int64_t block = t.shape()[dim] * s.inner;
    cuda::copy_block(dst + offset * s.inner * elem, s.size * s.inner, t.raw_data(), block, elem,
                     s.outer, block);
    offset += t.shape()[dim];
  }
  if (!first.is_float()) return out;
  return record(out, "cat", tensors, [tensors, dim, s](const Tensor& dout, const Tensor&) {
    cuda::DeviceGuard guard(dout.device());
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      const int64_t block = t.shape()[dim] * s.inner;
      if (t.requires_grad()) {
        write_grad(t, [&](float* g, bool accumulate) {
          cuda::add_block(g, block, dout.data<float>() + offset * s.inner, s.size * s.inner,
                          s.outer, block, accumulate);
        });
      }
      offset += t.shape()[dim];
    }
  });
}
#else
void transpose_cuda(const Tensor&, const Tensor&, int64_t, int64_t, int64_t, int64_t, int64_t) {
  BRIDLE_FAIL("transpose: this build has no CUDA backend");
}
Tensor cat_cuda(const std::vector<Tensor>&, int64_t, const Shape&) {
  BRIDLE_FAIL("cat: this build has no CUDA backend");
}
#endif

}  // namespace

namespace cpu {

// out[o, j, m, i, k] = inp[o, i, m, j, k]: swaps the two middle dims of a
// 5-d view [outer, a, mid, b, inner] of the input.
template <typename T>
void transpose_copy(T* out, const T* inp, int64_t outer, int64_t a, int64_t mid, int64_t b,
                    int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t m = 0; m < mid; ++m)
        for (int64_t i = 0; i < a; ++i) {
          const T* src = inp + (((o * a + i) * mid + m) * b + j) * inner;
          T* dst = out + (((o * b + j) * mid + m) * a + i) * inner;
          for (int64_t k = 0; k < inner; ++k) dst[k] = src[k];
        }
}

}  // namespace cpu

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape target = shape;
  int64_t known = 1, infer = -1;
  for (size_t d = 0; d < target.size(); ++d) {
    if (target[d] == -1) {
      BRIDLE_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(shape));
      infer = static_cast<int64_t>(d);
    } else {
      BRIDLE_CHECK(target[d] >= 0, "reshape: negative size in {}", shape_str(shape));
      known *= target[d];
    }
  }
  if (infer >= 0) {
    BRIDLE_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot view {} ({} elements) as {}",
                 shape_str(x.shape()), x.numel(), shape_str(shape));
    target[infer] = x.numel() / known;
  }
  BRIDLE_CHECK(shape_numel(target) == x.numel(), "reshape: cannot view {} ({} elements) as {}",
               shape_str(x.shape()), x.numel(), shape_str(shape));
  Tensor out = make_view(x, x.impl().offset, target);
  if (!x.is_float()) return out;
  return record(out, "reshape", {x}, [x](const Tensor& dout, const Tensor&) {
    add_(grad_buffer(x), dout.reshape(x.shape()));
  });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = normalize_dim("flatten", start_dim, x.dim());
  end_dim = normalize_dim("flatten", end_dim, x.dim());
  BRIDLE_CHECK(start_dim <= end_dim, "flatten: start_dim {} is after end_dim {}", start_dim,
               end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + start_dim);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= x.shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + end_dim + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  check_device("transpose", {x}, Kernels::kCpuAndCuda);
  dim0 = normalize_dim("transpose", dim0, x.dim());
  dim1 = normalize_dim("transpose", dim1, x.dim());
  if (dim0 == dim1) return x;  // nothing moves (the copy below assumes two dims)
  if (dim0 > dim1) std::swap(dim0, dim1);
  Shape shape = x.shape();
  std::swap(shape[dim0], shape[dim1]);
  Tensor out = Tensor::empty(shape, TensorOptions(x.dtype()).with_device(x.device()));
  int64_t outer = 1, mid = 1, inner = 1;
  for (int64_t d = 0; d < dim0; ++d) outer *= x.shape()[d];
  for (int64_t d = dim0 + 1; d < dim1; ++d) mid *= x.shape()[d];
  for (int64_t d = dim1 + 1; d < x.dim(); ++d) inner *= x.shape()[d];
  int64_t a = x.shape()[dim0], b = x.shape()[dim1];
  if (x.device().is_cuda()) {
    transpose_cuda(out, x, outer, a, mid, b, inner);
  } else {
    switch (x.dtype()) {
      case DType::kFloat32:
        cpu::transpose_copy(out.data<float>(), x.data<float>(), outer, a, mid, b, inner);
        break;
      case DType::kInt32:
        cpu::transpose_copy(out.data<int32_t>(), x.data<int32_t>(), outer, a, mid, b, inner);
        break;
      case DType::kInt64:
        cpu::transpose_copy(out.data<int64_t>(), x.data<int64_t>(), outer, a, mid, b, inner);
        break;
    }
  }
  if (!x.is_float()) return out;
  // The backward's transpose and add_ run on either device.
  return record(out, "transpose", {x}, [x, dim0, dim1](const Tensor& dout, const Tensor&) {
    add_(grad_buffer(x), transpose(dout, dim0, dim1));
  });
}

Tensor slice(const Tensor& x, int64_t start, int64_t end) {
  BRIDLE_CHECK(x.dim() >= 1, "slice: needs a tensor with at least one dim, got a scalar");
  int64_t rows = x.shape()[0];
  BRIDLE_CHECK(0 <= start && start <= end && end <= rows,
               "slice: rows [{}, {}) are out of range for shape {}", start, end,
               shape_str(x.shape()));
  Shape shape = x.shape();
  shape[0] = end - start;
  int64_t row_size = rows == 0 ? 0 : x.numel() / rows;
  Tensor out = make_view(x, x.impl().offset + start * row_size, shape);
  if (!x.is_float()) return out;
  return record(out, "slice", {x}, [x, start, end](const Tensor& dout, const Tensor&) {
    add_(grad_buffer(x).slice(start, end), dout);
  });
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  BRIDLE_CHECK(!tensors.empty(), "cat: needs at least one tensor");
  const Tensor& first = tensors.front();
  check_device("cat", tensors, Kernels::kCpuAndCuda);
  dim = normalize_dim("cat", dim, first.dim());
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const Tensor& t = tensors[k];
    bool ok = t.dim() == first.dim() && t.dtype() == first.dtype();
    for (int64_t d = 0; ok && d < t.dim(); ++d) ok = d == dim || t.shape()[d] == first.shape()[d];
    BRIDLE_CHECK(ok, "cat: tensor {} is {} {} but tensor 0 is {} {} (all dims but {} must match)",
                 k, dtype_name(t.dtype()), shape_str(t.shape()), dtype_name(first.dtype()),
                 shape_str(first.shape()), dim);
    shape[dim] += t.shape()[dim];
  }
  if (first.device().is_cuda()) return cat_cuda(tensors, dim, shape);
  Tensor out = Tensor::empty(shape, first.dtype());
  DimSplit s = split_at(shape, dim);
  size_t elem = dtype_size(first.dtype());
  char* dst = static_cast<char*>(out.raw_data());
  int64_t offset = 0;  // along dim, in the output
  for (const Tensor& t : tensors) {
    int64_t block = t.shape()[dim] * s.inner;
    for (int64_t o = 0; o < s.outer; ++o)
      std::memcpy(dst + (o * s.size * s.inner + offset * s.inner) * elem,
                  static_cast<const char*>(t.raw_data()) + o * block * elem, block * elem);
    offset += t.shape()[dim];
  }
  if (!first.is_float()) return out;
  return record(out, "cat", tensors, [tensors, dim, s](const Tensor& dout, const Tensor&) {
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      int64_t block = t.shape()[dim] * s.inner;
      if (t.requires_grad()) {
        float* g = grad_buffer(t).data<float>();
        const float* src = dout.data<float>();
        for (int64_t o = 0; o < s.outer; ++o)
          for (int64_t i = 0; i < block; ++i)
            g[o * block + i] += src[o * s.size * s.inner + offset * s.inner + i];
      }
      offset += t.shape()[dim];
    }
  });
}

}  // namespace bridle
