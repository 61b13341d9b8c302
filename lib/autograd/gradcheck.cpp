// Finite-difference gradient check; see gradcheck.h.
#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/node.h"
#include "core/factory.h"

namespace bridle {
namespace {

// s = sum(f(inputs) * weights), in double.
double projected(const GradcheckFn& f, const std::vector<Tensor>& inputs, const Tensor& weights) {
  NoGradGuard no_grad;
  Tensor out = f(inputs);
  const float* o = out.data<float>();
  const float* w = weights.data<float>();
  double s = 0.0;
  for (int64_t i = 0; i < out.numel(); ++i) s += static_cast<double>(o[i]) * w[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  GradcheckResult result;
  Generator gen(options.seed);

  // Analytic: backward of the projection, on fresh leaves that share the data.
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor leaf = t.detach();
    if (t.requires_grad()) leaf.set_requires_grad();
    leaves.push_back(leaf);
  }
  Tensor out = f(leaves);
  BRIDLE_CHECK(out.is_float(), "gradcheck: the function must return a float tensor");
  Tensor weights = uniform(out.shape(), -1.0f, 1.0f, gen);
  if (!out.requires_grad()) {
    result.ok = false;
    result.message = "the output does not require grad: nothing was recorded";
    return result;
  }
  out.backward(weights);

  // Numeric: central differences on each element of each input that requires grad.
  for (size_t k = 0; k < leaves.size(); ++k) {
    const Tensor& leaf = leaves[k];
    if (!leaf.requires_grad()) continue;
    Tensor analytic = leaf.grad();
    float* x = leaf.data<float>();
    for (int64_t i = 0; i < leaf.numel(); ++i) {
      float saved = x[i];
      x[i] = saved + static_cast<float>(options.eps);
      double plus = projected(f, leaves, weights);
      x[i] = saved - static_cast<float>(options.eps);
      double minus = projected(f, leaves, weights);
      x[i] = saved;
      double numeric = (plus - minus) / (2.0 * options.eps);
      double got = analytic.defined() ? analytic.data<float>()[i] : 0.0;
      double error = std::abs(got - numeric);
      result.max_abs_error = std::max(result.max_abs_error, error);
      if (result.ok && error > options.atol + options.rtol * std::abs(numeric)) {
        result.ok = false;
        result.message = fmt::format(
            "input {} (shape {}) element {}: backward gives {:.6g}, finite differences {:.6g}", k,
            shape_str(leaf.shape()), i, got, numeric);
      }
    }
  }
  return result;
}

}  // namespace bridle
