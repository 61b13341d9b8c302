// OpaqueLayout: the memory order of a tensor whose elements are not plain
// row-major, e.g. oneDNN's channel-blocked nChw16c, in which a chain of
// convolution, batch norm and ReLU runs without reordering between ops.
//
// The rule that keeps this safe: only layout-aware kernels read such memory, via
// Tensor::opaque_data(). Every other access (data<T>(), raw_data(), views,
// printing, checkpoints) first converts the tensor to plain in place, so code
// that does not know about layouts always sees row-major elements and never a
// silent wrong answer. Conversions replace the storage; tensors that shared the
// old storage (detach()) keep their own layout and stay valid.
#pragma once

#include <cstddef>
#include <string>

namespace bridle {

class OpaqueLayout {
 public:
  virtual ~OpaqueLayout() = default;
  // Names the layout in messages, e.g. "oneDNN aBcd16b".
  virtual std::string name() const = 0;
  // Bytes of memory the layout spans, including any padding (which holds zeros).
  virtual size_t nbytes() const = 0;
  // Writes the elements at src (this layout) to dst in plain row-major order.
  virtual void to_plain(const void* src, void* dst) const = 0;
  virtual bool same_as(const OpaqueLayout& other) const = 0;
};

}  // namespace bridle
