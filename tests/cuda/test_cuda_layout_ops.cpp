// The layout, activation and reduction ops on the GPU against the CPU ops:
// transpose, cat, gelu, leaky_relu, pow, max, logsumexp, safe / masked softmax,
// adaptive_avg_pool2d and attention (their kernels: ops/shape.cu,
// activations.cu, elementwise.cu, reduce.cu, softmax.cu, pool.cu). Each op is
// checked forward and for every gradient on real shapes, by gradcheck through
// the GPU, and for its errors, which must read as on the CPU. Each test skips
// (and is reported skipped) without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "../test_util.h"
#include "bridle.h"
#include "cuda_test_util.h"

namespace bridle {
namespace {

using testing::expect_error;
using testing::expect_gradcheck;
using testing::expect_matches_cpu;
using testing::expect_same_on_both;
using testing::leaf_on;
using testing::Results;
using testing::run_on;

const Device kGpu = Device::cuda();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs f on leaves on `device` with the values of inputs, then backward with g;
// returns the output followed by every input's gradient.
template <typename F>
std::vector<Tensor> run_many_on(Device device, const std::vector<Tensor>& inputs, const Tensor& g,
                                F f) {
  std::vector<Tensor> leaves;
  for (const Tensor& x : inputs) leaves.push_back(leaf_on(x, device));
  Tensor out = f(leaves);
  out.backward(g.to(device));
  std::vector<Tensor> results{out};
  for (const Tensor& leaf : leaves) results.push_back(leaf.grad());
  return results;
}

template <typename F>
void expect_many_same_on_both(const std::string& what, const std::vector<Tensor>& inputs,
                              const Tensor& g, F f, float atol = 1e-5f, float rtol = 1e-4f) {
  std::vector<Tensor> cpu = run_many_on(Device::cpu(), inputs, g, f);
  std::vector<Tensor> gpu = run_many_on(kGpu, inputs, g, f);
  expect_matches_cpu(gpu[0], cpu[0], what + " forward", atol, rtol);
  for (size_t k = 1; k < cpu.size(); ++k)
    expect_matches_cpu(gpu[k], cpu[k], what + " gradient of input " + std::to_string(k - 1), atol,
                       rtol);
}

// The message f throws, or a note that it threw nothing.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The GPU call fails with the CPU call's message, which names every fragment.
template <typename F, typename G>
void expect_same_error(F on_cpu, G on_gpu, const std::vector<std::string>& fragments) {
  const std::string cpu = error_of(on_cpu), gpu = error_of(on_gpu);
  EXPECT_EQ(gpu, cpu);
  for (const auto& fragment : fragments)
    EXPECT_NE(cpu.find(fragment), std::string::npos)
        << "message '" << cpu << "' lacks '" << fragment << "'";
}

// --- transpose, cat ---------------------------------------------------------------------

TEST(CudaTranspose, MatchesCpuForwardAndBackward) {
  BRIDLE_REQUIRE_CUDA();
  struct Case {
    Shape shape;
    int64_t dim0, dim1;
  };
  // A matrix, attention's k^T over batched heads, and dims with others between
  // and after them.
  for (const Case& c : {Case{{64, 130}, 0, 1}, Case{{8, 50, 64}, -2, -1}, Case{{4, 5, 6, 7}, 1, 3},
                        Case{{4, 5, 6, 7}, 2, 0}, Case{{3, 1, 2}, 0, 1}, Case{{3, 4}, 1, -1}}) {
    Generator gen(static_cast<uint64_t>(c.shape.size() * 11 + c.dim1));
    Tensor x = randn(c.shape, gen);
    Shape out_shape = c.shape;
    const int64_t rank = static_cast<int64_t>(c.shape.size());
    std::swap(out_shape[(c.dim0 + rank) % rank], out_shape[(c.dim1 + rank) % rank]);
    Tensor g = randn(out_shape, gen);
    const int64_t d0 = c.dim0, d1 = c.dim1;
    expect_same_on_both(
        "transpose " + shape_str(c.shape) + " " + std::to_string(d0) + "," + std::to_string(d1), x,
        g, [d0, d1](const Tensor& t) { return transpose(t, d0, d1); });
  }
}

TEST(CudaTranspose, IntegerTensorsMoveEveryBit) {
  BRIDLE_REQUIRE_CUDA();
  std::vector<int64_t> big(24);
  std::vector<int32_t> small(24);
  for (int64_t i = 0; i < 24; ++i) {
    big[i] = (int64_t{1} << 40) + i * 7919;  // high words matter
    small[i] = static_cast<int32_t>(i * 31 - 300);
  }
  Tensor b = from_vector(big, {2, 3, 4}), s = from_vector(small, {2, 3, 4});
  EXPECT_EQ(transpose(b.cuda(), 0, 2).to_int_vector(), transpose(b, 0, 2).to_int_vector());
  EXPECT_EQ(transpose(s.cuda(), 1, 2).to_int_vector(), transpose(s, 1, 2).to_int_vector());
  EXPECT_TRUE(transpose(b.cuda(), 0, 2).device().is_cuda());
}

TEST(CudaCat, MatchesCpuAlongEveryDim) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(5);
  for (int64_t dim = 0; dim < 3; ++dim) {
    Shape a{4, 5, 6}, b{4, 5, 6}, c{4, 5, 6};
    b[dim] = 3;
    c[dim] = 1;
    Shape out = a;
    out[dim] = a[dim] + b[dim] + c[dim];
    expect_many_same_on_both("cat dim " + std::to_string(dim),
                             {randn(a, gen), randn(b, gen), randn(c, gen)}, randn(out, gen),
                             [dim](const std::vector<Tensor>& t) { return cat(t, dim); });
  }
  // A batch of rows of different lengths along the last dim, as joined features.
  expect_many_same_on_both("cat [128, 300] + [128, 20]", {randn({128, 300}), randn({128, 20})},
                           randn({128, 320}),
                           [](const std::vector<Tensor>& t) { return cat(t, -1); });
}

TEST(CudaCat, SameTensorTwiceAccumulatesAndConstantsGetNoGradient) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({3, 4}), constant = randn({2, 4}), g = randn({8, 4});
  // x's first block writes its fresh gradient, the second adds to it.
  expect_same_on_both("cat(x, x)", x, g, [&](const Tensor& t) {
    return cat({t, constant.to(t.device()), t}, 0);
  });
  Tensor leaf = leaf_on(x, kGpu);
  Tensor c = randn({3, 2}).cuda();
  cat({leaf, c}, 1).backward(randn({3, 6}).cuda());
  EXPECT_FALSE(c.grad().defined());
  EXPECT_TRUE(leaf.grad().defined());
}

