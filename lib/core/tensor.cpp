// Tensor handle methods: shape queries, element access, copies, printing, and
// the autograd entry points (the engine itself is in autograd/engine.cpp).
#include "core/tensor.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace bridle {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, TensorOptions options) {
  for (int64_t d : shape)
    BRIDLE_CHECK(d >= 0, "Tensor::empty: negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = options.dtype;
  impl->storage = std::make_shared<Storage>(
      static_cast<size_t>(shape_numel(shape)) * dtype_size(options.dtype), options.device);
  impl->requires_grad = options.requires_grad;
  Tensor t(std::move(impl));
  if (options.requires_grad)
    BRIDLE_CHECK(t.is_float(), "only float tensors can require grad, got {}",
                 dtype_name(options.dtype));
  return t;
}

Tensor Tensor::empty_opaque(const Shape& shape, std::shared_ptr<const OpaqueLayout> layout,
                            Device device) {
  BRIDLE_CHECK(layout != nullptr, "Tensor::empty_opaque: no layout given");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<Storage>(layout->nbytes(), device);
  impl->layout = std::move(layout);
  return Tensor(std::move(impl));
}

void TensorImpl::make_plain() {
  if (!layout) return;
  auto plain = std::make_shared<Storage>(static_cast<size_t>(numel()) * dtype_size(dtype),
                                         storage->device());
  layout->to_plain(storage->data(), plain->data());
  storage = std::move(plain);
  offset = 0;
  layout = nullptr;
}

const Tensor& Tensor::make_plain() const {
  impl().make_plain();
  return *this;
}

bool same_layout(const Tensor& a, const Tensor& b) {
  if (a.is_plain() || b.is_plain()) return a.is_plain() && b.is_plain();
  return a.layout() == b.layout() || a.layout()->same_as(*b.layout());
}

void* Tensor::opaque_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(dtype());
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  BRIDLE_CHECK(d >= -n && d < n, "Tensor::size: dim {} out of range for shape {}", d,
               shape_str(shape()));
  return shape()[d < 0 ? d + n : d];
}

void* Tensor::raw_data() const {
  make_plain();
  return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(dtype());
}

