// The losses, selection ops and softmax-family layers with CUDA kernels against
// their CPU kernels: indices_in_range and the adaptive softmax, hardmax and topk,
// nll_loss, cross_entropy with probability targets, focal_loss,
// binary_cross_entropy_with_logits, sparsemax / entmax and their
// Fenchel-Young losses. Each is checked forward and backward on real shapes,
// by gradcheck through the GPU, and for its errors on the GPU. Each test skips
// (and is reported skipped) without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
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

// Integer results (indices, classes) must be equal, and on the GPU.
void expect_same_ints(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  ASSERT_TRUE(gpu.device().is_cuda()) << what << ": expected a GPU tensor";
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  EXPECT_EQ(gpu.to_int_vector(), cpu.to_int_vector()) << what;
}

// Whole numbers in [-3, 3]: rows full of ties.
Tensor small_whole_numbers(const Shape& shape, Generator& gen) {
  std::vector<float> values(shape_numel(shape));
  for (float& v : values) v = static_cast<float>(static_cast<int>(gen.next_u64() % 7) - 3);
  return from_vector(values, shape);
}

// B class labels in [0, C), every 7th row (from the 4th) set to ignore_index.
Tensor random_labels(int64_t B, int64_t C, int64_t ignore_index, Generator& gen) {
  std::vector<int64_t> labels(B);
  for (int64_t b = 0; b < B; ++b)
    labels[b] = b % 7 == 3 ? ignore_index : static_cast<int64_t>(gen.next_u64() % C);
  return from_vector(labels);
}

// --- indices_in_range, adaptive softmax ------------------------------------------------

TEST(CudaIndicesInRange, MatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor values = from_vector(std::vector<int64_t>{5, 0, 12, 7, 7, -3, 11, 10, 9});
  for (DType dtype : {kInt64, kInt32}) {
    Tensor v = values.to(dtype);
    Tensor cpu = indices_in_range(v, 7, 11);
    Tensor gpu = indices_in_range(v.cuda(), 7, 11);
    EXPECT_EQ(cpu.to_int_vector(), (std::vector<int64_t>{3, 4, 7, 8}));
    expect_same_ints(gpu, cpu, std::string("indices_in_range ") + dtype_name(dtype));
    expect_same_ints(indices_in_range(v.cuda(), 100, 200), indices_in_range(v, 100, 200),
                     "indices_in_range, nothing found");
  }
  expect_error(
      [] {
        indices_in_range(from_vector(std::vector<int64_t>{1, 2}, {1, 2}).cuda(), 0, 1);
      },
      {"indices_in_range", "1-D"});
}

constexpr int64_t kAdaptiveIn = 16, kAdaptiveClasses = 50;

// The same weights on each call (the same seed), moved to device.
std::shared_ptr<AdaptiveLogSoftmaxWithLoss> adaptive_model(Device device) {
  Generator gen(11);
  auto model = std::make_shared<AdaptiveLogSoftmaxWithLoss>(
      kAdaptiveIn, kAdaptiveClasses, std::vector<int64_t>{10, 30},
      AdaptiveLogSoftmaxOptions{.div_value = 2.0, .head_bias = true}, gen);
  model->to(device);
  return model;
}

// Runs loss_of(model, hidden leaf) on both devices, backward, and compares the
// loss, dhidden and every parameter's gradient.
template <typename F>
void expect_adaptive_same_on_both(const std::string& what, const Tensor& hidden, F loss_of) {
  auto run = [&](Device device) {
    auto model = adaptive_model(device);
    Tensor h = leaf_on(hidden, device);
    Tensor loss = loss_of(*model, h);
    loss.backward(ones(loss.shape(), device));
    std::vector<std::pair<std::string, Tensor>> results = {{"loss", loss}, {"dhidden", h.grad()}};
    for (const auto& [name, p] : model->named_parameters())
      results.push_back({"d" + name, p.grad()});
    return results;
  };
  const auto cpu = run(Device::cpu()), gpu = run(kGpu);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t k = 0; k < cpu.size(); ++k)
    expect_matches_cpu(gpu[k].second, cpu[k].second, what + " " + cpu[k].first, 1e-5f, 1e-4f);
}

TEST(CudaAdaptiveSoftmax, LossMatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(3);
  const int64_t B = 96;
  Tensor hidden = randn({B, kAdaptiveIn}, gen);
  Tensor targets = random_labels(B, kAdaptiveClasses, -100, gen);
  for (Reduction r : {Reduction::kMean, Reduction::kSum}) {
    expect_adaptive_same_on_both(std::string("adaptive softmax loss, ") + reduction_name(r), hidden,
                                 [&](AdaptiveLogSoftmaxWithLoss& m, const Tensor& h) {
                                   return m.loss(h, targets.to(h.device()), r);
                                 });
  }
  expect_adaptive_same_on_both("adaptive softmax loss, int32 targets", hidden,
                               [&](AdaptiveLogSoftmaxWithLoss& m, const Tensor& h) {
                                 return m.loss(h, targets.to(kInt32).to(h.device()));
                               });
}