TEST(CudaCat, IntegerTensors) {
  BRIDLE_REQUIRE_CUDA();
  Tensor a = from_vector(std::vector<int64_t>{1, 2, int64_t{1} << 40, 4}, {2, 2});
  Tensor b = from_vector(std::vector<int64_t>{5, 6}, {2, 1});
  EXPECT_EQ(cat({a.cuda(), b.cuda()}, 1).to_int_vector(), cat({a, b}, 1).to_int_vector());
  Tensor c = from_vector(std::vector<int32_t>{7, 8, 9}, {3});
  Tensor d = from_vector(std::vector<int32_t>{-1}, {1});
  EXPECT_EQ(cat({c.cuda(), d.cuda()}, 0).to_int_vector(), (std::vector<int64_t>{7, 8, 9, -1}));
}

TEST(CudaCat, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor a = randn({2, 3}), b = randn({4, 4});
  expect_same_error(
      [&] {
        cat({a, b}, 0);
      },
      [&] {
        cat({a.cuda(), b.cuda()}, 0);
      },
      {"cat", "tensor 1", "[4, 4]"});
  expect_same_error([&] { transpose(a, 0, 2); }, [&] { transpose(a.cuda(), 0, 2); },
                    {"transpose", "dim 2"});
  expect_error([&] { cat({a.cuda(), a}, 0); }, {"cat", "different devices"});
}

TEST(CudaLayoutGrad, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({3, 4, 2}).set_requires_grad();
  Tensor y = randn({3, 2, 2}).set_requires_grad();
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return transpose(in[0].cuda(), 0, 2).cpu(); }, {x});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return cat({in[0].cuda(), in[1].cuda(), in[0].cuda()}, 1).cpu();
      },
      {x, y});
}

// --- gelu, leaky_relu, pow ----------------------------------------------------------------

