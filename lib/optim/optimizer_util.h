// Internals shared by the optimizers' .cpp files (Adam, RMSprop, Adagrad): the
// blocked parallel loop of their fused kernels, and the pieces of load_state()
// that the base class does not cover: hyper-parameters read by name,
// per-parameter step counts ("step": float32 [1] tensors, as PyTorch keeps
// them) and checks that a parameter's state tensors come together. Not part of
// the public API (bridle.h does not include it).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/factory.h"
#include "optim/optimizer.h"

namespace bridle::optim_detail {

// Runs body(begin, end) over [0, n) in blocks, spread over OpenMP threads when
// n is large; body runs a plain `omp simd` loop over its block (GCC does not
// vectorize the body of a combined `parallel for simd if(...)`).
template <typename Body>
void parallel_blocks(int64_t n, const Body& body) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t b = 0; b < blocks; ++b) body(b * kBlock, std::min(n, (b + 1) * kBlock));
}

// Checks that an option is finite and >= 0 (PyTorch's `0.0 <= value`; NaN and
// infinity fail too).
inline void check_nonnegative_option(float value, const std::string& type, const char* what) {
  BRIDLE_CHECK(std::isfinite(value) && value >= 0.0f, "{}: invalid {} {}", type, what, value);
}

// The state's hyper-parameters must be exactly `names`: none missing, none unknown.
inline void check_hyperparameter_names(const OptimizerState& state, const std::string& type,
                                       const std::vector<std::string>& names) {
  for (const auto& [name, value] : state.hyperparameters)
    BRIDLE_CHECK(std::find(names.begin(), names.end(), name) != names.end(),
                 "{}::load_state: unknown hyper-parameter '{}' = {}", type, name, value);
  for (const std::string& name : names)
    BRIDLE_CHECK(state.hyperparameters.count(name),
                 "{}::load_state: hyper-parameter '{}' is missing", type, name);
}

inline float hyperparameter(const OptimizerState& state, const std::string& name) {
  return static_cast<float>(state.hyperparameters.at(name));
}

// A boolean hyper-parameter, stored as 0 or 1.
inline bool bool_hyperparameter(const OptimizerState& state, const std::string& type,
                                const std::string& name) {
  const double value = state.hyperparameters.at(name);
  BRIDLE_CHECK(value == 0.0 || value == 1.0, "{}::load_state: {} must be 0 or 1, got {}", type,
               name, value);
  return value == 1.0;
}

// A parameter's step count as it appears in state(): float32 [1] (exact up to 2^24).
inline Tensor step_tensor(int64_t step) { return from_vector({static_cast<float>(step)}, {1}); }

// The state without per_parameter["step"], for Optimizer::validate_per_parameter,
// which wants every tensor shaped like its parameter.
inline OptimizerState without_steps(const OptimizerState& state) {
  OptimizerState rest = state;
  rest.per_parameter.erase("step");
  return rest;
}

// Reads per_parameter["step"]: per parameter a float32 [1] tensor holding a
// whole number >= 0, or undefined (-1 here: the parameter has no state yet).
// A state without "step" has none anywhere.
inline std::vector<int64_t> read_steps(const OptimizerState& state, const std::string& type,
                                       size_t num_params) {
  std::vector<int64_t> steps(num_params, -1);
  auto it = state.per_parameter.find("step");
  if (it == state.per_parameter.end()) return steps;
  const std::vector<Tensor>& tensors = it->second;
  BRIDLE_CHECK(tensors.size() == num_params, "{}::load_state: {} step tensors for {} parameters",
               type, tensors.size(), num_params);
  for (size_t i = 0; i < num_params; ++i) {
    const Tensor& t = tensors[i];
    if (!t.defined()) continue;
    BRIDLE_CHECK(t.dtype() == kFloat32 && t.shape() == Shape{1},
                 "{}::load_state: step {} is {} {}, not float32 [1]", type, i,
                 dtype_name(t.dtype()), shape_str(t.shape()));
    const float value = t.item();
    BRIDLE_CHECK(std::isfinite(value) && value >= 0.0f && value == std::floor(value),
                 "{}::load_state: step {} is {}, not a whole number >= 0", type, i, value);
    steps[i] = static_cast<int64_t>(value);
  }
  return steps;
}

// The tensors of one kind, copied to the host (undefined where the state has
// none, and everywhere when it lacks the kind).
inline std::vector<Tensor> clone_kind(const OptimizerState& state, const std::string& kind,
                                      size_t num_params) {
  std::vector<Tensor> out(num_params);
  auto it = state.per_parameter.find(kind);
  if (it == state.per_parameter.end()) return out;
  for (size_t i = 0; i < num_params; ++i) {
    const Tensor& t = it->second[i];
    // On the host, where load_state validates the values (check_nonnegative_tensor);
    // to_param_devices then moves them next to their parameters.
    if (t.defined()) out[i] = t.device().is_cpu() ? t.clone() : t.cpu();
  }
  return out;
}

// Moves a defined state tensor to its parameter's device: the model may have
// moved (Module::to) since the state was made, and the update reads both.
inline void follow_param(Tensor& state, const Tensor& param) {
  if (state.defined() && state.device() != param.device()) state = state.to(param.device());
}

// Moves each defined state tensor to its parameter's device: a checkpoint is read
// into host memory, and a model trained with --device cuda updates on the GPU.
inline void to_param_devices(std::vector<Tensor>& state, const std::vector<Tensor>& params) {
  for (size_t i = 0; i < state.size(); ++i) follow_param(state[i], params[i]);
}

// Parameter i must hold a `kind` tensor exactly when it has a step count and
// the option that needs the kind is on (`option`: its name, or "" for a kind
// every parameter with state has).
inline void check_kind_present(const std::string& type, const std::string& kind, size_t i,
                               bool present, bool has_step, bool option_on,
                               const std::string& option = "") {
  BRIDLE_CHECK(!present || has_step, "{}::load_state: parameter {} has {} but no step count", type,
               i, kind);
  BRIDLE_CHECK(!present || option_on, "{}::load_state: parameter {} has {} but {} is off", type, i,
               kind, option);
  BRIDLE_CHECK(present || !has_step || !option_on,
               "{}::load_state: parameter {} has a step count but no {}{}", type, i, kind,
               option.empty() ? "" : " (" + option + " is on)");
}

// Running averages of squares (and Adagrad's sums) are never negative: a
// negative or NaN entry would turn the update into NaN.
inline void check_nonnegative_tensor(const std::string& type, const std::string& kind, size_t i,
                                     const Tensor& t) {
  if (!t.defined()) return;
  const float* data = t.data<float>();
  for (int64_t k = 0; k < t.numel(); ++k)
    BRIDLE_CHECK(data[k] >= 0.0f,
                 "{}::load_state: {} {} has the value {} at element {} (it must be >= 0)", type,
                 kind, i, data[k], k);
}

}  // namespace bridle::optim_detail