// The per-row forms and log_prob put the clusters' pieces together with cat.
TEST(CudaAdaptiveSoftmax, OutputLogProbAndPredictMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(4);
  const int64_t B = 64;
  Tensor hidden = randn({B, kAdaptiveIn}, gen) * 2.0f;
  Tensor targets = random_labels(B, kAdaptiveClasses, -100, gen);
  expect_adaptive_same_on_both("adaptive softmax output", hidden,
                               [&](AdaptiveLogSoftmaxWithLoss& m, const Tensor& h) {
                                 return m.forward_with_loss(h, targets.to(h.device())).output;
                               });
  expect_adaptive_same_on_both("adaptive softmax forward loss", hidden,
                               [&](AdaptiveLogSoftmaxWithLoss& m, const Tensor& h) {
                                 return m.forward_with_loss(h, targets.to(h.device())).loss;
                               });
  expect_adaptive_same_on_both("adaptive softmax loss, none", hidden,
                               [&](AdaptiveLogSoftmaxWithLoss& m, const Tensor& h) {
                                 return m.loss(h, targets.to(h.device()), Reduction::kNone);
                               });
  expect_adaptive_same_on_both(
      "adaptive softmax log_prob", hidden,
      [&](AdaptiveLogSoftmaxWithLoss& m, const Tensor& h) { return m.log_prob(h); });
  auto cpu_model = adaptive_model(Device::cpu()), gpu_model = adaptive_model(kGpu);
  Tensor cpu_best = cpu_model->predict(hidden);
  expect_same_ints(gpu_model->predict(hidden.cuda()), cpu_best, "adaptive softmax predict");
  // The hidden states are spread enough that some rows' answers are in a cluster.
  bool some_in_a_cluster = false;
  for (int64_t c : cpu_best.to_int_vector()) some_in_a_cluster |= c >= 10;
  EXPECT_TRUE(some_in_a_cluster);
}

TEST(CudaAdaptiveSoftmax, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  auto model = adaptive_model(kGpu);
  Tensor hidden = randn({4, kAdaptiveIn}).cuda();
  expect_error(
      [&] {
        model->loss(hidden, from_vector(std::vector<int64_t>{0, 1, 50, 2}).cuda());
      },
      {"AdaptiveLogSoftmaxWithLoss", "target 50", "row 2"});
  expect_error(
      [&] {
        model->loss(hidden, from_vector(std::vector<int64_t>{0, 1, 2, 3}));
      },
      {"AdaptiveLogSoftmaxWithLoss", "different devices"});
}

// --- hardmax, topk ----------------------------------------------------------------------

TEST(CudaHardmax, MatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(5);
  for (const auto& [shape, dim] : std::vector<std::pair<Shape, int64_t>>{
           {{64, 1000}, 1}, {{256, 10}, -1}, {{6, 17, 5}, 1}, {{40, 3}, 0}, {{1, 1}, 1}}) {
    Tensor x = randn(shape, gen);
    Tensor gpu = hardmax(x.cuda(), dim);
    expect_matches_cpu(gpu, hardmax(x, dim), "hardmax " + shape_str(shape), 0.0f, 0.0f);
    EXPECT_FALSE(gpu.requires_grad());
  }
  // Ties go to the first index; NaN never wins, except at index 0, which the
  // CPU loop never replaces.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x =
      from_vector({1.0f, 3.0f, 3.0f, 0.0f, 2.0f, nan, 5.0f, 1.0f, nan, 1.0f, 9.0f, 2.0f}, {3, 4});
  Tensor gpu = hardmax(x.cuda(), 1);
  expect_matches_cpu(gpu, hardmax(x, 1), "hardmax with ties and NaN", 0.0f, 0.0f);
  EXPECT_EQ(gpu.to_vector(), (std::vector<float>{0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0}));
  EXPECT_EQ(hardmax(x, 1).to_vector(), gpu.to_vector());
  expect_error([] { hardmax(scalar(1.0f).cuda()); }, {"hardmax", "scalar"});
}