TEST(CudaActivations, MatchCpuForwardAndBackward) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(3);
  Tensor x = randn({1000, 3}, gen) * 3.0f;
  x.set({0, 0}, 0.0f);  // the kink of leaky_relu
  x.set({0, 1}, -12.0f);
  x.set({0, 2}, 12.0f);
  Tensor g = randn({1000, 3}, gen);
  expect_same_on_both("gelu", x, g, [](const Tensor& t) { return gelu(t); });
  expect_same_on_both("gelu tanh", x, g, [](const Tensor& t) { return gelu(t, "tanh"); });
  expect_same_on_both("leaky_relu", x, g, [](const Tensor& t) { return leaky_relu(t); });
  expect_same_on_both("leaky_relu 0.2", x, g, [](const Tensor& t) { return leaky_relu(t, 0.2f); });
  // Used twice: the second backward adds to the first's gradient.
  expect_same_on_both("gelu(x) + leaky_relu(x)", x, g,
                      [](const Tensor& t) { return gelu(t, "tanh") + leaky_relu(t, -0.5f); });
}

TEST(CudaActivations, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({4});
  expect_same_error([&] { gelu(x, "fast"); }, [&] { gelu(x.cuda(), "fast"); },
                    {"gelu", "\"fast\""});
  expect_same_error([&] { leaky_relu(x, kInf); }, [&] { leaky_relu(x.cuda(), kInf); },
                    {"leaky_relu", "finite"});
}

TEST(CudaPow, TensorAndScalarExponentsMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(9);
  Tensor base = rand({64, 10}, gen) * 2.0f + 0.25f;  // positive: ln(base) is defined
  Tensor g = randn({64, 10}, gen);
  for (float p : {2.0f, 3.0f, 0.5f, -1.5f})
    expect_same_on_both("pow scalar " + std::to_string(p), base, g,
                        [p](const Tensor& t) { return pow(t, p); });
  // A negative base with an integer exponent, through x * x for p = 2.
  expect_same_on_both("pow of negatives", randn({50}, gen), randn({50}, gen),
                      [](const Tensor& t) { return pow(t, 2.0f) + pow(t, 3.0f); });
  // A broadcast exponent's gradient sums up to 640 terms, atomically on the GPU
  // (in no fixed order): a looser absolute tolerance.
  for (const Shape& e_shape : {Shape{64, 10}, Shape{10}, Shape{64, 1}, Shape{}}) {
    Tensor exponent = randn(e_shape, gen) * 0.5f;
    expect_many_same_on_both(
        "pow tensor exponent " + shape_str(e_shape), {base, exponent}, g,
        [](const std::vector<Tensor>& t) { return pow(t[0], t[1]); }, 1e-4f, 1e-4f);
  }
}

TEST(CudaActivations, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  // Away from leaky_relu's kink, which finite differences would straddle.
  Tensor x = from_vector({-1.5f, -0.7f, 0.4f, 1.2f, 2.0f, -0.3f}, {2, 3}).set_requires_grad();
  expect_gradcheck([](const std::vector<Tensor>& in) { return gelu(in[0].cuda()).cpu(); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return gelu(in[0].cuda(), "tanh").cpu(); },
                   {x});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return leaky_relu(in[0].cuda(), 0.1f).cpu(); }, {x});
  Tensor base = (rand({2, 3}) + 0.5f).set_requires_grad();
  Tensor exponent = randn({3}).set_requires_grad();
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return pow(in[0].cuda(), in[1].cuda()).cpu(); },
      {base, exponent});
  expect_gradcheck([](const std::vector<Tensor>& in) { return pow(in[0].cuda(), 2.5f).cpu(); },
                   {base});
}

// --- max, logsumexp -------------------------------------------------------------------

TEST(CudaMaxLogsumexp, MaxMatchesCpuAlongEveryDim) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(13);
  for (const Shape& shape : {Shape{32, 1000}, Shape{5, 4, 3}, Shape{7}}) {
    Tensor x = randn(shape, gen);
    for (int64_t dim = 0; dim < static_cast<int64_t>(shape.size()); ++dim) {
      for (bool keepdim : {false, true}) {
        Shape out = shape;
        if (keepdim)
          out[dim] = 1;
        else
          out.erase(out.begin() + dim);
        expect_same_on_both("max " + shape_str(shape) + " dim " + std::to_string(dim), x,
                            randn(out, gen),
                            [dim, keepdim](const Tensor& t) { return max(t, dim, keepdim); });
      }
    }
  }
  // Ties go to the first maximum, NaN beats everything (its gradient too).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor ties = from_vector({1.0f, 3.0f, 3.0f, -1.0f, nan, 2.0f, -kInf, -kInf, -kInf}, {3, 3});
  expect_same_on_both("max with ties, NaN and -inf", ties, from_vector({1.0f, 2.0f, 3.0f}),
                      [](const Tensor& t) { return max(t, 1); });
}

