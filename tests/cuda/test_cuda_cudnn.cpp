// conv2d, max / avg pooling and batch_norm on the GPU (cuDNN: ops/conv.cu,
// pool.cu, batch_norm.cu; dilated max pooling is a kernel of ours in pool.cu)
// against the CPU ops on real shapes: the forward, every gradient, and batch
// norm's running statistics. Each test skips (and is reported skipped) without
// a GPU.
//
// Tolerances: cuDNN sums in another order than oneDNN (and picks its algorithm
// per shape), in FP32 without TF32, so a sum over K terms differs by a few ulps
// times sqrt(K); 1e-4 absolute plus 1e-3 relative covers the sums here (up to
// ~600 terms per output, ~2000 per weight gradient) with room to spare.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "bridle.h"
#include "cuda_test_util.h"

namespace bridle {
namespace {

using testing::expect_error;
using testing::expect_matches_cpu;

const Device kGpu = Device::cuda();
constexpr float kAtol = 1e-4f, kRtol = 1e-3f;

// A fresh leaf on `device` with t's values that requires grad (undefined stays undefined).
Tensor leaf_on(const Tensor& t, Device device) {
  return t.defined() ? t.to(device).detach().set_requires_grad() : Tensor();
}

// A case's name as a test name: "3x3 pad 1" -> "3x3_pad_1".
std::string test_name(std::string name) {
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

// --- conv2d -------------------------------------------------------------------------

struct ConvCase {
  std::string name;
  int64_t N, C, H, W, O, K;
  Conv2dOptions options;
  bool bias;
};

// gtest prints a parameter in test listings and failures: its name, not its bytes.
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

class CudnnConv2d : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CudnnConv2d, MatchesCpuForwardAndEveryGradient) {
  BRIDLE_REQUIRE_CUDA();
  const ConvCase& c = GetParam();
  Generator gen(c.N * 131 + c.C * 17 + c.K);
  Tensor x = randn({c.N, c.C, c.H, c.W}, gen);
  Tensor w = randn({c.O, c.C / c.options.groups, c.K, c.K}, gen) * 0.2f;
  Tensor b = c.bias ? randn({c.O}, gen) : Tensor();
  struct Run {
    Tensor y, dx, dw, db;
  };
  auto run = [&](Device device, const Tensor& g) {
    Tensor xl = leaf_on(x, device), wl = leaf_on(w, device), bl = leaf_on(b, device);
    Tensor y = conv2d(xl, wl, bl, c.options);
    if (g.defined()) y.backward(g.to(device));
    return Run{y, xl.grad(), wl.grad(), bl.defined() ? bl.grad() : Tensor()};
  };
  Run cpu = run(Device::cpu(), Tensor());
  Tensor g = randn(cpu.y.shape(), gen);
  cpu = run(Device::cpu(), g);
  Run gpu = run(kGpu, g);
  expect_matches_cpu(gpu.y, cpu.y, c.name + " forward", kAtol, kRtol);
  expect_matches_cpu(gpu.dx, cpu.dx, c.name + " dx", kAtol, kRtol);
  expect_matches_cpu(gpu.dw, cpu.dw, c.name + " dweight", kAtol, kRtol);
  if (c.bias) expect_matches_cpu(gpu.db, cpu.db, c.name + " dbias", kAtol, kRtol);
}

Conv2dOptions conv_options(int64_t stride, int64_t padding, int64_t dilation = 1,
                           int64_t groups = 1) {
  Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = {padding, padding};
  o.dilation = {dilation, dilation};
  o.groups = groups;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    CudnnShapes, CudnnConv2d,
    ::testing::Values(
        ConvCase{"3x3 pad 1 bias", 4, 3, 16, 16, 8, 3, conv_options(1, 1), true},
        ConvCase{"3x3 stride 2 pad 1 no bias", 2, 8, 15, 15, 16, 3, conv_options(2, 1), false},
        ConvCase{"1x1 bias", 3, 16, 7, 9, 32, 1, conv_options(1, 0), true},
        ConvCase{"5x5 stride 2 no pad bias", 2, 4, 12, 10, 6, 5, conv_options(2, 0), true},
        ConvCase{"3x3 dilation 2 groups 2", 2, 8, 11, 11, 4, 3, conv_options(1, 2, 2, 2), true}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return test_name(info.param.name); });

// A second backward into the same leaves adds to their gradients (cuDNN's beta = 1).
TEST(CudnnConv2dGrad, AccumulatesAcrossBackwardCalls) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(7);
  Tensor x = randn({2, 3, 8, 8}, gen), w = randn({4, 3, 3, 3}, gen), b = randn({4}, gen);
  Tensor g = randn({2, 4, 8, 8}, gen);
  std::vector<Tensor> grads[2];
  for (Device device : {Device::cpu(), kGpu}) {
    Tensor xl = leaf_on(x, device), wl = leaf_on(w, device), bl = leaf_on(b, device);
    for (int pass = 0; pass < 2; ++pass)
      conv2d(xl, wl, bl, conv_options(1, 1)).backward(g.to(device));
    grads[device.is_cuda()] = {xl.grad(), wl.grad(), bl.grad()};
  }
  expect_matches_cpu(grads[1][0], grads[0][0], "twice dx", kAtol, kRtol);
  expect_matches_cpu(grads[1][1], grads[0][1], "twice dweight", kAtol, kRtol);
  expect_matches_cpu(grads[1][2], grads[0][2], "twice dbias", kAtol, kRtol);
}

// --- pooling ------------------------------------------------------------------------

struct PoolCase {
  std::string name;
  bool max;
  int64_t N, C, H, W, K, stride, padding;
  bool count_include_pad;
};

// gtest prints a parameter in test listings and failures: its name, not its bytes.
void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name; }

