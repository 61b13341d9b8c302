// Every op with a CUDA kernel against its CPU kernel on real shapes, forward and
// backward, and gradcheck through the GPU. Each test skips (and is reported
// skipped) without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

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

// --- softmax family ---------------------------------------------------------------

struct RowShape {
  int64_t rows, n;
};

class CudaSoftmax : public ::testing::TestWithParam<RowShape> {};

TEST_P(CudaSoftmax, MatchesCpuForwardAndBackward) {
  BRIDLE_REQUIRE_CUDA();
  const auto [rows, n] = GetParam();
  Generator gen(rows * 7 + n);
  Tensor x = randn({rows, n}, gen) * 3.0f;
  Tensor g = randn({rows, n}, gen);
  const std::string shape = shape_str({rows, n});
  expect_same_on_both("softmax " + shape, x, g, [](const Tensor& t) { return softmax(t, 1); });
  // log_softmax's backward, g - exp(y) sum g: the CPU's float sum of a long row
  // of g is off by up to ~1e-2, which exp(y) (up to 1) carries into dx.
  const float log_softmax_atol = n >= 16384 ? 1e-4f : 1e-5f;
  expect_same_on_both(
      "log_softmax " + shape, x, g, [](const Tensor& t) { return log_softmax(t, 1); },
      log_softmax_atol);
  expect_same_on_both("softmax T=2.5 " + shape, x, g,
                      [](const Tensor& t) { return softmax(t, -1, 2.5f); });
}

// Short rows (a warp each), long rows (a block each), few long rows (split
// across blocks: row_split.h); multiples of 4 (float4) and not; the issue's
// shapes first.
INSTANTIATE_TEST_SUITE_P(CudaShapes, CudaSoftmax,
                         ::testing::Values(RowShape{64, 50000}, RowShape{4096, 1000},
                                           RowShape{256, 10}, RowShape{33, 1023}, RowShape{5, 1025},
                                           RowShape{7, 3001}, RowShape{1, 1}, RowShape{3, 1024},
                                           RowShape{3, 70001}, RowShape{2, 1 << 20},
                                           RowShape{1, 16384}));

TEST(CudaSoftmaxDims, AlongAnInnerDim) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({6, 17, 5});
  Tensor g = randn({6, 17, 5});
  expect_same_on_both("softmax dim 1", x, g, [](const Tensor& t) { return softmax(t, 1); });
  expect_same_on_both("log_softmax dim 0", x, g, [](const Tensor& t) { return log_softmax(t, 0); });
}

TEST(CudaSoftmaxDims, LargeAndInfiniteLogits) {
  BRIDLE_REQUIRE_CUDA();
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = from_vector({1000.0f, 1001.0f, 1002.0f, -inf, 0.0f, -1e4f}, {2, 3});
  Tensor g = ones({2, 3});
  expect_same_on_both("softmax of large logits", x, g,
                      [](const Tensor& t) { return softmax(t, 1); });
  expect_same_on_both("log_softmax with -inf", x, g,
                      [](const Tensor& t) { return log_softmax(t, 1); });
}

TEST(CudaSoftmaxDims, RowWithoutAMaximumIsAnError) {
  BRIDLE_REQUIRE_CUDA();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = from_vector({1.0f, 2.0f, nan, 0.0f, 1.0f, 2.0f}, {3, 2}).cuda();
  expect_error([&] { softmax(x, 1); }, {"softmax", "row 1", "no finite maximum"});
}

// The same errors from the kernels that split a long row across blocks: a NaN
// deep in one chunk, and a row of -inf (every chunk empty). These shapes split
// on any GPU (tests/ops/test_row_split.cpp).
TEST(CudaSoftmaxDims, LongRowWithoutAMaximumIsAnError) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({2, 20000});
  x.data<float>()[20000 + 15000] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { softmax(x.cuda(), 1); }, {"softmax", "row 1", "no finite maximum"});
  Tensor masked = randn({3, 20000});
  for (int64_t j = 0; j < 20000; ++j)
    masked.data<float>()[2 * 20000 + j] = -std::numeric_limits<float>::infinity();
  expect_error([&] { log_softmax(masked.cuda(), 1); }, {"log_softmax", "row 2"});
}

TEST(CudaSoftmaxGrad, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({3, 7}).set_requires_grad();
  expect_gradcheck([](const std::vector<Tensor>& in) { return softmax(in[0].cuda(), 1).cpu(); },
                   {x});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return log_softmax(in[0].cuda(), 1, 0.7f).cpu(); }, {x});
  Tensor y = randn({4, 3, 2}).set_requires_grad();
  expect_gradcheck([](const std::vector<Tensor>& in) { return softmax(in[0].cuda(), 1).cpu(); },
                   {y});
}

// --- cross-entropy ----------------------------------------------------------------

struct CrossEntropyCase {
  int64_t B, C;
  CrossEntropyOptions options;
  bool int32_targets;
};

void expect_cross_entropy_matches(const std::string& what, const CrossEntropyCase& c) {
  Generator gen(c.B + c.C);
  Tensor logits = randn({c.B, c.C}, gen) * 2.0f;
  std::vector<int64_t> labels(c.B);
  for (int64_t b = 0; b < c.B; ++b)
    labels[b] = b % 7 == 3 ? c.options.ignore_index : static_cast<int64_t>(gen.next_u64() % c.C);
  Tensor targets = from_vector(labels);
  if (c.int32_targets) targets = targets.to(kInt32);
  CrossEntropyOptions gpu_options = c.options;
  if (c.options.weight.defined()) gpu_options.weight = c.options.weight.cuda();
  Tensor g = c.options.reduction == Reduction::kNone ? randn({c.B}, gen) : scalar(1.5f);
  Results cpu = run_on(Device::cpu(), logits, g,
                       [&](const Tensor& z) { return cross_entropy(z, targets, c.options); });
  Results gpu = run_on(kGpu, logits, g, [&](const Tensor& z) {
    return cross_entropy(z, targets.cuda(), gpu_options);
  });
  expect_matches_cpu(gpu.out, cpu.out, what + " loss", 1e-5f, 1e-4f);
  expect_matches_cpu(gpu.grad, cpu.grad, what + " gradient", 1e-6f, 1e-4f);
}

