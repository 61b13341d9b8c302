// Helpers of the CUDA tests: the skip every GPU test starts with, the
// comparison of a GPU result with the CPU reference, and running an op and its
// backward on either device.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "bridle.h"

namespace bridle::testing {

// Every test that needs a GPU starts with this: without one it is reported as
// skipped, never as passed.
#define BRIDLE_REQUIRE_CUDA()                                                                     \
  do {                                                                                            \
    if (!::bridle::cuda_is_available()) GTEST_SKIP() << "no CUDA device (this test needs a GPU)"; \
  } while (0)

// Element by element, |gpu - cpu| <= atol + rtol |cpu|, reporting the worst
// element; `what` names the quantity in the failure.
inline void expect_matches_cpu(const Tensor& gpu, const Tensor& cpu, const std::string& what,
                               float atol = 1e-5f, float rtol = 1e-4f) {
  ASSERT_TRUE(gpu.defined()) << what << ": the GPU result is undefined";
  ASSERT_TRUE(cpu.defined()) << what << ": the CPU result is undefined";
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  ASSERT_TRUE(gpu.device().is_cuda())
      << what << ": expected a GPU tensor, got " << gpu.device().str();
  const std::vector<float> g = gpu.to_vector(), c = cpu.to_vector();
  int64_t worst = -1;
  double worst_excess = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double excess = std::abs(double{g[i]} - c[i]) - (atol + rtol * std::abs(c[i]));
    if (excess > worst_excess || (std::isnan(g[i]) != std::isnan(c[i]))) {
      worst_excess = std::isnan(excess) ? 1e30 : excess;
      worst = static_cast<int64_t>(i);
    }
  }
  EXPECT_LT(worst, 0) << what << " " << shape_str(cpu.shape()) << ": element " << worst << " is "
                      << (worst >= 0 ? g[worst] : 0.0f) << " on the GPU, "
                      << (worst >= 0 ? c[worst] : 0.0f) << " on the CPU";
}

// A fresh leaf on the device that requires grad, with x's values.
inline Tensor leaf_on(const Tensor& x, Device device) {
  return x.to(device).detach().set_requires_grad();
}

struct Results {
  Tensor out, grad;
};

// Runs f on a copy of x on `device`, then backward with the upstream gradient g;
// returns the output and x's gradient.
template <typename F>
Results run_on(Device device, const Tensor& x, const Tensor& g, F f) {
  Tensor leaf = leaf_on(x, device);
  Tensor out = f(leaf);
  out.backward(g.to(device));
  return {out, leaf.grad()};
}

// f on the CPU and on the GPU: the outputs and x's gradients must match.
template <typename F>
void expect_same_on_both(const std::string& what, const Tensor& x, const Tensor& g, F f,
                         float atol = 1e-5f, float rtol = 1e-4f) {
  Results cpu = run_on(Device::cpu(), x, g, f);
  Results gpu = run_on(Device::cuda(), x, g, f);
  expect_matches_cpu(gpu.out, cpu.out, what + " forward", atol, rtol);
  expect_matches_cpu(gpu.grad, cpu.grad, what + " backward", atol, rtol);
}

}  // namespace bridle::testing