TEST(CudaMaxLogsumexp, LogsumexpMatchesCpuAlongEveryDim) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(17);
  Tensor x = randn({64, 1000}, gen) * 4.0f;
  expect_same_on_both("logsumexp [64, 1000]", x, randn({64}, gen),
                      [](const Tensor& t) { return logsumexp(t, 1); });
  Tensor y = randn({6, 17, 5}, gen) * 2.0f;
  expect_same_on_both("logsumexp dim 1", y, randn({6, 5}, gen),
                      [](const Tensor& t) { return logsumexp(t, 1); });
  expect_same_on_both("logsumexp dim 0 keepdim", y, randn({1, 17, 5}, gen),
                      [](const Tensor& t) { return logsumexp(t, 0, true); });
  // Large values, -inf entries, and an all -inf row (lse -inf, no gradient).
  Tensor edge =
      from_vector({1000.0f, 1001.0f, 1002.0f, -kInf, 0.0f, -1e4f, -kInf, -kInf, -kInf}, {3, 3});
  expect_same_on_both("logsumexp of edge rows", edge, from_vector({1.0f, -2.0f, 3.0f}),
                      [](const Tensor& t) { return logsumexp(t, -1); });
}

TEST(CudaMaxLogsumexp, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor empty = Tensor::empty({3, 0});
  expect_same_error([&] { max(empty, 1); }, [&] { max(empty.cuda(), 1); },
                    {"max", "dim 1", "empty"});
  expect_same_error([&] { logsumexp(empty, 1); }, [&] { logsumexp(empty.cuda(), 1); },
                    {"logsumexp", "dim 1", "empty"});
  Tensor x = randn({2, 3});
  expect_same_error([&] { max(x, 2); }, [&] { max(x.cuda(), 2); }, {"max", "dim 2"});
}

TEST(CudaMaxLogsumexp, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  // Distinct values, far enough apart that finite differences keep each row's maximum.
  Tensor x =
      from_vector({0.3f, -1.2f, 2.1f, 0.9f, 1.7f, -0.4f, -2.5f, 1.1f, 0.0f, 3.0f, -0.9f, 0.6f},
                  {3, 4})
          .set_requires_grad();
  expect_gradcheck([](const std::vector<Tensor>& in) { return max(in[0].cuda(), 1).cpu(); }, {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return max(in[0].cuda(), 0).cpu(); }, {x});
  Tensor y = randn({4, 3, 2}).set_requires_grad();
  expect_gradcheck([](const std::vector<Tensor>& in) { return logsumexp(in[0].cuda(), 1).cpu(); },
                   {y});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return logsumexp(in[0].cuda(), -1, true).cpu(); }, {y});
}

// --- safe_softmax, masked_softmax ---------------------------------------------------------

TEST(CudaMaskedSoftmax, MatchesCpuWithEveryKindOfMask) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(21);
  Tensor x = randn({4, 6, 9}, gen) * 2.0f;
  Tensor g = randn({4, 6, 9}, gen);
  // A keep-mask [6, 9] whose row 2 keeps nothing (that row gives zeros).
  std::vector<int64_t> keep(54);
  for (int64_t i = 0; i < 54; ++i) keep[i] = (i / 9 == 2) ? 0 : ((i * 7) % 3 != 0);
  Tensor keep64 = from_vector(keep, {6, 9});
  Tensor keep32 = keep64.to(kInt32);
  Tensor additive = randn({4, 1, 9}, gen);
  additive.set({1, 0, 3}, -kInf);
  auto masked = [](const Tensor& mask, int64_t dim) {
    return [mask, dim](const Tensor& t) { return masked_softmax(t, mask.to(t.device()), dim); };
  };
  expect_same_on_both("masked_softmax int64 keep-mask", x, g, masked(keep64, -1));
  expect_same_on_both("masked_softmax int32 keep-mask", x, g, masked(keep32, -1));
  expect_same_on_both("masked_softmax additive mask", x, g, masked(additive, -1));
  expect_same_on_both("masked_softmax along dim 1", x, g, masked(additive, 1));
  // Long rows and safe_softmax itself, with one all -inf row.
  Tensor long_rows = randn({8, 3000}, gen);
  for (int64_t j = 0; j < 3000; ++j) long_rows.set({5, j}, -kInf);
  expect_same_on_both("safe_softmax [8, 3000]", long_rows, randn({8, 3000}, gen),
                      [](const Tensor& t) { return safe_softmax(t, 1); });
}