TEST(CudaCrossEntropy, MatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  expect_cross_entropy_matches("[256, 10] mean", {256, 10, {}, false});
  expect_cross_entropy_matches("[64, 50000] mean", {64, 50000, {}, false});
  expect_cross_entropy_matches("[4096, 1000] sum",
                               {4096, 1000, {.reduction = Reduction::kSum}, false});
  expect_cross_entropy_matches("[300, 1001] none, int32",
                               {300, 1001, {.reduction = Reduction::kNone}, true});
  expect_cross_entropy_matches("[128, 10] ignore_index 4", {128, 10, {.ignore_index = 4}, false});
  expect_cross_entropy_matches("[128, 3000] label smoothing 0.1",
                               {128, 3000, {.label_smoothing = 0.1f}, false});
  Tensor weight = rand({10}) + 0.5f;
  expect_cross_entropy_matches(
      "[128, 10] weights, smoothing, ignore_index",
      {128, 10, {.ignore_index = 2, .weight = weight, .label_smoothing = 0.2f}, false});
  // Few long rows, split across blocks; row 3 is ignored.
  Tensor long_weight = rand({70001}) + 0.5f;
  expect_cross_entropy_matches(
      "[5, 70001] weights, smoothing, ignore_index",
      {5, 70001, {.ignore_index = -1, .weight = long_weight, .label_smoothing = 0.1f}, false});
  expect_cross_entropy_matches("[2, 65536] none, int32",
                               {2, 65536, {.reduction = Reduction::kNone}, true});
}

TEST(CudaCrossEntropy, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor logits = randn({4, 5}).cuda();
  expect_error(
      [&] {
        cross_entropy(logits, from_vector(std::vector<int64_t>{0, 1, 9, 2}).cuda());
      },
      {"cross_entropy", "target 9", "row 2"});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor bad = from_vector({0.0f, nan, 1.0f, 2.0f}, {2, 2}).cuda();
  expect_error(
      [&] {
        cross_entropy(bad, from_vector(std::vector<int64_t>{0, 1}).cuda());
      },
      {"cross_entropy", "row 0", "NaN"});
  // A lane, warp or chunk whose only finite-or-not values are a NaN must not
  // drop it when the lanes combine: C = 1025 gives about one element a thread.
  Tensor wide = randn({2, 1025});
  wide.data<float>()[1025 + 700] = nan;
  expect_error(
      [&] {
        cross_entropy(wide.cuda(), from_vector(std::vector<int64_t>{0, 1}).cuda());
      },
      {"cross_entropy", "row 1", "NaN"});
  // A +inf logit has no finite maximum: an error, as on the CPU, even when the
  // +inf and the rest of its row sit in one float4.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor infinite = from_vector({inf, 0.0f, 0.0f, 0.0f}, {1, 4});
  expect_error([&] { cross_entropy(infinite.cuda(), from_vector(std::vector<int64_t>{1}).cuda()); },
               {"cross_entropy", "row 0", "NaN"});
  Tensor long_row = randn({3, 40000});
  long_row.data<float>()[2 * 40000 + 39999] = nan;
  expect_error(
      [&] {
        cross_entropy(long_row.cuda(), from_vector(std::vector<int64_t>{0, 1, 2}).cuda());
      },
      {"cross_entropy", "row 2", "NaN"});
}

TEST(CudaCrossEntropy, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor logits = randn({5, 6}).set_requires_grad();
  Tensor targets = from_vector(std::vector<int64_t>{0, 5, 2, -100, 3});
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return cross_entropy(in[0].cuda(), targets.cuda(), {.label_smoothing = 0.1f}).cpu();
      },
      {logits});
}

// --- linear, matmul ------------------------------------------------------------------

TEST(CudaLinear, MatchesCpuOnTheMnistMlpShapes) {
  BRIDLE_REQUIRE_CUDA();
  for (auto [batch, in, out] :
       {std::array<int64_t, 3>{128, 784, 512}, std::array<int64_t, 3>{128, 512, 10},
        std::array<int64_t, 3>{3, 5, 7}}) {
    Tensor x = randn({batch, in}), w = randn({out, in}) * 0.05f, b = randn({out});
    Tensor g = randn({batch, out});
    auto run = [&](Device device) {
      Tensor xl = leaf_on(x, device), wl = leaf_on(w, device), bl = leaf_on(b, device);
      Tensor y = linear(xl, wl, bl);
      y.backward(g.to(device));
      return std::vector<Tensor>{y, xl.grad(), wl.grad(), bl.grad()};
    };
    std::vector<Tensor> cpu = run(Device::cpu()), gpu = run(kGpu);
    const char* names[] = {"y", "dx", "dW", "db"};
    for (int k = 0; k < 4; ++k)
      expect_matches_cpu(gpu[k], cpu[k], std::string("linear ") + names[k], 1e-3f, 1e-3f);
  }
}

TEST(CudaMatmul, MatchesCpuPlainAndBatched) {
  BRIDLE_REQUIRE_CUDA();
  for (auto [a_shape, b_shape] :
       {std::pair<Shape, Shape>{{33, 17}, {17, 9}}, std::pair<Shape, Shape>{{4, 6, 5}, {4, 5, 3}},
        std::pair<Shape, Shape>{{4, 6, 5}, {5, 3}},
        // an empty inner dimension: zeros, through cuBLAS's K = 0 (ld clamped to 1)
        std::pair<Shape, Shape>{{3, 0}, {0, 4}}, std::pair<Shape, Shape>{{2, 3, 0}, {2, 0, 4}}}) {
    Tensor a = randn(a_shape), b = randn(b_shape);
    Tensor probe = matmul(a, b);
    Tensor g = randn(probe.shape());
    auto run = [&](Device device) {
      Tensor al = leaf_on(a, device), bl = leaf_on(b, device);
      Tensor y = matmul(al, bl);
      y.backward(g.to(device));
      return std::vector<Tensor>{y, al.grad(), bl.grad()};
    };
    std::vector<Tensor> cpu = run(Device::cpu()), gpu = run(kGpu);
    for (int k = 0; k < 3; ++k)
      expect_matches_cpu(gpu[k], cpu[k],
                         "matmul " + shape_str(a_shape) + " x " + shape_str(b_shape), 1e-4f, 1e-4f);
  }
}

// --- elementwise, reductions ----------------------------------------------------------

TEST(CudaElementwise, UnaryOpsMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = rand({1000, 3}) * 4.0f + 0.1f;  // positive: log and sqrt are defined
  Tensor g = randn({1000, 3});
  const std::pair<const char*, Tensor (*)(const Tensor&)> ops[] = {
      {"relu", [](const Tensor& t) { return relu(t - 2.0f); }},
      {"neg", [](const Tensor& t) { return neg(t); }},
      {"exp", [](const Tensor& t) { return exp(t); }},
      {"log", [](const Tensor& t) { return log(t); }},
      {"sqrt", [](const Tensor& t) { return sqrt(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t - 2.0f); }},
      {"tanh", [](const Tensor& t) { return tanh(t - 2.0f); }},
      {"scalar forms", [](const Tensor& t) { return (2.0f - t) * 3.0f / 2.0f + 1.0f; }},
  };
  for (const auto& [name, f] : ops) expect_same_on_both(name, x, g, f, 1e-5f, 1e-4f);
}