TEST(CudaTopk, MatchesCpuForwardAndBackward) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(6);
  struct Case {
    Shape shape;
    int64_t k, dim;
    bool largest;
  };
  for (const Case& c : std::vector<Case>{{{64, 1000}, 5, 1, true},
                                         {{256, 10}, 10, -1, false},
                                         {{6, 17, 5}, 4, 1, true},
                                         {{33, 70}, 1, 1, false},
                                         {{300, 4}, 2, 0, true}}) {
    // Many ties, which must keep the lower index first.
    Tensor x = small_whole_numbers(c.shape, gen);
    const std::string what = "topk " + shape_str(c.shape) + " k=" + std::to_string(c.k) +
                             (c.largest ? " largest" : " smallest");
    auto [cpu_values, cpu_indices] = topk(x, c.k, c.dim, c.largest);
    auto [gpu_values, gpu_indices] = topk(x.cuda(), c.k, c.dim, c.largest);
    expect_matches_cpu(gpu_values, cpu_values, what + " values", 0.0f, 0.0f);
    expect_same_ints(gpu_indices, cpu_indices, what + " indices");
    Tensor g = randn(cpu_values.shape(), gen);
    expect_same_on_both(what, x, g,
                        [&](const Tensor& t) { return topk(t, c.k, c.dim, c.largest).first; });
  }
  auto [none, none_indices] = topk(randn({7, 3}).cuda(), 0, 1);
  EXPECT_EQ(none.shape(), (Shape{7, 0}));
  EXPECT_EQ(none_indices.shape(), (Shape{7, 0}));
}

// Distinct values at least 0.25 apart, in a scrambled order: gradcheck's steps
// never change which entries are picked.
Tensor separated_values(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = static_cast<float>((i * 7) % n) * 0.25f - 2.0f;
  return from_vector(values, shape).set_requires_grad();
}

TEST(CudaTopk, GradcheckAndErrors) {
  BRIDLE_REQUIRE_CUDA();
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return topk(in[0].cuda(), 2, 1).first.cpu(); },
      {separated_values({3, 5})});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return topk(in[0].cuda(), 3, 0, false).first.cpu(); },
      {separated_values({4, 2, 3})});
  Tensor x = randn({2, 3}).cuda();
  expect_error([&] { topk(x, 4); }, {"topk", "k = 4", "size 3"});
}

// --- nll_loss -----------------------------------------------------------------------------

TEST(CudaNllLoss, MatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(8);
  Tensor weight = rand({10}, gen) + 0.5f;
  struct Case {
    int64_t B, C;
    NllLossOptions options;
    bool int32_targets;
  };
  for (const Case& c :
       std::vector<Case>{{256, 10, {}, false},
                         {64, 5000, {.reduction = Reduction::kSum}, true},
                         {300, 10, {.reduction = Reduction::kNone}, false},
                         {128, 10, {.ignore_index = 4, .weight = weight}, false},
                         {128, 10, {.reduction = Reduction::kSum, .weight = weight}, true}}) {
    Tensor log_probs = log_softmax(randn({c.B, c.C}, gen) * 2.0f, 1);
    Tensor targets = random_labels(c.B, c.C, c.options.ignore_index, gen);
    if (c.int32_targets) targets = targets.to(kInt32);
    NllLossOptions gpu_options = c.options;
    if (c.options.weight.defined()) gpu_options.weight = c.options.weight.cuda();
    Tensor g = c.options.reduction == Reduction::kNone ? randn({c.B}, gen) : scalar(1.5f);
    const std::string what =
        "nll_loss " + shape_str({c.B, c.C}) + " " + reduction_name(c.options.reduction);
    Results cpu = run_on(Device::cpu(), log_probs, g,
                         [&](const Tensor& t) { return nll_loss(t, targets, c.options); });
    Results gpu = run_on(kGpu, log_probs, g,
                         [&](const Tensor& t) { return nll_loss(t, targets.cuda(), gpu_options); });
    expect_matches_cpu(gpu.out, cpu.out, what + " loss", 1e-5f, 1e-4f);
    expect_matches_cpu(gpu.grad, cpu.grad, what + " gradient", 1e-6f, 1e-4f);
  }
}

TEST(CudaNllLoss, GradcheckAndErrors) {
  BRIDLE_REQUIRE_CUDA();
  Tensor log_probs = randn({5, 6}).set_requires_grad();
  Tensor targets = from_vector(std::vector<int64_t>{0, 5, 2, -100, 3});
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) { return nll_loss(in[0].cuda(), targets.cuda()).cpu(); },
      {log_probs});
  Tensor x = randn({4, 5}).cuda();
  expect_error(
      [&] {
        nll_loss(x, from_vector(std::vector<int64_t>{0, 1, 9, 2}).cuda());
      },
      {"nll_loss", "target 9", "row 2"});
  expect_error(
      [&] {
        nll_loss(x, from_vector({0.0f, 1.0f, 0.0f, 1.0f}).cuda());
      },
      {"nll_loss", "int32 or int64"});
  expect_error(
      [&] {
        nll_loss(x, from_vector(std::vector<int64_t>{0, 1, 2, 3}).cuda(), {.weight = ones({5})});
      },
      {"nll_loss", "different devices"});
}