class CudnnPool2d : public ::testing::TestWithParam<PoolCase> {};

TEST_P(CudnnPool2d, MatchesCpuForwardAndBackward) {
  BRIDLE_REQUIRE_CUDA();
  const PoolCase& c = GetParam();
  Generator gen(c.H * 31 + c.K);
  Tensor x = randn({c.N, c.C, c.H, c.W}, gen);  // continuous values: no ties for max
  auto pool = [&](const Tensor& t) {
    return c.max ? max_pool2d(t, c.K, c.stride, c.padding)
                 : avg_pool2d(t, c.K, c.stride, c.padding, c.count_include_pad);
  };
  Tensor x_cpu = leaf_on(x, Device::cpu()), x_gpu = leaf_on(x, kGpu);
  Tensor y_cpu = pool(x_cpu), y_gpu = pool(x_gpu);
  Tensor g = randn(y_cpu.shape(), gen);
  y_cpu.backward(g);
  y_gpu.backward(g.to(kGpu));
  expect_matches_cpu(y_gpu, y_cpu, c.name + " forward", 1e-6f, 1e-5f);
  expect_matches_cpu(x_gpu.grad(), x_cpu.grad(), c.name + " dx", 1e-6f, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(
    CudnnShapes, CudnnPool2d,
    ::testing::Values(
        PoolCase{"max 2x2 stride 2", true, 2, 3, 8, 8, 2, 2, 0, true},
        PoolCase{"max 3x3 stride 2 pad 1", true, 2, 4, 13, 11, 3, 2, 1, true},
        PoolCase{"avg 2x2 stride 2", false, 2, 3, 8, 8, 2, 2, 0, true},
        PoolCase{"avg 3x3 stride 1 pad 1 include pad", false, 2, 3, 9, 7, 3, 1, 1, true},
        PoolCase{"avg 3x3 stride 2 pad 1 exclude pad", false, 2, 3, 9, 7, 3, 2, 1, false}),
    [](const ::testing::TestParamInfo<PoolCase>& info) { return test_name(info.param.name); });

TEST(CudnnPool2dGlobal, GlobalAveragePoolMatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({1, 2, 8, 8}).to(kGpu);
  // Even windows are an average pool through cuDNN; uneven ones have their own
  // kernel (tested in test_cuda_layout_ops.cpp).
  expect_matches_cpu(adaptive_avg_pool2d(x, 1), adaptive_avg_pool2d(x.to(Device::cpu()), 1),
                     "global average pool", 1e-6f, 1e-5f);
}

// --- dilated max pooling (cuDNN has no dilation: kernels of ours in pool.cu) ------

struct DilatedPoolCase {
  std::string name;
  int64_t N, C, H, W;
  Size2 kernel, stride, padding, dilation;
};

// gtest prints a parameter in test listings and failures: its name, not its bytes.
void PrintTo(const DilatedPoolCase& c, std::ostream* os) { *os << c.name; }

class CudaDilatedMaxPool2d : public ::testing::TestWithParam<DilatedPoolCase> {};

Tensor dilated_max_pool(const Tensor& x, const DilatedPoolCase& c) {
  return max_pool2d(x, c.kernel, c.stride, c.padding, c.dilation);
}

// Overlapping windows (stride 1) send several gradients to one element, which
// the GPU adds in another order than oneDNN: the tolerance of the cuDNN cases.
TEST_P(CudaDilatedMaxPool2d, MatchesCpuForwardAndBackward) {
  BRIDLE_REQUIRE_CUDA();
  const DilatedPoolCase& c = GetParam();
  Generator gen(c.H * 37 + c.W * 5 + c.dilation[1]);
  Tensor x = randn({c.N, c.C, c.H, c.W}, gen);  // continuous values: no ties
  Tensor x_cpu = leaf_on(x, Device::cpu()), x_gpu = leaf_on(x, kGpu);
  Tensor y_cpu = dilated_max_pool(x_cpu, c), y_gpu = dilated_max_pool(x_gpu, c);
  Tensor g = randn(y_cpu.shape(), gen);
  y_cpu.backward(g);
  y_gpu.backward(g.to(kGpu));
  expect_matches_cpu(y_gpu, y_cpu, c.name + " forward", 0.0f, 0.0f);
  expect_matches_cpu(x_gpu.grad(), x_cpu.grad(), c.name + " dx", 1e-6f, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(
    CudaDilatedShapes, CudaDilatedMaxPool2d,
    ::testing::Values(
        DilatedPoolCase{"2x2 dilation 2 stride 1", 2, 3, 9, 8, {2, 2}, {1, 1}, {0, 0}, {2, 2}},
        DilatedPoolCase{"3x3 dilation 2 stride 2", 2, 3, 12, 11, {3, 3}, {2, 2}, {0, 0}, {2, 2}},
        DilatedPoolCase{
            "3x3 dilation 2 stride 1 pad 1", 2, 4, 10, 9, {3, 3}, {1, 1}, {1, 1}, {2, 2}},
        DilatedPoolCase{
            "3x3 dilation 2 stride 2 pad 1", 2, 4, 13, 11, {3, 3}, {2, 2}, {1, 1}, {2, 2}},
        DilatedPoolCase{
            "3x2 dilation 2x3 stride 1 pad 1", 2, 3, 11, 10, {3, 2}, {1, 1}, {1, 1}, {2, 3}},
        DilatedPoolCase{"3x2 dilation 2x3 stride 2x1", 1, 5, 12, 9, {3, 2}, {2, 1}, {0, 0}, {2, 3}},
        DilatedPoolCase{"dilation 1x2 only", 2, 2, 8, 9, {2, 3}, {2, 1}, {1, 1}, {1, 2}}),
    [](const ::testing::TestParamInfo<DilatedPoolCase>& info) {
      return test_name(info.param.name);
    });

// A NaN wins every window it is in and propagates (PyTorch's rule; a later NaN
// in the same window takes over). oneDNN's NaN handling is not guaranteed
// (pool.h), so the reference here is the naive CPU kernel.
TEST(CudaDilatedMaxPool2dNaN, PropagatesAndTakesTheGradient) {
  BRIDLE_REQUIRE_CUDA();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Generator gen(11);
  Tensor x = randn({1, 2, 7, 7}, gen);
  // Two NaNs two columns apart: taps of the same windows with dilation 2.
  x.set({0, 1, 3, 2}, nan);
  x.set({0, 1, 3, 4}, nan);
  // OH = OW = (7 + 2 - 5) / 1 + 1: the span of 3 taps 2 apart is 5.
  PoolGeometry geometry{1, 2, 7, 7, 5, 5, 3, 3, 1, 1, 1, 1, 2, 2};
  Tensor x_gpu = leaf_on(x, kGpu);
  Tensor y_gpu = max_pool2d(x_gpu, {3, 3}, {1, 1}, {1, 1}, {2, 2});
  Tensor g = randn({1, 2, 5, 5}, gen);
  y_gpu.backward(g.to(kGpu));

  Tensor y = Tensor::empty({1, 2, 5, 5}), argmax = Tensor::empty({1, 2, 5, 5}, kInt64);
  cpu::max_pool2d_forward_naive(y.data<float>(), argmax.data<int64_t>(), x.data<float>(), geometry);
  Tensor dx = zeros({1, 2, 7, 7});
  cpu::max_pool2d_backward_naive(dx.data<float>(), argmax.data<int64_t>(), g.data<float>(),
                                 geometry);
  EXPECT_TRUE(std::isnan(y_gpu.at({0, 1, 2, 1})));  // rows 1, 3, 5 x columns 0, 2, 4
  expect_matches_cpu(y_gpu, y, "forward with NaNs", 0.0f, 0.0f);
  expect_matches_cpu(x_gpu.grad(), dx, "dx with NaNs", 1e-6f, 1e-5f);
}

// The gradient kernel overwrites a fresh gradient and adds into an existing
// one: two uses of the same leaf in one graph, then a second backward() with
// another geometry, against the CPU op doing the same.
TEST(CudaDilatedMaxPool2dGrad, AccumulatesIntoAnExistingGradient) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(13);
  Tensor x = randn({2, 3, 10, 9}, gen);
  auto pool_a = [](const Tensor& t) { return max_pool2d(t, {3, 3}, {1, 1}, {1, 1}, {2, 2}); };
  auto pool_b = [](const Tensor& t) { return max_pool2d(t, {3, 2}, {2, 1}, {1, 1}, {2, 3}); };
  Tensor x_cpu = leaf_on(x, Device::cpu()), x_gpu = leaf_on(x, kGpu);
  Tensor ga = randn(pool_a(x_cpu).shape(), gen), gb = randn(pool_b(x_cpu).shape(), gen);
  for (const Tensor& leaf : {x_cpu, x_gpu}) {
    const Device device = leaf.device();
    (pool_a(leaf) + pool_a(leaf)).backward(ga.to(device));
    pool_b(leaf).backward(gb.to(device));
  }
  expect_matches_cpu(x_gpu.grad(), x_cpu.grad(), "dx after two uses and two backward calls", 1e-6f,
                     1e-5f);
}

// --- batch_norm ---------------------------------------------------------------------

struct BatchNormCase {
  std::string name;
  Shape shape;
  bool training, affine, running;
};

// gtest prints a parameter in test listings and failures: its name, not its bytes.
void PrintTo(const BatchNormCase& c, std::ostream* os) { *os << c.name; }

class CudnnBatchNorm : public ::testing::TestWithParam<BatchNormCase> {};

TEST_P(CudnnBatchNorm, MatchesCpuOutputGradientsAndRunningStatistics) {
  BRIDLE_REQUIRE_CUDA();
  const BatchNormCase& c = GetParam();
  const int64_t C = c.shape[1];
  Generator gen(C * 13 + static_cast<int64_t>(c.shape.size()));
  Tensor x = randn(c.shape, gen) * 2.0f + 0.5f;
  Tensor weight = c.affine ? randn({C}, gen) : Tensor();
  Tensor bias = c.affine ? randn({C}, gen) : Tensor();
  Tensor running_mean = c.running ? randn({C}, gen) * 0.1f : Tensor();
  Tensor running_var = c.running ? rand({C}, gen) + 0.5f : Tensor();
  Tensor g = randn(c.shape, gen);
  struct Run {
    Tensor y, dx, dw, db, running_mean, running_var;
  };
  auto run = [&](Device device) {
    Tensor xl = leaf_on(x, device), wl = leaf_on(weight, device), bl = leaf_on(bias, device);
    Tensor rm = c.running ? running_mean.to(device).clone() : Tensor();
    Tensor rv = c.running ? running_var.to(device).clone() : Tensor();
    Tensor y = batch_norm(xl, rm, rv, wl, bl, c.training, 0.1f, 1e-5f);
    y.backward(g.to(device));
    return Run{y,  xl.grad(), c.affine ? wl.grad() : Tensor(), c.affine ? bl.grad() : Tensor(),
               rm, rv};
  };
  Run cpu = run(Device::cpu()), gpu = run(kGpu);
  expect_matches_cpu(gpu.y, cpu.y, c.name + " forward", kAtol, kRtol);
  expect_matches_cpu(gpu.dx, cpu.dx, c.name + " dx", kAtol, kRtol);
  if (c.affine) {
    expect_matches_cpu(gpu.dw, cpu.dw, c.name + " dweight", kAtol, kRtol);
    expect_matches_cpu(gpu.db, cpu.db, c.name + " dbias", kAtol, kRtol);
  }
  if (c.running) {
    expect_matches_cpu(gpu.running_mean, cpu.running_mean, c.name + " running_mean", 1e-5f, 1e-4f);
    expect_matches_cpu(gpu.running_var, cpu.running_var, c.name + " running_var", 1e-5f, 1e-4f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    CudnnModes, CudnnBatchNorm,
    ::testing::Values(BatchNormCase{"train NCHW affine running", {8, 6, 5, 7}, true, true, true},
                      BatchNormCase{"train NCHW plain", {4, 3, 6, 6}, true, false, false},
                      BatchNormCase{"train NC affine running", {32, 10}, true, true, true},
                      BatchNormCase{"eval NCHW affine", {8, 6, 5, 7}, false, true, true},
                      BatchNormCase{"eval NC no affine", {16, 5}, false, false, true}),
    [](const ::testing::TestParamInfo<BatchNormCase>& info) { return test_name(info.param.name); });

}  // namespace
}  // namespace bridle