TEST(CudaElementwise, BinaryOpsWithBroadcastingMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  for (auto [a_shape, b_shape] :
       {std::pair<Shape, Shape>{{64, 10}, {64, 10}}, std::pair<Shape, Shape>{{64, 10}, {10}},
        std::pair<Shape, Shape>{{4, 1, 5}, {3, 1}}, std::pair<Shape, Shape>{{}, {7, 2}}}) {
    Tensor a = rand(a_shape) + 0.5f, b = rand(b_shape) + 0.5f;
    const Shape out_shape = broadcast_shapes("test", a_shape, b_shape);
    Tensor g = randn(out_shape);
    for (int op = 0; op < 4; ++op) {
      auto f = [op](const Tensor& x, const Tensor& y) {
        return op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
      };
      auto run = [&](Device device) {
        Tensor al = leaf_on(a, device), bl = leaf_on(b, device);
        Tensor y = f(al, bl);
        y.backward(g.to(device));
        return std::vector<Tensor>{y, al.grad(), bl.grad()};
      };
      std::vector<Tensor> cpu = run(Device::cpu()), gpu = run(kGpu);
      for (int k = 0; k < 3; ++k)
        expect_matches_cpu(gpu[k], cpu[k],
                           "binary op " + std::to_string(op) + " " + shape_str(a_shape) + " " +
                               shape_str(b_shape) + " result " + std::to_string(k),
                           1e-5f, 1e-4f);
    }
  }
}

TEST(CudaElementwise, SameTensorTwiceAccumulatesBothGradients) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({100});
  Tensor g = randn({100});
  expect_same_on_both("x * x", x, g, [](const Tensor& t) { return t * t; });
}

TEST(CudaReduce, SumMeanArgmaxMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({32, 1000});
  expect_same_on_both(
      "sum", x, scalar(2.0f), [](const Tensor& t) { return t.sum(); }, 1e-3f);
  expect_same_on_both("mean", x, scalar(2.0f), [](const Tensor& t) { return t.mean(); });
  expect_same_on_both(
      "sum dim 1", x, randn({32}), [](const Tensor& t) { return t.sum(1); }, 1e-4f);
  expect_same_on_both("mean dim 0 keepdim", x, randn({1, 1000}),
                      [](const Tensor& t) { return t.mean(0, true); });
  Tensor ties = from_vector({1.0f, 3.0f, 3.0f, -1.0f, 2.0f, 2.0f}, {2, 3});
  for (const Tensor& t : {x, ties, Tensor(randn({5, 4, 3}))}) {
    for (int64_t dim = 0; dim < t.dim(); ++dim)
      EXPECT_EQ(argmax(t.cuda(), dim).to_int_vector(), argmax(t, dim).to_int_vector())
          << "argmax along dim " << dim << " of " << shape_str(t.shape());
  }
}

// --- indexing --------------------------------------------------------------------------

// Repeated indices scatter-add atomically on the GPU, in an order that varies;
// the sums then match the CPU's to rounding, not bit for bit.
TEST(CudaIndexing, IndexSelectGatherEmbeddingMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({50, 30, 4});
  Tensor repeated = from_vector(std::vector<int64_t>{3, 0, 3, 49, 7, 3});
  expect_same_on_both("index_select dim 0, repeated indices", x, randn({6, 30, 4}),
                      [&](const Tensor& t) { return index_select(t, repeated.to(t.device()), 0); });
  Tensor columns = from_vector(std::vector<int32_t>{29, 0, 5, 5});
  expect_same_on_both("index_select dim 1, int32 indices", x, randn({50, 4, 4}),
                      [&](const Tensor& t) { return index_select(t, columns.to(t.device()), 1); });
  Tensor ids = from_vector(std::vector<int64_t>{4, 1, 2, 3, 0, 2}, {2, 3});
  Tensor ints = from_vector(std::vector<int64_t>{10, 11, 12, 13, 14});
  EXPECT_EQ(index_select(ints.cuda(), repeated.slice(0, 2).cuda()).to_int_vector(),
            (std::vector<int64_t>{13, 10}));

  Tensor logits = randn({64, 1000});
  Tensor one = Tensor::empty({64}, kInt64), several = Tensor::empty({64, 5}, kInt64);
  for (int64_t b = 0; b < 64; ++b) {
    one.data<int64_t>()[b] = (b * 37) % 1000;
    for (int64_t j = 0; j < 5; ++j) several.data<int64_t>()[b * 5 + j] = (b + j * j) % 7;
  }
  expect_same_on_both("gather [B]", logits, randn({64}),
                      [&](const Tensor& t) { return gather(t, one.to(t.device())); });
  expect_same_on_both("gather [B, k], repeated columns", logits, randn({64, 5}),
                      [&](const Tensor& t) { return gather(t, several.to(t.device())); });

  Tensor weight = randn({10, 16});
  expect_same_on_both("embedding [2, 3] indices", weight, randn({2, 3, 16}),
                      [&](const Tensor& t) { return embedding(t, ids.to(t.device())); });
}

// A written gradient (no gradient yet) and an added one (a second use) on the GPU.
TEST(CudaIndexing, GradientsWriteThenAccumulate) {
  BRIDLE_REQUIRE_CUDA();
  Tensor weight = randn({6, 3});
  Tensor ids = from_vector(std::vector<int64_t>{5, 5, 0});
  auto f = [&](const Tensor& w) {
    return embedding(w, ids.to(w.device())).sum() + index_select(w, ids.to(w.device())).sum();
  };
  Results cpu = run_on(Device::cpu(), weight, scalar(1.0f), f);
  Results gpu = run_on(kGpu, weight, scalar(1.0f), f);
  expect_matches_cpu(gpu.grad, cpu.grad, "embedding + index_select gradient");
  // Row 5 twice in each use: 4 per element; row 0: 2; the rest 0.
  EXPECT_FLOAT_EQ(gpu.grad.cpu().at({5, 1}), 4.0f);
  EXPECT_FLOAT_EQ(gpu.grad.cpu().at({0, 2}), 2.0f);
  EXPECT_FLOAT_EQ(gpu.grad.cpu().at({3, 0}), 0.0f);
}

TEST(CudaIndexing, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({4, 5}).cuda();
  expect_error(
      [&] {
        index_select(x, from_vector(std::vector<int64_t>{0, 4}).cuda());
      },
      {"index_select", "index 4", "position 1", "size 4"});
  expect_error(
      [&] {
        gather(x, from_vector(std::vector<int64_t>{0, 1, 5, 2}).cuda());
      },
      {"gather", "index 5", "[2]", "5 columns"});
  expect_error([&] { embedding(x, from_vector(std::vector<int64_t>{-1}).cuda()); },
               {"embedding", "index -1", "position 0"});
  expect_error([&] { index_select(x, from_vector(std::vector<int64_t>{0})); },
               {"index_select", "different devices"});
}