// --- cross_entropy with probability targets, focal loss ----------------------------------

// Rows of a distribution, some with exact zeros (as one-hot or mixup targets have).
Tensor random_distributions(int64_t B, int64_t C, Generator& gen) {
  Tensor t = softmax(randn({B, C}, gen) * 2.0f, 1);
  std::vector<float> values = t.to_vector();
  for (int64_t b = 0; b < B; b += 3) {  // every third row one-hot
    std::fill(values.begin() + b * C, values.begin() + (b + 1) * C, 0.0f);
    values[b * C + static_cast<int64_t>(gen.next_u64() % C)] = 1.0f;
  }
  return from_vector(values, {B, C});
}

TEST(CudaCrossEntropy, ProbabilityTargetsMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(12);
  struct Case {
    int64_t B, C;
    Reduction reduction;
    bool weighted;
    float smoothing;
  };
  // C = 5000 takes the block-per-row kernel, C = 10 and 1023 a warp per row,
  // [3 x 40000] and [2 x 70001] split each row across blocks (row_split.h);
  // 1023, 7 and 70001 are not multiples of 4 (no float4 loads).
  for (const Case& c : std::vector<Case>{{256, 10, Reduction::kMean, false, 0.0f},
                                         {64, 5000, Reduction::kSum, true, 0.1f},
                                         {33, 1023, Reduction::kNone, false, 0.2f},
                                         {100, 7, Reduction::kMean, true, 0.0f},
                                         {3, 40000, Reduction::kNone, true, 0.1f},
                                         {2, 70001, Reduction::kMean, false, 0.0f}}) {
    Tensor logits = randn({c.B, c.C}, gen) * 3.0f;
    Tensor targets = random_distributions(c.B, c.C, gen);
    CrossEntropyOptions options{.reduction = c.reduction, .label_smoothing = c.smoothing};
    if (c.weighted) options.weight = rand({c.C}, gen) + 0.5f;
    CrossEntropyOptions gpu_options = options;
    if (c.weighted) gpu_options.weight = options.weight.cuda();
    Tensor g = c.reduction == Reduction::kNone ? randn({c.B}, gen) : scalar(1.5f);
    const std::string what = "cross_entropy (probabilities) " + shape_str({c.B, c.C}) + " " +
                             reduction_name(c.reduction);
    Results cpu = run_on(Device::cpu(), logits, g,
                         [&](const Tensor& z) { return cross_entropy(z, targets, options); });
    Results gpu = run_on(kGpu, logits, g, [&](const Tensor& z) {
      return cross_entropy(z, targets.cuda(), gpu_options);
    });
    expect_matches_cpu(gpu.out, cpu.out, what + " loss", 1e-5f, 1e-4f);
    expect_matches_cpu(gpu.grad, cpu.grad, what + " gradient", 1e-6f, 1e-4f);
  }
}

TEST(CudaCrossEntropy, ProbabilityTargetsGradcheckAndErrors) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(13);
  Tensor logits = randn({5, 6}, gen).set_requires_grad();
  Tensor targets = random_distributions(5, 6, gen).cuda();
  CrossEntropyOptions options{.weight = (rand({6}, gen) + 0.5f).cuda(), .label_smoothing = 0.1f};
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return cross_entropy(in[0].cuda(), targets, options).cpu();
      },
      {logits});
  Tensor x = randn({4, 5}, gen).cuda();
  expect_error([&] { cross_entropy(x, rand({4, 6}).cuda()); }, {"cross_entropy", "shape"});
  expect_error(
      [&] {
        cross_entropy(x, rand({4, 5}).cuda(), {.ignore_index = 2});
      },
      {"cross_entropy", "ignore_index"});
  expect_error(
      [&] {
        cross_entropy(x, rand({4, 5}).cuda(), {.weight = ones({5})});
      },
      {"cross_entropy", "different devices"});
  std::vector<float> with_nan(20, 0.0f);
  with_nan[7] = std::numeric_limits<float>::quiet_NaN();
  expect_error(
      [&] {
        cross_entropy(from_vector(with_nan, {4, 5}).cuda(), rand({4, 5}).cuda());
      },
      {"cross_entropy", "row 1", "NaN"});
  // The same from the kernels that split a long row across blocks.
  Tensor long_rows = randn({2, 30000}, gen);
  long_rows.data<float>()[30000 + 29000] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { cross_entropy(long_rows.cuda(), random_distributions(2, 30000, gen).cuda()); },
               {"cross_entropy", "row 1", "NaN"});
}