namespace {

// t itself on the CPU, else a CPU copy: what the element accessors read.
Tensor on_cpu(const Tensor& t) { return t.device().is_cpu() ? t : t.cpu(); }

size_t nbytes_of(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

// Copies between tensors of the same size on any devices (core/cuda/cuda.h).
void copy_data(const Tensor& dst, const Tensor& src) {
  if constexpr (kCudaBuild) {
    if (!dst.device().is_cpu() || !src.device().is_cpu()) {
      cuda::copy_bytes(dst.raw_data(), dst.device(), src.raw_data(), src.device(), nbytes_of(src));
      return;
    }
  }
  std::memmove(dst.raw_data(), src.raw_data(), nbytes_of(src));
}

int64_t flat_index(const Tensor& t, const std::vector<int64_t>& index) {
  BRIDLE_CHECK(static_cast<int64_t>(index.size()) == t.dim(),
               "Tensor element access: {} indices for a tensor of shape {}", index.size(),
               shape_str(t.shape()));
  int64_t flat = 0;
  for (int64_t d = 0; d < t.dim(); ++d) {
    int64_t i = index[d] < 0 ? index[d] + t.shape()[d] : index[d];
    BRIDLE_CHECK(i >= 0 && i < t.shape()[d],
                 "Tensor element access: index {} out of range in dim {} of shape {}", index[d], d,
                 shape_str(t.shape()));
    flat = flat * t.shape()[d] + i;
  }
  return flat;
}

double read_element(const Tensor& t, int64_t flat) {
  switch (t.dtype()) {
    case DType::kFloat32:
      return t.data<float>()[flat];
    case DType::kInt32:
      return t.data<int32_t>()[flat];
    case DType::kInt64:
      return static_cast<double>(t.data<int64_t>()[flat]);
  }
  return 0;
}

void write_element(const Tensor& t, int64_t flat, double value) {
  switch (t.dtype()) {
    case DType::kFloat32:
      t.data<float>()[flat] = static_cast<float>(value);
      break;
    case DType::kInt32:
      t.data<int32_t>()[flat] = static_cast<int32_t>(value);
      break;
    case DType::kInt64:
      t.data<int64_t>()[flat] = static_cast<int64_t>(value);
      break;
  }
}

}  // namespace

float Tensor::item() const {
  BRIDLE_CHECK(numel() == 1, "Tensor::item: needs exactly one element, got shape {}",
               shape_str(shape()));
  return static_cast<float>(read_element(on_cpu(*this), 0));
}

double Tensor::at(const std::vector<int64_t>& index) const {
  const Tensor host = on_cpu(*this);
  return read_element(host, flat_index(host, index));
}

void Tensor::set(const std::vector<int64_t>& index, double value) {
  const int64_t flat = flat_index(*this, index);
  if (device().is_cpu()) {
    write_element(*this, flat, value);
    return;
  }
  Tensor element = Tensor::empty({}, dtype());  // written here, then copied over
  write_element(element, 0, value);
  if constexpr (kCudaBuild)
    cuda::copy_bytes(static_cast<char*>(raw_data()) + flat * dtype_size(dtype()), device(),
                     element.raw_data(), Device::cpu(), dtype_size(dtype()));
}

std::vector<float> Tensor::to_vector() const {
  const Tensor host = on_cpu(*this);
  const float* p = host.data<float>();
  return std::vector<float>(p, p + numel());
}

std::vector<int64_t> Tensor::to_int_vector() const {
  BRIDLE_CHECK(is_integer(dtype()), "Tensor::to_int_vector: tensor is {}", dtype_name(dtype()));
  const Tensor host = on_cpu(*this);
  std::vector<int64_t> out(numel());
  for (int64_t i = 0; i < numel(); ++i) out[i] = static_cast<int64_t>(read_element(host, i));
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), TensorOptions(dtype()).with_device(device()));
  copy_data(out, *this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  if (!device().is_cpu()) return cpu().to(target).to(device());  // rare: converted on the CPU
  Tensor out = Tensor::empty(shape(), TensorOptions(target).with_device(device()));
  for (int64_t i = 0; i < numel(); ++i) write_element(out, i, read_element(*this, i));
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  // Tensor::empty throws a clear error when the target cannot be allocated on
  // (no CUDA backend in this build, no GPU, no such device).
  Tensor out = Tensor::empty(shape(), TensorOptions(dtype()).with_device(target));
  copy_data(out, *this);
  if (!is_float()) return out;
  // Differentiable, as in PyTorch: the gradient goes back to the source device,
  // so a computation may start on the CPU, run on a GPU and end on the CPU.
  return record(out, "to", {*this}, [source = *this](const Tensor& dout, const Tensor&) {
    accumulate_grad(source, dout.to(source.device()));
  });
}

Tensor Tensor::pin_memory() const {
  BRIDLE_CHECK(device().is_cpu(), "Tensor::pin_memory: the tensor is on {}, not the cpu",
               device().str());
  if (is_pinned()) return *this;
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape();
  impl->dtype = dtype();
  impl->storage = std::make_shared<Storage>(nbytes_of(*this), Device::cpu(), /*pinned=*/true);
  Tensor out(std::move(impl));
  copy_data(out, *this);
  return out;
}

Tensor& Tensor::fill_(double value) {
  int64_t n = numel();
  if (!device().is_cpu()) {
    if constexpr (kCudaBuild) {
      cuda::DeviceGuard guard(device());
      cuda::fill(raw_data(), dtype(), n, value);
    }
    return *this;
  }
  if (dtype() == DType::kFloat32) {
    float v = static_cast<float>(value);
    float* p = data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  } else {
    for (int64_t i = 0; i < n; ++i) write_element(*this, i, value);
  }
  return *this;
}

Tensor& Tensor::copy_(const Tensor& other) {
  BRIDLE_CHECK(other.shape() == shape() && other.dtype() == dtype(),
               "Tensor::copy_: source is {} {}, destination is {} {}", dtype_name(other.dtype()),
               shape_str(other.shape()), dtype_name(dtype()), shape_str(shape()));
  copy_data(*this, other);
  return *this;
}

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  BRIDLE_CHECK(!requires_grad || is_float(),
               "set_requires_grad: only float tensors can require grad, got {}",
               dtype_name(dtype()));
  BRIDLE_CHECK(is_leaf(),
               "set_requires_grad: only leaves can change requires_grad; detach() first");
  impl().requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& grad) {
  if (grad.defined())
    BRIDLE_CHECK(grad.shape() == shape(), "set_grad: gradient {} for a tensor of shape {}",
                 shape_str(grad.shape()), shape_str(shape()));
  impl().grad = grad.impl_ptr();
}