TEST(CudaIndexing, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({5, 6}).set_requires_grad();
  Tensor index = from_vector(std::vector<int64_t>{0, 5, 5, 2, 1, 1, 4, 3, 0, 0}, {5, 2});
  Tensor rows = from_vector(std::vector<int64_t>{4, 4, 1});
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        const Tensor t = in[0].cuda();
        const Tensor picked = index_select(t, rows.cuda(), 0);
        return (gather(t, index.cuda()).sum() + (picked * picked).sum() +
                embedding(t, rows.cuda()).mean())
            .cpu();
      },
      {x});
}

// --- sampled softmax and NCE -------------------------------------------------------------

struct SampledProblem {
  Tensor weight, bias, hidden, labels;
  SampledValues sampled;
};

// V = 300 classes, d = 40, B = 24 rows of T true classes; 32 sampled ids with a
// repeat (ids 7 and 7) and accidental hits (every row's first label is sampled).
SampledProblem sampled_problem(int64_t T) {
  const int64_t V = 300, d = 40, B = 24, S = 32;
  Generator gen(31 + T);
  SampledProblem p;
  p.weight = randn({V, d}, gen) * 0.3f;
  p.bias = randn({V}, gen);
  p.hidden = randn({B, d}, gen);
  std::vector<int64_t> labels(B * T), ids(S);
  for (int64_t i = 0; i < B * T; ++i) labels[i] = (i * 53 + 11) % V;
  for (int64_t s = 0; s < S; ++s) ids[s] = s < B ? labels[s * T] : 7;
  p.labels = T == 1 ? from_vector(labels) : from_vector(labels, {B, T});
  p.sampled.ids = from_vector(ids);
  LogUniformSampler sampler(V);
  p.sampled.true_expected_count = sampler.expected_count(p.labels, 40, S);
  p.sampled.sampled_expected_count = sampler.expected_count(p.sampled.ids, 40, S);
  return p;
}

SampledValues sampled_on(const SampledValues& v, Device device) {
  return {v.ids.to(device), v.true_expected_count.to(device), v.sampled_expected_count.to(device)};
}

// The loss and the gradients of weight, bias and hidden on `device`.
template <typename Loss>
std::vector<Tensor> sampled_run(Device device, const SampledProblem& p, const Tensor& g,
                                Loss loss_fn) {
  Tensor w = leaf_on(p.weight, device), b = leaf_on(p.bias, device), h = leaf_on(p.hidden, device);
  Tensor loss = loss_fn(w, b, h, p.labels.to(device), sampled_on(p.sampled, device));
  loss.backward(g.to(device));
  return {loss, w.grad(), b.grad(), h.grad()};
}

TEST(CudaSampledSoftmax, SoftmaxAndNceMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  for (int64_t T : {1, 3}) {
    const SampledProblem p = sampled_problem(T);
    for (Reduction reduction : {Reduction::kNone, Reduction::kMean, Reduction::kSum}) {
      for (bool nce : {false, true}) {
        const std::string what =
            fmt::format("{} T={} reduction {}", nce ? "nce" : "sampled softmax", T,
                        static_cast<int>(reduction));
        const Tensor g = reduction == Reduction::kNone ? randn({24}) : scalar(1.5f);
        auto loss_fn = [&](const Tensor& w, const Tensor& b, const Tensor& h, const Tensor& labels,
                           const SampledValues& sampled) {
          if (nce) {
            NceOptions o;
            o.num_true = T;
            o.reduction = reduction;
            o.remove_accidental_hits = true;
            return nce_loss(w, b, h, labels, sampled, o);
          }
          SampledSoftmaxOptions o;
          o.num_true = T;
          o.reduction = reduction;
          return sampled_softmax_loss(w, b, h, labels, sampled, o);
        };
        const std::vector<Tensor> cpu = sampled_run(Device::cpu(), p, g, loss_fn);
        const std::vector<Tensor> gpu = sampled_run(kGpu, p, g, loss_fn);
        expect_matches_cpu(gpu[0], cpu[0], what + " loss", 1e-5f, 1e-4f);
        expect_matches_cpu(gpu[1], cpu[1], what + " dweight", 1e-6f, 1e-4f);
        expect_matches_cpu(gpu[2], cpu[2], what + " dbias", 1e-6f, 1e-4f);
        expect_matches_cpu(gpu[3], cpu[3], what + " dhidden", 1e-6f, 1e-4f);
      }
    }
  }
}

TEST(CudaSampledSoftmax, NoBiasNoLogQGradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(5);
  Tensor w = randn({7, 3}, gen).set_requires_grad(), h = randn({3, 3}, gen).set_requires_grad();
  Tensor b = randn({7}, gen).set_requires_grad();
  const Tensor labels = from_vector(std::vector<int64_t>{2, 0, 5, 6, 2, 1}, {3, 2});
  SampledValues sampled;
  sampled.ids = from_vector(std::vector<int64_t>{5, 1, 3, 1, 0});
  SampledSoftmaxOptions o;
  o.num_true = 2;
  o.subtract_log_q = false;
  o.reduction = Reduction::kNone;
  const SampledValues on_gpu{sampled.ids.cuda(), Tensor(), Tensor()};
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return sampled_softmax_loss(in[0].cuda(), in[1].cuda(), in[2].cuda(), labels.cuda(), on_gpu,
                                    o)
            .cpu();
      },
      {w, b, h});
  NceOptions n;
  n.num_true = 2;
  n.subtract_log_q = false;
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return nce_loss(in[0].cuda(), Tensor(), in[1].cuda(), labels.cuda(), on_gpu, n).cpu();
      },
      {w, h});
}

// The layer draws on the host and moves the draw to the GPU: the same seeds give
// the same samples, loss and weight gradient on both devices.
TEST(CudaSampledSoftmax, LayerTrainsOnTheGpuAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  std::vector<Tensor> losses, grads;
  for (Device device : {Device::cpu(), kGpu}) {
    Generator init(3);
    SampledSoftmaxLayerOptions options;
    options.seed = 9;
    SampledSoftmax layer(16, 500, 40, nullptr, options, init);
    layer.to(device);
    Generator data(4);
    Tensor hidden = randn({32, 16}, data).to(device);
    Tensor targets = Tensor::empty({32}, kInt64);
    for (int64_t b = 0; b < 32; ++b) targets.data<int64_t>()[b] = (b * 97) % 500;
    Tensor loss = layer.loss(hidden, targets.to(device));
    loss.backward();
    losses.push_back(loss);
    grads.push_back(layer.weight.grad());
  }
  expect_matches_cpu(losses[1], losses[0], "layer loss");
  expect_matches_cpu(grads[1], grads[0], "layer dweight", 1e-6f, 1e-4f);
}