TEST(CudaFocalLoss, MatchesCpuWithClassAndProbabilityTargets) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(14);
  const int64_t B = 64, C = 10;
  Tensor logits = randn({B, C}, gen) * 2.0f;
  Tensor labels = random_labels(B, C, /*ignore_index=*/-1, gen);  // no ignored rows here
  Tensor distributions = random_distributions(B, C, gen);
  Tensor class_alpha = rand({C}, gen);
  for (float gamma : {0.0f, 2.0f}) {
    for (bool per_class : {false, true}) {
      FocalLossOptions options{.gamma = gamma, .reduction = Reduction::kSum};
      if (per_class) options.class_alpha = class_alpha;
      FocalLossOptions gpu_options = options;
      if (per_class) gpu_options.class_alpha = class_alpha.cuda();
      const std::string what =
          "focal_loss gamma " + std::to_string(gamma) + (per_class ? " per-class alpha" : " alpha");
      for (const Tensor& targets : {labels, labels.to(kInt32), distributions}) {
        Results cpu = run_on(Device::cpu(), logits, scalar(1.5f),
                             [&](const Tensor& z) { return focal_loss(z, targets, options); });
        Results gpu = run_on(kGpu, logits, scalar(1.5f), [&](const Tensor& z) {
          return focal_loss(z, targets.cuda(), gpu_options);
        });
        expect_matches_cpu(gpu.out, cpu.out, what + " loss", 1e-5f, 1e-4f);
        expect_matches_cpu(gpu.grad, cpu.grad, what + " gradient", 1e-6f, 1e-4f);
      }
    }
  }
  Tensor x = randn({4, 5}, gen).cuda();
  expect_error(
      [&] {
        focal_loss(x, from_vector(std::vector<int64_t>{0, 1, 7, 2}).cuda());
      },
      {"focal_loss", "target 7", "row 2"});
  expect_error(
      [&] {
        focal_loss(x, from_vector(std::vector<int64_t>{0, 1, 2, 3}).cuda(),
                   {.class_alpha = ones({5})});
      },
      {"focal_loss", "different devices"});
}

// --- binary cross-entropy -------------------------------------------------------------------

TEST(CudaBinaryCrossEntropy, MatchesCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(9);
  const Shape shape = {128, 37};
  Tensor logits = randn(shape, gen) * 4.0f;
  Tensor targets = rand(shape, gen);
  Tensor weight = rand({37}, gen) + 0.5f, pos_weight = rand({37}, gen) * 3.0f;
  for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
    Tensor g = r == Reduction::kNone ? randn(shape, gen) : scalar(0.7f);
    for (int variant = 0; variant < 3; ++variant) {
      const std::string what = std::string("bce ") + reduction_name(r) +
                               (variant == 1   ? " weight"
                                : variant == 2 ? " pos_weight"
                                               : "");
      auto f = [&](const Tensor& z) {
        BinaryCrossEntropyOptions o{.reduction = r};
        if (variant == 1) o.weight = weight.to(z.device());
        if (variant == 2) o.pos_weight = pos_weight.to(z.device());
        return binary_cross_entropy_with_logits(z, targets.to(z.device()), o);
      };
      expect_same_on_both(what, logits, g, f, 1e-5f, 1e-4f);
    }
  }
  // Saturated logits stay exact, as on the CPU.
  Tensor far = from_vector({1e4f, -1e4f, 30.0f, -30.0f}, {2, 2});
  Tensor y = from_vector({0.0f, 1.0f, 1.0f, 0.0f}, {2, 2});
  expect_same_on_both("bce saturated", far, scalar(1.0f), [&](const Tensor& z) {
    return binary_cross_entropy_with_logits(z, y.to(z.device()), {.reduction = Reduction::kSum});
  });
  // The focal loss composes the fused loss with sigmoid, pow and products.
  expect_same_on_both("sigmoid_focal_loss gamma 0", logits, scalar(1.0f), [&](const Tensor& z) {
    return sigmoid_focal_loss(z, targets.to(z.device()),
                              {.gamma = 0.0f, .reduction = Reduction::kMean});
  });
  expect_same_on_both("sigmoid_focal_loss", logits, randn(shape, gen), [&](const Tensor& z) {
    return sigmoid_focal_loss(z, targets.to(z.device()));
  });
}