void Tensor::zero_grad(bool set_to_none) {
  if (!impl().grad) return;
  if (set_to_none)
    impl().grad.reset();
  else
    Tensor(impl().grad).fill_(0.0);
}

void Tensor::retain_grad() {
  BRIDLE_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  impl().retains_grad = true;
}

int64_t Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) {
  BRIDLE_CHECK(is_leaf() && requires_grad(),
               "register_post_accumulate_grad_hook: only a leaf that requires grad accumulates "
               "a gradient");
  static std::atomic<int64_t> next_handle{1};
  const int64_t handle = next_handle++;
  impl().post_accumulate_grad_hooks.emplace_back(handle, std::move(hook));
  return handle;
}

void Tensor::remove_post_accumulate_grad_hook(int64_t handle) {
  auto& hooks = impl().post_accumulate_grad_hooks;
  std::erase_if(hooks, [handle](const auto& entry) { return entry.first == handle; });
}

void Tensor::backward(bool retain_graph) const {
  BRIDLE_CHECK(numel() == 1,
               "backward: without a gradient argument the tensor must be a scalar, got shape {}",
               shape_str(shape()));
  run_backward(*this, ones(shape(), TensorOptions(dtype()).with_device(device())), retain_graph);
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  BRIDLE_CHECK(gradient.shape() == shape(),
               "backward: gradient of shape {} for a tensor of shape {}",
               shape_str(gradient.shape()), shape_str(shape()));
  run_backward(*this, gradient, retain_graph);
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_ptr()->storage;
  impl->offset = impl_ptr()->offset;
  impl->shape = shape();
  impl->dtype = dtype();
  impl->layout = layout();
  return Tensor(std::move(impl));
}

Tensor Tensor::reshape(const Shape& s) const { return bridle::reshape(*this, s); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return bridle::transpose(*this, d0, d1); }
Tensor Tensor::slice(int64_t start, int64_t end) const { return bridle::slice(*this, start, end); }
Tensor Tensor::sum() const { return bridle::sum(*this); }
Tensor Tensor::sum(int64_t d, bool keepdim) const { return bridle::sum(*this, d, keepdim); }
Tensor Tensor::mean() const { return bridle::mean(*this); }
Tensor Tensor::mean(int64_t d, bool keepdim) const { return bridle::mean(*this, d, keepdim); }
Tensor Tensor::argmax(int64_t d, bool keepdim) const { return bridle::argmax(*this, d, keepdim); }
Tensor Tensor::matmul(const Tensor& other) const { return bridle::matmul(*this, other); }
Tensor Tensor::exp() const { return bridle::exp(*this); }
Tensor Tensor::log() const { return bridle::log(*this); }
Tensor Tensor::relu() const { return bridle::relu(*this); }
Tensor Tensor::pow(float exponent) const { return bridle::pow(*this, exponent); }

// Printing, PyTorch style: tensor([[1.0000, 2.0000], ...]), eliding the middle of long dims.
namespace {

void print_rec(std::ostringstream& os, const Tensor& t, int64_t dim, int64_t& flat, int indent) {
  constexpr int64_t kEdge = 3, kMaxFull = 8;
  int64_t n = t.shape()[dim];
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.shape()[d];
  os << "[";
  int64_t base = flat;
  for (int64_t i = 0; i < n; ++i) {
    if (n > kMaxFull && i == kEdge) {
      os << (dim + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - kEdge;
    }
    flat = base + i * inner;
    if (dim + 1 == t.dim()) {
      double v = read_element(t, flat);
      if (t.is_float())
        os << fmt::format("{:.4f}", v);
      else
        os << static_cast<int64_t>(v);
    } else {
      print_rec(os, t, dim + 1, flat, indent + 1);
    }
    if (i + 1 < n) os << (dim + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  const Tensor host = on_cpu(*this);
  if (dim() == 0) {
    double v = read_element(host, 0);
    os << (is_float() ? fmt::format("{:.4f}", v) : std::to_string(static_cast<int64_t>(v)));
  } else if (numel() == 0) {
    os << "[]";
  } else {
    int64_t flat = 0;
    print_rec(os, host, 0, flat, 7);
  }
  os << ", shape=" << shape_str(shape());
  if (!device().is_cpu()) os << ", device=" << device().str();
  if (!is_float()) os << ", dtype=" << dtype_name(dtype());
  if (requires_grad()) os << (is_leaf() ? ", requires_grad" : ", grad_fn=" + grad_fn()->name());
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace bridle