TEST(CudaSampledSoftmax, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  const SampledProblem p = sampled_problem(1);
  Tensor bad_labels = from_vector(std::vector<int64_t>(24, 0));
  bad_labels.data<int64_t>()[5] = 300;
  expect_error(
      [&] {
        sampled_softmax_loss(p.weight.cuda(), p.bias.cuda(), p.hidden.cuda(), bad_labels.cuda(),
                             sampled_on(p.sampled, kGpu));
      },
      {"sampled_softmax_loss", "true class 300", "row 5"});
  expect_error(
      [&] {
        sampled_softmax_loss(p.weight.cuda(), p.bias.cuda(), p.hidden.cuda(), p.labels,
                             sampled_on(p.sampled, kGpu));
      },
      {"sampled_softmax_loss", "different devices"});
}

// --- hierarchical softmax ------------------------------------------------------------------

TEST(CudaHierarchicalSoftmax, HuffmanLossMatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  std::vector<int64_t> counts(1000);
  for (int64_t c = 0; c < 1000; ++c) counts[c] = 100000 / (c + 1) + 1;  // Zipf-like
  const HuffmanTree tree(counts);
  const int64_t B = 64, d = 48, N = tree.num_nodes();
  Generator gen(8);
  const Tensor hidden = randn({B, d}, gen), node_weight = randn({N, d}, gen) * 0.2f,
               node_bias = randn({N}, gen);
  std::vector<int64_t> y(B);
  for (int64_t b = 0; b < B; ++b) y[b] = (b * b * 7) % 1000;  // frequent and rare classes
  y[3] = y[4];                                                // a repeated target
  const Tensor targets = from_vector(y);
  for (Reduction reduction : {Reduction::kNone, Reduction::kMean, Reduction::kSum}) {
    for (bool with_bias : {true, false}) {
      const std::string what = fmt::format("huffman loss, reduction {}, bias {}",
                                           static_cast<int>(reduction), with_bias);
      const Tensor g = reduction == Reduction::kNone ? randn({B}, gen) : scalar(0.7f);
      std::vector<std::vector<Tensor>> results;
      for (Device device : {Device::cpu(), kGpu}) {
        Tensor h = leaf_on(hidden, device), w = leaf_on(node_weight, device);
        Tensor b = with_bias ? leaf_on(node_bias, device) : Tensor();
        Tensor loss = hierarchical_softmax_loss(h, w, targets.to(device), tree, reduction, b);
        loss.backward(g.to(device));
        results.push_back({loss, h.grad(), w.grad(), with_bias ? b.grad() : Tensor()});
      }
      expect_matches_cpu(results[1][0], results[0][0], what + " loss", 1e-5f, 1e-4f);
      expect_matches_cpu(results[1][1], results[0][1], what + " dhidden", 1e-6f, 1e-4f);
      expect_matches_cpu(results[1][2], results[0][2], what + " dnode_weight", 1e-6f, 1e-4f);
      if (with_bias)
        expect_matches_cpu(results[1][3], results[0][3], what + " dnode_bias", 1e-6f, 1e-4f);
    }
  }
}

TEST(CudaHierarchicalSoftmax, GradcheckAndErrorsThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  const HuffmanTree tree(std::vector<int64_t>{5, 1, 3, 3, 8, 2});
  Generator gen(9);
  Tensor h = randn({4, 3}, gen).set_requires_grad();
  Tensor w = randn({5, 3}, gen).set_requires_grad(), b = randn({5}, gen).set_requires_grad();
  const Tensor targets = from_vector(std::vector<int64_t>{0, 5, 5, 2});
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return hierarchical_softmax_loss(in[0].cuda(), in[1].cuda(), targets.cuda(), tree,
                                         Reduction::kNone, in[2].cuda())
            .cpu();
      },
      {h, w, b});
  expect_error(
      [&] {
        hierarchical_softmax_loss(h.cuda(), w.cuda(),
                                  from_vector(std::vector<int64_t>{0, 6, 1, 1}).cuda(), tree);
      },
      {"hierarchical_softmax_loss", "target 6", "row 1"});
  // One class: no internal node, loss 0.
  const HuffmanTree single(std::vector<int64_t>{4});
  Tensor none = Tensor::empty({0, 3}).cuda();
  EXPECT_EQ(hierarchical_softmax_loss(h.detach().cuda(), none,
                                      from_vector(std::vector<int64_t>{0, 0, 0, 0}).cuda(), single)
                .item(),
            0.0f);
}

TEST(CudaHierarchicalSoftmax, ClassBasedLossMatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  std::vector<int64_t> counts(500);
  for (int64_t c = 0; c < 500; ++c) counts[c] = 50000 / (c + 1) + 1;
  const ClassClusters clusters(frequency_binned_clusters(counts, 20));
  const int64_t B = 48, d = 32, V = 500, K = clusters.num_clusters();
  Generator gen(10);
  const std::vector<Tensor> params = {randn({K, d}, gen) * 0.2f, randn({K}, gen),
                                      randn({V, d}, gen) * 0.2f, randn({V}, gen)};
  const Tensor hidden = randn({B, d}, gen);
  std::vector<int64_t> y(B);
  for (int64_t b = 0; b < B; ++b) y[b] = (b * 31 + b * b) % V;
  y[7] = y[8];  // two rows with one target
  const Tensor targets = from_vector(y);
  for (Reduction reduction : {Reduction::kNone, Reduction::kMean}) {
    const Tensor g = reduction == Reduction::kNone ? randn({B}, gen) : scalar(1.3f);
    std::vector<std::vector<Tensor>> results;
    for (Device device : {Device::cpu(), kGpu}) {
      Tensor h = leaf_on(hidden, device);
      std::vector<Tensor> p;
      for (const Tensor& t : params) p.push_back(leaf_on(t, device));
      Tensor loss = class_based_softmax_loss(h, p[0], p[1], p[2], p[3], targets.to(device),
                                             clusters, reduction);
      loss.backward(g.to(device));
      results.push_back({loss, h.grad(), p[0].grad(), p[1].grad(), p[2].grad(), p[3].grad()});
    }
    const char* names[] = {"loss",          "dhidden",       "dcluster_weight",
                           "dcluster_bias", "dclass_weight", "dclass_bias"};
    for (size_t i = 0; i < results[0].size(); ++i)
      expect_matches_cpu(
          results[1][i], results[0][i],
          fmt::format("class-based, reduction {}: {}", static_cast<int>(reduction), names[i]),
          1e-5f, 1e-4f);
  }
}