TEST(CudaBinaryCrossEntropy, GradcheckAndErrors) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({3, 4}).set_requires_grad();
  Tensor y = rand({3, 4});
  Tensor pos_weight = rand({4}) + 0.5f;
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return binary_cross_entropy_with_logits(in[0].cuda(), y.cuda(),
                                                {.pos_weight = pos_weight.cuda()})
            .cpu();
      },
      {x});
  Tensor z = randn({3, 4}).cuda();
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(z, rand({4, 3}).cuda());
      },
      {"binary_cross_entropy_with_logits", "targets [4, 3]", "[3, 4]"});
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(z, rand({3, 4}).cuda(), {.pos_weight = ones({3}).cuda()});
      },
      {"binary_cross_entropy_with_logits", "pos_weight must be [4]"});
}

// --- sparsemax, entmax and their losses -------------------------------------------------------

struct EntmaxOp {
  const char* name;
  Tensor (*f)(const Tensor&);
};

const EntmaxOp kEntmaxOps[] = {
    {"sparsemax", [](const Tensor& t) { return sparsemax(t); }},
    {"entmax15", [](const Tensor& t) { return entmax15(t); }},
    {"entmax_bisect 1.3", [](const Tensor& t) { return entmax_bisect(t, 1.3f); }},
    {"entmax_bisect 1.7, 12 steps", [](const Tensor& t) { return entmax_bisect(t, 1.7f, -1, 12); }},
    {"entmax_bisect 2.5, 0 steps", [](const Tensor& t) { return entmax_bisect(t, 2.5f, -1, 0); }},
};

TEST(CudaEntmax, MatchesCpuWithTheSameExactZeros) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(10);
  for (const Shape& shape :
       std::vector<Shape>{{64, 1000}, {256, 10}, {7, 3001}, {3, 4, 33}, {1, 1}, {5, 2}}) {
    Tensor x = randn(shape, gen) * 3.0f;
    Tensor g = randn(shape, gen);
    for (const EntmaxOp& op : kEntmaxOps) {
      const std::string what = std::string(op.name) + " " + shape_str(shape);
      expect_same_on_both(what, x, g, op.f, 1e-5f, 1e-4f);
      // Zeros are exact and in the same places on both.
      const std::vector<float> cpu = op.f(x).to_vector(), gpu = op.f(x.cuda()).to_vector();
      int64_t mismatched = 0, zeros = 0;
      for (size_t i = 0; i < cpu.size(); ++i) {
        mismatched += (cpu[i] == 0.0f) != (gpu[i] == 0.0f);
        zeros += cpu[i] == 0.0f;
      }
      EXPECT_EQ(mismatched, 0) << what;
      if (shape == Shape{64, 1000} && std::string(op.name) != "entmax_bisect 1.3") {
        EXPECT_GT(zeros, 0) << what << ": a sparse mapping of a wide row leaves zeros";
      }
    }
  }
}

TEST(CudaEntmax, AlongAnInnerDimAndAtAlphaOne) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({6, 17, 5}) * 2.0f;
  Tensor g = randn({6, 17, 5});
  expect_same_on_both("sparsemax dim 1", x, g, [](const Tensor& t) { return sparsemax(t, 1); });
  expect_same_on_both("entmax15 dim 0", x, g, [](const Tensor& t) { return entmax15(t, 0); });
  expect_same_on_both("entmax_bisect alpha 1 (softmax)", x, g,
                      [](const Tensor& t) { return entmax_bisect(t, 1.0f); });
}

TEST(CudaEntmax, FenchelYoungLossesMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(12);
  for (const auto& [B, C] : std::vector<std::pair<int64_t, int64_t>>{{128, 10}, {32, 3000}}) {
    Tensor logits = randn({B, C}, gen) * 2.0f;
    Tensor targets = random_labels(B, C, -100, gen);
    for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone}) {
      Tensor g = r == Reduction::kNone ? randn({B}, gen) : scalar(1.3f);
      const FenchelYoungOptions o{.reduction = r};
      for (bool int32 : {false, true}) {
        const Tensor y = int32 ? targets.to(kInt32) : targets;
        const std::string what =
            shape_str({B, C}) + " " + reduction_name(r) + (int32 ? " int32" : "");
        expect_same_on_both("sparsemax_loss " + what, logits, g, [&](const Tensor& z) {
          return sparsemax_loss(z, y.to(z.device()), o);
        });
        expect_same_on_both("entmax15_loss " + what, logits, g,
                            [&](const Tensor& z) { return entmax15_loss(z, y.to(z.device()), o); });
        expect_same_on_both("entmax_bisect_loss " + what, logits, g, [&](const Tensor& z) {
          return entmax_bisect_loss(z, y.to(z.device()), 1.7f, o);
        });
      }
    }
  }
}

