// Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks",
// 2017): divide every logit by one scalar T > 0 fitted on held-out data, which
// leaves the argmax (so the accuracy) unchanged and fixes most of a network's
// over- or under-confidence.
//
// Fitting minimizes the mean NLL of softmax(z / T) over held-out logits z [N, C]
// (collected once, in eval mode) and labels [N]. With b = 1 / T that NLL is
//   f(b) = mean_i [ logsumexp(b z_i) - b z_iy ],
//   f'(b) = mean_i [ E_p[z_i] - z_iy ],   f''(b) = mean_i Var_p[z_i] >= 0,
// p = softmax(b z_i): convex in b. The fit runs Newton's method on u = log T
// (unconstrained, so T stays positive) in double precision, with a backtracking
// line search so that every step lowers the NLL; it starts at T = 1 and stops at
// |df/du| < gradient_tolerance. T is kept in [1e-3, 1e3]: on separable data the
// NLL keeps falling as T -> 0, and the fit runs towards the lower bound (stopping
// there, with converged = false, or where the gradient vanishes first).
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace bridle {

struct TemperatureFitOptions {
  double gradient_tolerance = 1e-9;  // on d NLL / d log T
  int max_iterations = 100;
};

struct TemperatureFit {
  double temperature = 1.0;
  double nll_before = 0.0;  // at T = 1
  double nll_after = 0.0;   // at the fitted T; never above nll_before
  int iterations = 0;
  bool converged = false;
};

// Fits T on logits [N, C] float32 and labels [N] int32/int64 in [0, C).
TemperatureFit fit_temperature(const Tensor& logits, const Tensor& labels,
                               const TemperatureFitOptions& options = {});

// The mean NLL of softmax(logits / temperature) against labels, in double.
double temperature_nll(const Tensor& logits, const Tensor& labels, double temperature);

// The calibrator as a module: forward(logits) = logits / T. T is a buffer named
// "temperature" (shape [1]), so a model that registers the calibrator as a child
// saves and restores it with its checkpoint.
class TemperatureScaling : public Module {
 public:
  TemperatureScaling();
  // Fits T on held-out logits and labels and keeps it.
  TemperatureFit fit(const Tensor& logits, const Tensor& labels,
                     const TemperatureFitOptions& options = {});
  Tensor forward(const Tensor& logits) override;
  double temperature() const;
  void set_temperature(double temperature);

 protected:
  std::string extra_repr() const override;

 private:
  Tensor temperature_;  // [1]
};

}  // namespace bridle