TEST(CudaHierarchicalSoftmax, WithinClusterGradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  const ClassClusters clusters(std::vector<int64_t>{0, 1, 0, 2, 1, 1, 2});
  Generator gen(11);
  Tensor h = randn({4, 3}, gen).set_requires_grad();
  Tensor w = randn({7, 3}, gen).set_requires_grad(), b = randn({7}, gen).set_requires_grad();
  const Tensor targets = from_vector(std::vector<int64_t>{0, 5, 5, 3});
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return within_cluster_nll(in[0].cuda(), in[1].cuda(), in[2].cuda(), targets.cuda(),
                                  clusters)
            .cpu();
      },
      {h, w, b});
}

// --- dropout ---------------------------------------------------------------------------

// The mask is drawn on the host from the op's generator (dropout.cpp), so the same
// seed must give bit-identical outputs and gradients on both devices: atol = rtol = 0.
TEST(CudaDropout, SameSeedSameOutputAndGradientAsCpu) {
  BRIDLE_REQUIRE_CUDA();
  for (const Shape& shape : {Shape{8, 64, 12, 12}, Shape{1000, 3}, Shape{7}}) {
    Tensor x = randn(shape);
    Tensor g = randn(shape);
    for (float p : {0.25f, 0.5f, 0.9f, 1.0f}) {
      const std::string what = "dropout p=" + std::to_string(p) + " " + shape_str(shape);
      Generator cpu_gen(42), gpu_gen(42);
      Results cpu = run_on(Device::cpu(), x, g,
                           [&](const Tensor& t) { return dropout(t, p, true, cpu_gen); });
      Results gpu =
          run_on(kGpu, x, g, [&](const Tensor& t) { return dropout(t, p, true, gpu_gen); });
      expect_matches_cpu(gpu.out, cpu.out, what + " forward", 0.0f, 0.0f);
      expect_matches_cpu(gpu.grad, cpu.grad, what + " backward", 0.0f, 0.0f);
      // Both generators made the same draws, so the next masks match too.
      EXPECT_EQ(gpu_gen.uniform(0.0f, 1.0f), cpu_gen.uniform(0.0f, 1.0f)) << what;
    }
  }
}

TEST(CudaDropout, GradientAccumulatesIntoAnExistingOne) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({300});
  Tensor g = randn({300});
  Generator cpu_gen(3), gpu_gen(3);
  // x feeds both dropout and the add: the second gradient adds into the first.
  Results cpu = run_on(Device::cpu(), x, g,
                       [&](const Tensor& t) { return dropout(t, 0.5f, true, cpu_gen) * 2.0f + t; });
  Results gpu = run_on(kGpu, x, g,
                       [&](const Tensor& t) { return dropout(t, 0.5f, true, gpu_gen) * 2.0f + t; });
  expect_matches_cpu(gpu.out, cpu.out, "2 dropout(x) + x forward");
  expect_matches_cpu(gpu.grad, cpu.grad, "2 dropout(x) + x backward");
}

TEST(CudaDropout, NotTrainingReturnsTheInputOnTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({4, 5}).cuda();
  Generator gen(1);
  EXPECT_TRUE(dropout(x, 0.5f, /*training=*/false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.0f, /*training=*/true, gen).same(x));
}

// --- optimizers and a whole training step ----------------------------------------------

template <typename MakeOptimizer>
void expect_optimizer_matches(const std::string& what, MakeOptimizer make) {
  Tensor w0 = randn({64, 33}), b0 = randn({33});
  std::vector<Tensor> grads_w, grads_b;
  for (int step = 0; step < 4; ++step) {
    grads_w.push_back(randn({64, 33}));
    grads_b.push_back(randn({33}));
  }
  auto run = [&](Device device) {
    Tensor w = leaf_on(w0, device), b = leaf_on(b0, device);
    auto optimizer = make(std::vector<Tensor>{w, b});
    for (size_t step = 0; step < grads_w.size(); ++step) {
      w.set_grad(grads_w[step].to(device));
      b.set_grad(grads_b[step].to(device));
      optimizer->step();
    }
    return std::vector<Tensor>{w, b};
  };
  std::vector<Tensor> cpu = run(Device::cpu()), gpu = run(kGpu);
  expect_matches_cpu(gpu[0].detach(), cpu[0].detach(), what + " weight", 1e-6f, 1e-5f);
  expect_matches_cpu(gpu[1].detach(), cpu[1].detach(), what + " bias", 1e-6f, 1e-5f);
}

TEST(CudaOptimizers, SgdAndAdamMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  expect_optimizer_matches("SGD", [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(p, SGDOptions{.lr = 0.1f});
  });
  expect_optimizer_matches("SGD momentum nesterov decay", [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(
        p, SGDOptions{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-3f, .nesterov = true});
  });
  expect_optimizer_matches("Adam amsgrad", [](std::vector<Tensor> p) {
    return std::make_unique<Adam>(p,
                                  AdamOptions{.lr = 0.01f, .weight_decay = 1e-2f, .amsgrad = true});
  });
  expect_optimizer_matches("AdamW", [](std::vector<Tensor> p) {
    return std::make_unique<AdamW>(p, AdamWOptions{.lr = 0.01f, .weight_decay = 1e-2f});
  });
}

TEST(CudaOptimizers, RmspropAndAdagradMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  expect_optimizer_matches("RMSprop", [](std::vector<Tensor> p) {
    return std::make_unique<RMSprop>(p, RMSpropOptions{.lr = 0.01f});
  });
  expect_optimizer_matches("RMSprop centered momentum decay", [](std::vector<Tensor> p) {
    return std::make_unique<RMSprop>(
        p, RMSpropOptions{.lr = 0.01f, .weight_decay = 1e-2f, .momentum = 0.9f, .centered = true});
  });
  expect_optimizer_matches("Adagrad lr_decay decay", [](std::vector<Tensor> p) {
    return std::make_unique<Adagrad>(p, AdagradOptions{.lr = 0.05f,
                                                       .lr_decay = 0.1f,
                                                       .weight_decay = 1e-2f,
                                                       .initial_accumulator_value = 0.1f});
  });
}