TEST(CudaEntmax, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  // Rows whose support is not about to change (as the CPU test's rows).
  Tensor x = from_vector({1.2f, -0.3f, 0.8f, -1.5f, 0.1f, 0.0f, 2.0f, -1.0f, 0.5f, 1.7f}, {2, 5});
  x.set_requires_grad();
  expect_gradcheck([](const std::vector<Tensor>& in) { return sparsemax(in[0].cuda()).cpu(); },
                   {x});
  expect_gradcheck([](const std::vector<Tensor>& in) { return entmax15(in[0].cuda()).cpu(); }, {x});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return entmax_bisect(in[0].cuda(), 1.3f).cpu(); }, {x});
  Tensor y = from_vector(std::vector<int64_t>{2, -100});
  for (Reduction r : {Reduction::kNone, Reduction::kMean}) {
    expect_gradcheck(
        [&](const std::vector<Tensor>& in) {
          return sparsemax_loss(in[0].cuda(), y.cuda(), {.reduction = r}).cpu();
        },
        {x});
    expect_gradcheck(
        [&](const std::vector<Tensor>& in) {
          return entmax15_loss(in[0].cuda(), y.cuda(), {.reduction = r}).cpu();
        },
        {x});
    expect_gradcheck(
        [&](const std::vector<Tensor>& in) {
          return entmax_bisect_loss(in[0].cuda(), y.cuda(), 1.7f, {.reduction = r}).cpu();
        },
        {x});
  }
}

TEST(CudaEntmax, ErrorsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  const float inf = std::numeric_limits<float>::infinity();
  Tensor bad = from_vector({0.0f, 1.0f, 2.0f, 3.0f, -inf, 5.0f}, {2, 3});
  for (auto f :
       {+[](const Tensor& t) { return sparsemax(t); }, +[](const Tensor& t) { return entmax15(t); },
        +[](const Tensor& t) { return entmax_bisect(t, 1.5f); }}) {
    std::string cpu_message;
    try {
      f(bad);
    } catch (const Error& e) {
      cpu_message = e.what();
    }
    ASSERT_FALSE(cpu_message.empty());
    expect_error([&] { f(bad.cuda()); }, {"row 1", "-inf", "position 1"});
    try {
      f(bad.cuda());
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), cpu_message);
    }
  }
  Tensor logits = randn({4, 5}).cuda();
  expect_error(
      [&] {
        sparsemax_loss(logits, from_vector(std::vector<int64_t>{0, 1, 9, 2}).cuda());
      },
      {"sparsemax_loss", "target 9", "row 2"});
  expect_error(
      [&] {
        entmax15_loss(bad.cuda(), from_vector(std::vector<int64_t>{0, 1}).cuda());
      },
      {"entmax15_loss", "row 1", "-inf"});
}

// --- hierarchical softmax: log_prob and topk -------------------------------------------------

HuffmanTree random_tree(int64_t V, Generator& gen) {
  std::vector<int64_t> counts(V);
  for (int64_t& c : counts) c = 1 + static_cast<int64_t>(gen.next_u64() % 1000);
  return HuffmanTree(counts);
}

TEST(CudaHierarchicalSoftmax, HuffmanLogProbAndTopkMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(13);
  const int64_t V = 300, d = 24, B = 40;
  const HuffmanTree tree = random_tree(V, gen);
  Tensor hidden = randn({B, d}, gen), weight = randn({V - 1, d}, gen) * 0.3f;
  Tensor bias = randn({V - 1}, gen) * 0.1f, g = randn({B, V}, gen);
  auto run = [&](Device device) {
    Tensor h = leaf_on(hidden, device), w = leaf_on(weight, device), b = leaf_on(bias, device);
    Tensor out = hierarchical_softmax_log_prob(h, w, tree, b);
    out.backward(g.to(device));
    return std::vector<Tensor>{out, h.grad(), w.grad(), b.grad()};
  };
  const std::vector<Tensor> cpu = run(Device::cpu()), gpu = run(kGpu);
  const char* names[] = {"log_prob", "dhidden", "dnode_weight", "dnode_bias"};
  for (int k = 0; k < 4; ++k)
    expect_matches_cpu(gpu[k], cpu[k], std::string("hierarchical_softmax ") + names[k], 1e-4f,
                       1e-3f);
  expect_matches_cpu(hierarchical_softmax_log_prob(hidden.cuda(), weight.cuda(), tree),
                     hierarchical_softmax_log_prob(hidden, weight, tree),
                     "hierarchical_softmax log_prob without bias", 1e-4f, 1e-3f);
  for (int64_t k : {1, 5, 300}) {
    auto [cpu_values, cpu_classes] = hierarchical_softmax_topk(hidden, weight, tree, k, bias);
    auto [gpu_values, gpu_classes] =
        hierarchical_softmax_topk(hidden.cuda(), weight.cuda(), tree, k, bias.cuda());
    const std::string what = "hierarchical_softmax_topk k=" + std::to_string(k);
    expect_matches_cpu(gpu_values, cpu_values, what + " values", 1e-4f, 1e-3f);
    if (k < V) expect_same_ints(gpu_classes, cpu_classes, what + " classes");
    EXPECT_FALSE(gpu_values.requires_grad());
  }
  // One class: no internal node, log-probability 0.
  const HuffmanTree single(std::vector<int64_t>{7});
  expect_matches_cpu(hierarchical_softmax_log_prob(hidden.cuda(), zeros({0, d}).cuda(), single),
                     hierarchical_softmax_log_prob(hidden, zeros({0, d}), single),
                     "hierarchical_softmax log_prob of one class", 0.0f, 0.0f);
  expect_error([&] { hierarchical_softmax_topk(hidden.cuda(), weight.cuda(), tree, V + 1); },
               {"hierarchical_softmax_topk", "k must be in [1, 300]"});
  expect_error([&] { hierarchical_softmax_log_prob(hidden.cuda(), weight, tree); },
               {"hierarchical_softmax_log_prob", "different devices"});
}

