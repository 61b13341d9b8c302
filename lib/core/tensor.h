// Tensor: a handle to an n-dimensional array plus its autograd record.
//
// Tensors are contiguous and row-major (NCHW for images), except that oneDNN's
// kernels may leave their outputs in an opaque blocked layout (core/layout.h)
// which any plain access converts back first. Handles are cheap to copy and share
// their TensorImpl; several impls may share one Storage (reshape
// and dim-0 slicing are views, free of copies). Each tensor knows its dtype and
// device, and ops dispatch on the device. The autograd fields (requires_grad,
// grad, grad_fn) live on the impl; see autograd/engine.h for how backward walks them.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/storage.h"

namespace bridle {

class Node;

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[64, 784]"
int64_t shape_numel(const Shape& shape);

// What a factory makes: dtype, device and whether autograd tracks it.
// Converts implicitly from a DType or a Device, so zeros({3}, kInt64) reads well.
struct TensorOptions {
  DType dtype = DType::kFloat32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}    // NOLINT(google-explicit-constructor)
  TensorOptions(Device d) : device(d) {}  // NOLINT(google-explicit-constructor)
  TensorOptions& with_dtype(DType d) {
    dtype = d;
    return *this;
  }
  TensorOptions& with_device(Device d) {
    device = d;
    return *this;
  }
  TensorOptions& with_requires_grad(bool r = true) {
    requires_grad = r;
    return *this;
  }
};

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements, into storage
  Shape shape;
  DType dtype = DType::kFloat32;
  // Set when the elements are in an opaque layout (then offset is 0); null = plain.
  std::shared_ptr<const OpaqueLayout> layout;

  // Autograd. A leaf has no grad_fn; an op's output has the node that made it.
  bool requires_grad = false;
  bool retains_grad = false;  // keep .grad on a non-leaf after backward
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  // Leaves only: called once per backward after the gradient is complete.
  std::vector<std::pair<int64_t, std::function<void(const Tensor&)>>> post_accumulate_grad_hooks;

  int64_t numel() const { return shape_numel(shape); }
  // Converts opaque-layout elements to plain row-major in fresh storage.
  void make_plain();
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: no storage, no shape
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialized storage of the given shape.
  static Tensor empty(const Shape& shape, TensorOptions options = {});
  // Uninitialized float storage of the given shape in an opaque layout.
  static Tensor empty_opaque(const Shape& shape, std::shared_ptr<const OpaqueLayout> layout,
                             Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // d may be negative, as in PyTorch
  int64_t numel() const { return impl().numel(); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_float() const { return dtype() == DType::kFloat32; }

  // Typed pointer to the first element of the plain row-major data; throws if T
  // does not match the dtype. An opaque-layout tensor is converted first.
  template <typename T>
  T* data() const {
    BRIDLE_CHECK(DTypeOf<T>::value == dtype(), "Tensor::data: asked for {} but the tensor is {}",
                 dtype_name(DTypeOf<T>::value), dtype_name(dtype()));
    if (impl().layout) impl().make_plain();
    return static_cast<T*>(impl().storage->data()) + impl().offset;
  }
  void* raw_data() const;  // data<T>() without the type

  // Layouts (core/layout.h). is_plain(): row-major. opaque_data(): the memory as
  // it is, for layout-aware kernels only. make_plain(): convert in place now.
  bool is_plain() const { return impl().layout == nullptr; }
  const std::shared_ptr<const OpaqueLayout>& layout() const { return impl().layout; }
  void* opaque_data() const;
  const Tensor& make_plain() const;

  // Element access for tests and small programs (slow). On a CUDA tensor each
  // call copies the tensor to the CPU first (set: the one element back).
  float item() const;                                  // the one element, as float
  double at(const std::vector<int64_t>& index) const;  // any dtype, as double
  void set(const std::vector<int64_t>& index, double value);
  std::vector<float> to_vector() const;        // float32 tensors
  std::vector<int64_t> to_int_vector() const;  // integer tensors

  // Copies (the result is a new leaf that does not require grad), except that
  // to(Device) is recorded by autograd: its gradient is copied back.
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;  // a copy on another device (itself if already there)
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda(int index = 0) const { return to(Device::cuda(index)); }
  // A CPU copy in pinned (page-locked) memory, which copies to a GPU
  // asynchronously; needs the CUDA backend and a GPU.
  Tensor pin_memory() const;
  bool is_pinned() const { return impl().storage->is_pinned(); }
  // Overwrites every element with value / with other's elements, in place; other
  // may be on another device. Not recorded by autograd: use on leaves (init,
  // optimizers, checkpoints).
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& other);

  // Autograd.
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool requires_grad = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // The accumulated gradient (undefined until a backward reaches this tensor).
  Tensor grad() const;
  void set_grad(const Tensor& grad);
  // Sets the gradient to zero in place (keeping its memory), or drops it.
  void zero_grad(bool set_to_none = false);
  // Keep .grad on a non-leaf tensor after backward (leaves always keep it).
  void retain_grad();
  // On a leaf that requires grad: hook(leaf) runs once per backward that reaches
  // the leaf, as soon as its .grad holds every contribution of that backward
  // (after the last node that uses the leaf has run), while the rest of the
  // backward is still to come. Data-parallel training starts sending gradients
  // from here. Returns a handle for remove_post_accumulate_grad_hook.
  int64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook);
  void remove_post_accumulate_grad_hook(int64_t handle);
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // Backpropagates from this scalar (gradient 1) or with the given gradient.
  // The graph is released afterwards unless retain_graph is set.
  void backward(bool retain_graph = false) const;
  void backward(const Tensor& gradient, bool retain_graph = false) const;
  // Same data, cut from the graph.
  Tensor detach() const;

  // Method forms of common ops (the free functions in ops/ are the real thing).
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor slice(int64_t start, int64_t end) const;  // rows [start, end) of dim 0
  Tensor sum() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor relu() const;
  Tensor pow(float exponent) const;

  std::string str() const;  // PyTorch-like printing

  TensorImpl& impl() const {
    BRIDLE_CHECK(impl_ != nullptr, "use of an undefined Tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Whether a and b hold their elements in the same order (both plain, or the
// same opaque layout), so elementwise kernels may run over their raw memory.
bool same_layout(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, float b);
Tensor operator-(const Tensor& a, float b);
Tensor operator*(const Tensor& a, float b);
Tensor operator/(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(float a, const Tensor& b);
Tensor operator/(float a, const Tensor& b);
Tensor operator-(const Tensor& a);

}  // namespace bridle