// clip_grad_norm and clip_grad_value on GPU gradients, against the same
// gradients on the CPU: the norm (every norm type), the clipped gradients, a
// parameter without a gradient skipped, and a NaN gradient.
TEST(CudaClipGrad, NormAndValueMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(21);
  // 10000 elements: three norm blocks, the last one partial.
  const std::vector<Tensor> grads = {randn({100, 100}, gen) * 3.0f, randn({7}, gen),
                                     randn({4096}, gen) * 0.01f};
  auto params_on = [&](Device device) {
    std::vector<Tensor> params;
    for (const Tensor& g : grads) {
      Tensor p = zeros(g.shape(), TensorOptions(device).with_requires_grad());
      p.set_grad(g.to(device));
      params.push_back(p);
    }
    params.push_back(zeros({3}, TensorOptions(device).with_requires_grad()));  // no gradient
    return params;
  };
  for (double norm_type : {2.0, 1.0, 3.5, std::numeric_limits<double>::infinity()}) {
    std::vector<Tensor> cpu = params_on(Device::cpu()), gpu = params_on(kGpu);
    const double cpu_norm = clip_grad_norm(cpu, 1.0, norm_type);
    const double gpu_norm = clip_grad_norm(gpu, 1.0, norm_type);
    EXPECT_NEAR(gpu_norm, cpu_norm, 1e-9 * cpu_norm) << "norm type " << norm_type;
    for (size_t i = 0; i < grads.size(); ++i)
      expect_matches_cpu(
          gpu[i].grad(), cpu[i].grad(),
          "clipped gradient " + std::to_string(i) + ", norm type " + std::to_string(norm_type),
          1e-7f, 1e-5f);
    EXPECT_FALSE(gpu[3].grad().defined());
  }
  std::vector<Tensor> cpu = params_on(Device::cpu()), gpu = params_on(kGpu);
  clip_grad_value(cpu, 0.5);
  clip_grad_value(gpu, 0.5);
  for (size_t i = 0; i < grads.size(); ++i)
    expect_matches_cpu(gpu[i].grad(), cpu[i].grad(), "clip_grad_value " + std::to_string(i), 0.0f,
                       0.0f);
  Tensor p = zeros({3}, TensorOptions(kGpu).with_requires_grad());
  p.set_grad(from_vector({1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f}).cuda());
  EXPECT_TRUE(std::isnan(clip_grad_norm({p}, 1.0)));
  EXPECT_TRUE(std::isnan(clip_grad_norm({p}, 1.0, std::numeric_limits<double>::infinity())));
  expect_error([&] { clip_grad_norm({p}, 1.0, 2.0, /*error_if_nonfinite=*/true); },
               {"clip_grad_norm", "nan"});
}

// An optimizer made before the model moves to the GPU: Adagrad's sum, made with
// the parameter, follows it there.
TEST(CudaOptimizers, AdagradMadeBeforeTheMoveStepsOnTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Linear model(5, 8, /*bias=*/false);
  Tensor g = randn({8, 5});
  Tensor w = model.weight.detach().clone().set_requires_grad(true);
  Adagrad cpu_adagrad({w}, {.lr = 0.1f});
  w.set_grad(g);
  cpu_adagrad.step();
  Adagrad gpu_adagrad(model.parameters(), {.lr = 0.1f});
  model.to(kGpu);
  model.weight.set_grad(g.cuda());
  gpu_adagrad.step();
  expect_matches_cpu(model.weight.detach(), w.detach(), "Adagrad weight", 1e-6f, 1e-5f);
}

// State made on the CPU (a step before Module::to) follows the parameters to
// the GPU at the next step, for every optimizer that keeps state.
TEST(CudaOptimizers, StateMadeBeforeTheMoveFollowsTheModel) {
  BRIDLE_REQUIRE_CUDA();
  auto sgd = [](std::vector<Tensor> p) -> std::unique_ptr<Optimizer> {
    return std::make_unique<SGD>(p, SGDOptions{.lr = 0.1f, .momentum = 0.9f});
  };
  auto adam = [](std::vector<Tensor> p) -> std::unique_ptr<Optimizer> {
    return std::make_unique<Adam>(p, AdamOptions{.lr = 0.01f, .amsgrad = true});
  };
  auto rmsprop = [](std::vector<Tensor> p) -> std::unique_ptr<Optimizer> {
    return std::make_unique<RMSprop>(
        p, RMSpropOptions{.lr = 0.01f, .momentum = 0.5f, .centered = true});
  };
  for (const auto& [what, make] :
       {std::pair<std::string, std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>>{
            "SGD", sgd},
        {"Adam", adam},
        {"RMSprop", rmsprop}}) {
    Linear model(5, 8, /*bias=*/false);
    Tensor w = model.weight.detach().clone().set_requires_grad(true);
    auto on_cpu = make({w});
    auto moved = make(model.parameters());
    for (int step = 0; step < 3; ++step) {
      Tensor g = randn({8, 5});
      w.set_grad(g);
      on_cpu->step();
      if (step == 1) model.to(kGpu);
      model.weight.set_grad(g.to(model.weight.device()));
      moved->step();
    }
    expect_matches_cpu(model.weight.detach(), w.detach(), what + " weight", 1e-6f, 1e-5f);
  }
}

// --resume with --device cuda: the state comes from a checkpoint, on the host, and
// must land next to the parameters on the GPU.
template <typename MakeOptimizer>
void expect_host_state_resumes_on_the_gpu(const std::string& what, MakeOptimizer make) {
  Tensor w = leaf_on(randn({16, 9}), Device::cpu());
  auto cpu_optimizer = make(std::vector<Tensor>{w});
  for (int step = 0; step < 2; ++step) {
    w.set_grad(randn({16, 9}));
    cpu_optimizer->step();
  }
  Tensor w_gpu = leaf_on(w.detach(), kGpu);
  auto gpu_optimizer = make(std::vector<Tensor>{w_gpu});
  gpu_optimizer->load_state(cpu_optimizer->state());
  Tensor g = randn({16, 9});
  w.set_grad(g);
  cpu_optimizer->step();
  w_gpu.set_grad(g.cuda());
  gpu_optimizer->step();
  expect_matches_cpu(w_gpu.detach(), w.detach(), what + " weight after a resumed step", 1e-6f,
                     1e-5f);
}

TEST(CudaOptimizers, HostStateResumesOnTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  expect_host_state_resumes_on_the_gpu("SGD momentum", [](std::vector<Tensor> p) {
    return std::make_unique<SGD>(p, SGDOptions{.lr = 0.05f, .momentum = 0.9f});
  });
  expect_host_state_resumes_on_the_gpu("Adam amsgrad", [](std::vector<Tensor> p) {
    return std::make_unique<Adam>(p, AdamOptions{.lr = 0.01f, .amsgrad = true});
  });
  expect_host_state_resumes_on_the_gpu("RMSprop centered momentum", [](std::vector<Tensor> p) {
    return std::make_unique<RMSprop>(
        p, RMSpropOptions{.lr = 0.01f, .momentum = 0.9f, .centered = true});
  });
  expect_host_state_resumes_on_the_gpu("Adagrad", [](std::vector<Tensor> p) {
    return std::make_unique<Adagrad>(p, AdagradOptions{.lr = 0.05f});
  });
}

// --- L-BFGS: host-staged on a GPU (lib/optim/lbfgs.cpp) ------------------------------

