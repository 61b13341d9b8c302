// Anomaly detection; see anomaly.h.
#include "autograd/anomaly.h"

#include <atomic>
#include <cmath>

#include "autograd/node.h"

namespace bridle {
namespace {

std::atomic<bool> anomaly_mode{false};
// Ops run inside a backward node are checked through the node's gradients.
thread_local int backward_depth = 0;

// The index of the first element of a float tensor that fails `bad`, or -1. A
// GPU tensor is copied to the host first: slow, as anomaly mode is everywhere.
template <typename Predicate>
int64_t first_index(const Tensor& t, Predicate bad) {
  if (!t.defined() || !t.is_float()) return -1;
  const Tensor host = t.cpu();
  const float* data = host.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    if (bad(data[i])) return i;
  return -1;
}

int64_t first_non_finite(const Tensor& t) {
  return first_index(t, [](float v) { return !std::isfinite(v); });
}
int64_t first_nan(const Tensor& t) {
  return first_index(t, [](float v) { return std::isnan(v); });
}

std::string describe_value(float value) { return std::isnan(value) ? "NaN" : "an infinity"; }

// "[64, 10] (finite), [64] int64" for an op's inputs.
std::string describe_inputs(const std::vector<Tensor>& inputs) {
  std::string out;
  for (const Tensor& input : inputs) {
    if (!out.empty()) out += ", ";
    if (!input.defined()) {
      out += "(none)";
      continue;
    }
    out += shape_str(input.shape());
    if (!input.is_float())
      out += fmt::format(" {}", dtype_name(input.dtype()));
    else
      out += first_non_finite(input) < 0 ? " (finite)" : " (already non-finite)";
  }
  return out.empty() ? "none" : out;
}

}  // namespace

void set_detect_anomaly(bool enabled) { anomaly_mode = enabled; }
bool detect_anomaly() { return anomaly_mode; }

namespace detail {

AnomalyBackwardScope::AnomalyBackwardScope() { ++backward_depth; }
AnomalyBackwardScope::~AnomalyBackwardScope() { --backward_depth; }

void check_forward_anomaly(const std::string& name, const std::vector<Tensor>& inputs,
                           const Tensor& output) {
  if (!anomaly_mode || backward_depth > 0) return;
  // A NaN is always reported. An infinity only when the op made it from finite
  // inputs: adding a -inf attention mask passes infinities on by design.
  int64_t at = first_nan(output);
  if (at < 0) {
    for (const Tensor& input : inputs)
      if (first_non_finite(input) >= 0) return;
    at = first_non_finite(output);
  }
  if (at < 0) return;
  throw Error(fmt::format(
      "anomaly detected: the forward of '{}' produced {} at element {} of its output {}; its "
      "inputs: {}",
      name, describe_value(output.cpu().data<float>()[at]), at, shape_str(output.shape()),
      describe_inputs(inputs)));
}

void check_backward_anomaly(const Node& node, const Tensor& grad_output) {
  if (!anomaly_mode) return;
  const std::vector<Tensor>& inputs = node.inputs();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad() || !input.impl().grad) continue;
    Tensor grad(input.impl().grad);
    int64_t at = first_non_finite(grad);
    if (at < 0) continue;
    throw Error(fmt::format(
        "anomaly detected: the backward of '{}' produced {} at element {} of the gradient of "
        "its input {} {}; the gradient it received {} was {}; its inputs: {}",
        node.name(), describe_value(grad.cpu().data<float>()[at]), at, i, shape_str(input.shape()),
        shape_str(grad_output.shape()), first_non_finite(grad_output) < 0 ? "finite" : "not finite",
        describe_inputs(inputs)));
  }
}

}  // namespace detail
}  // namespace bridle