TEST(CudaMaskedSoftmax, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = randn({3, 4});
  Tensor mask = from_vector(std::vector<int64_t>{1, 0, 1}, {3});
  expect_same_error([&] { masked_softmax(x, mask); },
                    [&] { masked_softmax(x.cuda(), mask.cuda()); },
                    {"masked_softmax", "[3]", "broadcast"});
  Tensor bad = from_vector({1.0f, 2.0f, 0.0f, 1.0f, nan, 0.0f, kInf, 1.0f}, {4, 2});
  Tensor ones_mask = from_vector(std::vector<int64_t>{1, 1}, {2});
  expect_same_error([&] { masked_softmax(bad, ones_mask); },
                    [&] { masked_softmax(bad.cuda(), ones_mask.cuda()); },
                    {"safe_softmax", "row 2", "no finite maximum"});
  expect_same_error([&] { safe_softmax(bad); }, [&] { safe_softmax(bad.cuda()); },
                    {"safe_softmax", "row 2"});
  Tensor grad_mask = zeros({3, 4}).set_requires_grad();
  expect_same_error([&] { masked_softmax(x, grad_mask); },
                    [&] { masked_softmax(x.cuda(), leaf_on(grad_mask, kGpu)); },
                    {"masked_softmax", "constant"});
  expect_error([&] { masked_softmax(x.cuda(), mask); }, {"masked_softmax", "different devices"});
}

TEST(CudaMaskedSoftmax, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({3, 5}).set_requires_grad();
  Tensor keep =
      from_vector(std::vector<int64_t>{1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1}, {3, 5});
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return masked_softmax(in[0].cuda(), keep.cuda()).cpu();
      },
      {x});
  Tensor y = randn({4, 3, 2}).set_requires_grad();
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return safe_softmax(in[0].cuda(), 1).cpu(); }, {y});
}

// --- adaptive_avg_pool2d ------------------------------------------------------------------

TEST(CudaAdaptiveAvgPool2d, UnevenWindowsMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(25);
  struct Case {
    Shape x;
    Size2 out;
  };
  // Overlapping windows (10 -> 3, 7 -> 4), a plane larger than the input's
  // side (3 -> 5: windows of one element, shared), and a ResNet-like 7 -> 5.
  for (const Case& c :
       {Case{{2, 3, 10, 7}, {3, 4}}, Case{{1, 2, 3, 9}, {5, 4}}, Case{{4, 16, 7, 7}, {5, 5}}}) {
    Tensor x = randn(c.x, gen);
    Tensor g = randn({c.x[0], c.x[1], c.out[0], c.out[1]}, gen);
    const Size2 out = c.out;
    expect_same_on_both("adaptive_avg_pool2d " + shape_str(c.x), x, g,
                        [out](const Tensor& t) { return adaptive_avg_pool2d(t, out); });
  }
}

TEST(CudaAdaptiveAvgPool2d, ErrorsAsOnTheCpuAndGradcheck) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({1, 2, 5, 5});
  expect_same_error(
      [&] {
        adaptive_avg_pool2d(x, Size2{0, 2});
      },
      [&] {
        adaptive_avg_pool2d(x.cuda(), Size2{0, 2});
      },
      {"adaptive_avg_pool2d", "positive"});
  Tensor flat = randn({2, 5});
  expect_same_error([&] { adaptive_avg_pool2d(flat, 2); },
                    [&] { adaptive_avg_pool2d(flat.cuda(), 2); }, {"adaptive_avg_pool2d", "4-D"});
  Tensor small = randn({1, 2, 5, 4}).set_requires_grad();
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return adaptive_avg_pool2d(in[0].cuda(), Size2{3, 3}).cpu();
      },
      {small});
}

// --- attention -----------------------------------------------------------------------------