// Rosenbrock's f = (1 - x)^2 + 100 (y - x^2)^2 of two [1] parameters on any
// device. The loss and gradients come from tensor ops on host copies of x and y,
// and the gradients go back to the parameters' device: both runs hand L-BFGS the
// same bits (GPU ops may round differently: nvcc fuses multiply-adds), so any
// difference between the runs would be the optimizer's staging.
float rosenbrock_on_host(Tensor& x, Tensor& y) {
  Tensor hx = from_vector(x.to_vector(), {1}).set_requires_grad();
  Tensor hy = from_vector(y.to_vector(), {1}).set_requires_grad();
  Tensor a = 1.0f - hx, b = hy - hx * hx;
  Tensor loss = sum(a * a + b * b * 100.0f);
  loss.backward();
  x.set_grad(hx.grad().to(x.device()));
  y.set_grad(hy.grad().to(y.device()));
  return loss.item();
}

TEST(CudaLBFGS, MatchesCpuBitForBit) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x_cpu = leaf_on(from_vector({-1.2f}), Device::cpu());
  Tensor y_cpu = leaf_on(from_vector({1.0f}), Device::cpu());
  Tensor x_gpu = leaf_on(x_cpu.detach(), kGpu), y_gpu = leaf_on(y_cpu.detach(), kGpu);
  const void* x_memory = x_gpu.raw_data();
  const LBFGSOptions options{.max_iter = 4, .line_search = LBFGSLineSearch::kStrongWolfe};
  LBFGS cpu({x_cpu, y_cpu}, options), gpu({x_gpu, y_gpu}, options);
  for (int step = 0; step < 6; ++step) {
    const float cpu_loss = cpu.step([&] { return rosenbrock_on_host(x_cpu, y_cpu); });
    const float gpu_loss = gpu.step([&] { return rosenbrock_on_host(x_gpu, y_gpu); });
    EXPECT_EQ(gpu_loss, cpu_loss) << "loss at step " << step;
    EXPECT_EQ(x_gpu.cpu().item(), x_cpu.item()) << "x after step " << step;
    EXPECT_EQ(y_gpu.cpu().item(), y_cpu.item()) << "y after step " << step;
    EXPECT_EQ(gpu.evaluations(), cpu.evaluations()) << "closure calls after step " << step;
  }
  // The parameters stayed where they were: same device, same memory.
  EXPECT_TRUE(x_gpu.device().is_cuda());
  EXPECT_EQ(x_gpu.raw_data(), x_memory);
  EXPECT_LT(rosenbrock_on_host(x_gpu, y_gpu), 24.2f * 0.1f);  // f(-1.2, 1) = 24.2
}

// The usual use: the closure runs on the GPU. cuBLAS sums in another order than
// the CPU's gemm, so here the fits agree to rounding, not bit for bit. b = A w_true
// makes the minimum 0, where float32 resolves the loss finely, so both fits end
// close to w_true (within 5e-6 on the CPU) and to each other.
TEST(CudaLBFGS, FitsLeastSquaresOnTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(17);
  const Tensor w_true = from_vector({0.5f, -1.0f, 2.0f}, {3, 1});
  const Tensor A = randn({8, 3}, gen), b = matmul(A, w_true);
  auto fit = [&](Device device) {
    Tensor w = zeros({3, 1}, TensorOptions(device).with_requires_grad());
    const Tensor a = A.to(device), target = b.to(device);
    LBFGS opt({w}, {.max_iter = 10, .line_search = LBFGSLineSearch::kStrongWolfe});
    for (int step = 0; step < 2; ++step)
      opt.step([&] {
        opt.zero_grad();
        Tensor r = matmul(a, w) - target;
        Tensor loss = sum(r * r);
        loss.backward();
        return loss.item();
      });
    return w;
  };
  const Tensor w_gpu = fit(kGpu).detach();
  expect_matches_cpu(w_gpu, fit(Device::cpu()).detach(), "least-squares w", 1e-5f, 1e-4f);
  expect_matches_cpu(w_gpu, w_true, "least-squares w against w_true", 1e-4f, 0.0f);
}

TEST(CudaLBFGS, MixedDevicesNameBoth) {
  BRIDLE_REQUIRE_CUDA();
  Tensor on_cpu = zeros({2}, TensorOptions().with_requires_grad());
  Tensor on_gpu = zeros({3}, TensorOptions(kGpu).with_requires_grad());
  expect_error([&] { LBFGS({on_cpu, on_gpu}); }, {"LBFGS", "parameter 1", "cpu", "cuda:0"});
  expect_error([&] { LBFGS({on_gpu, on_cpu}); }, {"LBFGS", "parameter 1", "cuda:0", "cpu"});
  // A gradient on another device than its parameter.
  LBFGS opt({on_gpu});
  expect_error(
      [&] {
        opt.step([&] {
          on_gpu.set_grad(ones({3}));
          return 1.0f;
        });
      },
      {"LBFGS", "gradient of parameter 0", "cpu", "cuda:0"});
}

TEST(CudaTraining, MlpStepsMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  // Three SGD steps of a 784-64-10 ReLU MLP with cross-entropy, the mnist_mlp recipe.
  Generator gen(5);
  Tensor x = rand({32, 1, 28, 28}, gen);
  std::vector<int64_t> labels(32);
  for (int64_t i = 0; i < 32; ++i) labels[i] = i % 10;
  Tensor y = from_vector(labels);
  Tensor w1 = randn({64, 784}, gen) * 0.03f, b1 = zeros({64});
  Tensor w2 = randn({10, 64}, gen) * 0.1f, b2 = zeros({10});
  auto train = [&](Device device) {
    std::vector<Tensor> params = {leaf_on(w1, device), leaf_on(b1, device), leaf_on(w2, device),
                                  leaf_on(b2, device)};
    SGD sgd(params, {.lr = 0.1f, .momentum = 0.9f});
    std::vector<float> losses;
    for (int step = 0; step < 3; ++step) {
      sgd.zero_grad();
      Tensor h = relu(linear(flatten(x.to(device)), params[0], params[1]));
      Tensor loss = cross_entropy(linear(h, params[2], params[3]), y.to(device));
      loss.backward();
      sgd.step();
      losses.push_back(loss.item());
    }
    return std::make_pair(losses, params);
  };
  auto [cpu_losses, cpu_params] = train(Device::cpu());
  auto [gpu_losses, gpu_params] = train(kGpu);
  for (size_t i = 0; i < cpu_losses.size(); ++i)
    EXPECT_NEAR(gpu_losses[i], cpu_losses[i], 1e-4f) << "loss at step " << i;
  for (size_t k = 0; k < cpu_params.size(); ++k)
    expect_matches_cpu(gpu_params[k].detach(), cpu_params[k].detach(),
                       "parameter " + std::to_string(k) + " after 3 steps", 1e-4f, 1e-3f);
}

}  // namespace
}  // namespace bridle
