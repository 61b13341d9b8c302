// gradcheck: compares backward() with central finite differences.
//
// f maps the inputs to one tensor. We reduce it to a scalar s = sum(f(x) * w)
// with fixed random weights w (so every output element matters), take ds/dx by
// backward, and compare each input element's derivative with
// (s(x + eps) - s(x - eps)) / (2 eps), accumulated in double. Inputs are float32,
// so tolerances are loose-ish by default; pass tighter ones per op.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

struct GradcheckOptions {
  double eps = 1e-2;
  double atol = 1e-3;
  double rtol = 1e-2;
  uint64_t seed = 0;
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::string message;  // the first mismatch: input, element, analytic, numeric
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d f / d input for every float input that requires grad.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace bridle