TEST(CudaAttention, MatchesCpuForQKAndV) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(29);
  Tensor q = randn({4, 6, 8}, gen), k = randn({4, 9, 8}, gen), v = randn({4, 9, 5}, gen);
  Tensor g = randn({4, 6, 5}, gen);
  std::vector<int64_t> keep(54);
  for (int64_t i = 0; i < 54; ++i) keep[i] = (i * 5) % 4 != 0 && i / 9 != 3;  // query 3: nothing
  Tensor keep_mask = from_vector(keep, {6, 9});
  Tensor additive = randn({4, 6, 9}, gen) * 0.5f;
  // cuBLAS and OpenBLAS sum the products in different orders.
  constexpr float kTol = 1e-4f;
  auto attend = [](AttentionOptions options, Tensor mask) {
    return [options, mask](const std::vector<Tensor>& t) mutable {
      if (mask.defined()) options.mask = mask.to(t[0].device());
      return scaled_dot_product_attention(t[0], t[1], t[2], options);
    };
  };
  expect_many_same_on_both("attention", {q, k, v}, g, attend({}, Tensor()), kTol, kTol);
  expect_many_same_on_both("attention causal", {q, k, v}, g, attend({.causal = true}, Tensor()),
                           kTol, kTol);
  expect_many_same_on_both("attention keep-mask", {q, k, v}, g, attend({}, keep_mask), kTol, kTol);
  expect_many_same_on_both("attention additive mask, scale 0.3", {q, k, v}, g,
                           attend({.scale = 0.3f}, additive), kTol, kTol);
  // 2-D inputs, causal with a mask too.
  Tensor q2 = randn({6, 8}, gen), k2 = randn({9, 8}, gen), v2 = randn({9, 5}, gen);
  expect_many_same_on_both("attention 2-D causal keep-mask", {q2, k2, v2}, randn({6, 5}, gen),
                           attend({.causal = true}, keep_mask), kTol, kTol);
}

// The layer with both masks, given on the host or on the GPU: the combined mask
// is built on the host and follows the query to the GPU.
TEST(CudaAttention, MultiheadAttentionWithMasksMatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator cpu_gen(31), gpu_gen(31), gen(32);  // the same seed: the same weights
  MultiheadAttention cpu_layer(8, 2, /*bias=*/true, cpu_gen);
  MultiheadAttention gpu_layer(8, 2, /*bias=*/true, gpu_gen);
  gpu_layer.to(kGpu);
  Tensor x = randn({3, 5, 8}, gen);
  Tensor padding = zeros({3, 5}, kInt64);
  padding.set({0, 4}, 1);
  padding.set({2, 1}, 1);
  Tensor causal = zeros({5, 5});
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = i + 1; j < 5; ++j) causal.set({i, j}, -1e9);
  MultiheadAttentionOutput expected = cpu_layer.forward(x, x, x, padding, causal);
  for (Device mask_device : {Device::cpu(), kGpu}) {
    Tensor xg = x.cuda();
    MultiheadAttentionOutput got =
        gpu_layer.forward(xg, xg, xg, padding.to(mask_device), causal.to(mask_device));
    const std::string where = "masks on " + mask_device.str();
    expect_matches_cpu(got.output, expected.output, "MultiheadAttention output, " + where, 1e-4f,
                       1e-4f);
    expect_matches_cpu(got.weights, expected.weights, "MultiheadAttention weights, " + where, 1e-5f,
                       1e-4f);
  }
}

TEST(CudaAttention, ErrorsAsOnTheCpuAndGradcheck) {
  BRIDLE_REQUIRE_CUDA();
  Tensor q = randn({2, 3, 4}), k = randn({2, 5, 4});
  Tensor bad_mask = from_vector(std::vector<int64_t>{1, 0}, {2});
  expect_same_error([&] { attention_weights(q, k, {.mask = bad_mask}); },
                    [&] { attention_weights(q.cuda(), k.cuda(), {.mask = bad_mask.cuda()}); },
                    {"attention", "[2]"});
  Tensor k3 = randn({2, 5, 3});
  expect_same_error([&] { attention_weights(q, k3); },
                    [&] { attention_weights(q.cuda(), k3.cuda()); },
                    {"attention", "does not match"});
  Tensor gq = randn({2, 3, 4}).set_requires_grad(), gk = randn({2, 5, 4}).set_requires_grad();
  Tensor gv = randn({2, 5, 3}).set_requires_grad();
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return scaled_dot_product_attention(in[0].cuda(), in[1].cuda(), in[2].cuda(),
                                            {.causal = true})
            .cpu();
      },
      {gq, gk, gv});
}

}  // namespace
}  // namespace bridle
