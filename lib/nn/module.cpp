// Module base class; see module.h.
#include "nn/module.h"

#include "autograd/node.h"

namespace bridle {

Tensor Module::forward(const Tensor&) {
  BRIDLE_FAIL("{}: forward() is not implemented for this module", type_name_);
}

void Module::check_new_name(const std::string& name) const {
  BRIDLE_CHECK(!name.empty() && name.find('.') == std::string::npos,
               "{}: '{}' is not a valid name (non-empty, no dots)", type_name_, name);
  auto taken = [&](const auto& list) {
    for (const auto& [n, _] : list)
      if (n == name) return true;
    return false;
  };
  BRIDLE_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
               "{}: the name '{}' is already registered", type_name_, name);
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name);
  BRIDLE_CHECK(t.defined() && t.is_float(), "{}: parameter '{}' must be a float tensor", type_name_,
               name);
  BRIDLE_CHECK(t.is_leaf(), "{}: parameter '{}' must be a leaf tensor (detach() it first)",
               type_name_, name);
  t.set_requires_grad(requires_grad);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, bool recurse, bool buffers,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : buffers ? buffers_ : parameters_) out.emplace_back(prefix + name, t);
  if (!recurse) return;
  for (const auto& [name, child] : children_)
    child->collect(prefix + name + ".", true, buffers, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", recurse, false, out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", recurse, true, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (Tensor& t : parameters()) t.zero_grad(set_to_none);
}

Module& Module::to(Device device) {
  std::vector<Tensor> tensors = parameters();
  for (const auto& [name, buffer] : named_buffers()) tensors.push_back(buffer);
  // Copy everything first, so that a failure leaves the module as it was.
  std::vector<Tensor> copies;
  {
    NoGradGuard no_grad;
    for (const Tensor& t : tensors) copies.push_back(t.detach().to(device));
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorImpl& impl = tensors[i].impl();
    if (tensors[i].device() == device) continue;  // already there
    impl.storage = copies[i].impl().storage;
    impl.offset = copies[i].impl().offset;
    impl.layout = copies[i].impl().layout;
    impl.grad.reset();
  }
  return *this;
}

std::string Module::str() const {
  std::string s = type_name_ + "(" + extra_repr();
  if (children_.empty()) return s + ")";
  s += "\n";
  for (const auto& [name, child] : children_) {
    std::string inner = child->str();
    for (size_t pos = inner.find('\n'); pos != std::string::npos; pos = inner.find('\n', pos + 1))
      inner.insert(pos + 1, "  ");
    s += "  (" + name + "): " + inner + "\n";
  }
  return s + ")";
}

}  // namespace bridle
