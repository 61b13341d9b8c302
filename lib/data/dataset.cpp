// TensorDataset: batches gathered from two in-memory tensors; see dataset.h.
#include "data/dataset.h"

#include <cstring>

#include "core/error.h"

namespace bridle {
namespace {

// Copies rows `indices` of src (dim 0) into a new tensor [indices.size(), ...].
Tensor gather_rows(const Tensor& src, const std::vector<int64_t>& indices, const char* what) {
  Shape shape = src.shape();
  const int64_t n = shape[0];
  shape[0] = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::empty(shape, src.dtype());
  const size_t row_bytes =
      static_cast<size_t>(n == 0 ? 0 : src.numel() / n) * dtype_size(src.dtype());
  const auto* from = static_cast<const char*>(src.raw_data());
  auto* to = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t row = indices[i];
    BRIDLE_CHECK(row >= 0 && row < n,
                 "TensorDataset::get_batch: index {} (position {} of the batch) is out of range "
                 "for {} {} of {} examples",
                 row, i, what, shape_str(src.shape()), n);
    std::memcpy(to + i * row_bytes, from + static_cast<size_t>(row) * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  BRIDLE_CHECK(inputs_.defined() && targets_.defined(),
               "TensorDataset: inputs and targets must be defined tensors");
  BRIDLE_CHECK(inputs_.dim() >= 1 && targets_.dim() >= 1,
               "TensorDataset: inputs {} and targets {} need a dim 0 that indexes the examples",
               shape_str(inputs_.shape()), shape_str(targets_.shape()));
  BRIDLE_CHECK(inputs_.size(0) == targets_.size(0),
               "TensorDataset: inputs {} and targets {} differ in their number of examples",
               shape_str(inputs_.shape()), shape_str(targets_.shape()));
  BRIDLE_CHECK(inputs_.device().is_cpu() && targets_.device().is_cpu(),
               "TensorDataset: inputs ({}) and targets ({}) must be on the cpu",
               inputs_.device().str(), targets_.device().str());
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  return {gather_rows(inputs_, indices, "inputs"), gather_rows(targets_, indices, "targets")};
}

}  // namespace bridle
