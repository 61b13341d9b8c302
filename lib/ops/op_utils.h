// Argument checks shared by ops. Every check throws bridle::Error with a message
// naming the op and the offending shape or value; kernels never check.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

// Throws unless t is defined and float32.
void check_float(const char* op, const Tensor& t, const char* arg = "input");
// The devices an op has kernels for. An op with CUDA kernels (a .cu beside its
// .cpp) says so with kCpuAndCuda and branches on the device itself; every other
// op keeps the default, so a CUDA tensor reaching it is a clear error rather
// than a device pointer read by a CPU kernel (a crash).
enum class Kernels { kCpuOnly, kCpuAndCuda };

// Throws unless all defined tensors are on the same device and the op has
// kernels for it.
void check_device(const char* op, const std::vector<Tensor>& tensors,
                  Kernels kernels = Kernels::kCpuOnly);
// Maps a possibly negative dim into [0, rank); throws if out of range.
int64_t normalize_dim(const char* op, int64_t dim, int64_t rank);

// Splits shape around `dim` into (outer, size, inner): the layout every
// reduction and softmax kernel takes. For [B, C] and dim 1: (B, C, 1).
struct DimSplit {
  int64_t outer = 1, size = 1, inner = 1;
};
DimSplit split_at(const Shape& shape, int64_t dim);

// The shape with `dim` removed (or set to 1 when keepdim).
Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim);

}  // namespace bridle
