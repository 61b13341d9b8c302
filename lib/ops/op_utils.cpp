// Shared argument checks; see op_utils.h.
#include "ops/op_utils.h"

namespace bridle {

void check_float(const char* op, const Tensor& t, const char* arg) {
  BRIDLE_CHECK(t.defined(), "{}: {} is an undefined tensor", op, arg);
  BRIDLE_CHECK(t.dtype() == DType::kFloat32, "{}: {} must be float32, got {} of shape {}", op, arg,
               dtype_name(t.dtype()), shape_str(t.shape()));
}

void check_device(const char* op, const std::vector<Tensor>& tensors, Kernels kernels) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!first) first = &t;
    BRIDLE_CHECK(t.device() == first->device(), "{}: tensors on different devices ({} and {})", op,
                 first->device().str(), t.device().str());
    if (t.device().is_cpu()) continue;
    BRIDLE_CHECK(kCudaBuild, "{}: no kernel for device {} in this build", op, t.device().str());
    BRIDLE_CHECK(kernels == Kernels::kCpuAndCuda,
                 "{}: no kernel for device {} yet (this op has CPU kernels only); move its "
                 "inputs to the cpu with .cpu()",
                 op, t.device().str());
  }
}

int64_t normalize_dim(const char* op, int64_t dim, int64_t rank) {
  BRIDLE_CHECK(dim >= -rank && dim < rank, "{}: dim {} is out of range for a tensor of rank {}", op,
               dim, rank);
  return dim < 0 ? dim + rank : dim;
}

DimSplit split_at(const Shape& shape, int64_t dim) {
  DimSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim)
      s.outer *= shape[d];
    else if (d == dim)
      s.size = shape[d];
    else
      s.inner *= shape[d];
  }
  return s;
}

Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim) {
  Shape out = shape;
  if (keepdim)
    out[dim] = 1;
  else
    out.erase(out.begin() + dim);
  return out;
}

}  // namespace bridle