TEST(CudaHierarchicalSoftmax, ClassTreeLogProbAndTopkMatchCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(14);
  const int64_t V = 250, K = 17, d = 20, B = 48;
  std::vector<int64_t> cluster_of_class(V);
  for (int64_t c = 0; c < V; ++c) cluster_of_class[c] = (c * 7) % K;
  const ClassClusters clusters(cluster_of_class);
  Tensor class_logits = randn({B, V}, gen) * 2.0f, cluster_logits = randn({B, K}, gen);
  Tensor g = randn({B, V}, gen);
  auto run = [&](Device device) {
    Tensor z = leaf_on(class_logits, device), u = leaf_on(cluster_logits, device);
    Tensor out = class_based_log_prob(z, u, clusters);
    out.backward(g.to(device));
    return std::vector<Tensor>{out, z.grad(), u.grad()};
  };
  const std::vector<Tensor> cpu = run(Device::cpu()), gpu = run(kGpu);
  const char* names[] = {"log_prob", "dclass_logits", "dcluster_logits"};
  for (int k = 0; k < 3; ++k)
    expect_matches_cpu(gpu[k], cpu[k], std::string("class_based_log_prob ") + names[k], 1e-5f,
                       1e-4f);

  Tensor hidden = randn({B, d}, gen), cluster_weight = randn({K, d}, gen) * 0.3f;
  Tensor cluster_bias = randn({K}, gen), class_weight = randn({V, d}, gen) * 0.3f;
  Tensor class_bias = randn({V}, gen);
  for (int64_t k : {1, 4, 20}) {
    auto [cpu_values, cpu_classes] = class_based_softmax_topk(
        hidden, cluster_weight, cluster_bias, class_weight, class_bias, clusters, k);
    auto [gpu_values, gpu_classes] =
        class_based_softmax_topk(hidden.cuda(), cluster_weight.cuda(), cluster_bias.cuda(),
                                 class_weight.cuda(), class_bias.cuda(), clusters, k);
    const std::string what = "class_based_softmax_topk k=" + std::to_string(k);
    expect_matches_cpu(gpu_values, cpu_values, what + " values", 1e-4f, 1e-3f);
    expect_same_ints(gpu_classes, cpu_classes, what + " classes");
  }
  expect_error(
      [&] {
        class_based_log_prob(class_logits.cuda(), randn({B, K + 1}).cuda(), clusters);
      },
      {"class_based_log_prob", "cluster_logits must be [48, 17]"});
}

TEST(CudaHierarchicalSoftmax, GradcheckThroughTheGpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(15);
  const HuffmanTree tree = random_tree(6, gen);
  Tensor hidden = randn({2, 3}, gen).set_requires_grad();
  Tensor weight = randn({5, 3}, gen).set_requires_grad();
  Tensor bias = randn({5}, gen).set_requires_grad();
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return hierarchical_softmax_log_prob(in[0].cuda(), in[1].cuda(), tree, in[2].cuda()).cpu();
      },
      {hidden, weight, bias});
  const ClassClusters clusters(std::vector<int64_t>{0, 1, 0, 2, 1, 0});
  Tensor z = randn({2, 6}, gen).set_requires_grad(), u = randn({2, 3}, gen).set_requires_grad();
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return class_based_log_prob(in[0].cuda(), in[1].cuda(), clusters).cpu();
      },
      {z, u});
}

}  // namespace
}  // namespace bridle
