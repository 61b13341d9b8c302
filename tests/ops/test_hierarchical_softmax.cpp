// Hierarchical softmax: Huffman codes against word2vec's (committed fixture from
// scripts/make_huffman_fixtures.py), probabilities that sum to 1, the fused
// losses against -log_prob, naive vs fast kernels on 1 and 2 threads, gradient
// checks, the top-k searches against topk(log_prob), the modules, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;
using testing::grad_opts;

// Seven classes with varied counts and a tie.
const std::vector<int64_t> kCounts7 = {20, 3, 9, 1, 14, 5, 5};
// Their clusters for the two-level tree.
const std::vector<int64_t> kClusters7 = {0, 2, 1, 2, 0, 1, 2};

std::vector<int64_t> zipf_counts(int64_t V) {
  std::vector<int64_t> counts(V);
  for (int64_t i = 0; i < V; ++i) counts[i] = 1000000 / (i + 1);
  return counts;
}

std::vector<int64_t> random_targets(int64_t B, int64_t V, Generator& gen) {
  std::vector<int64_t> y(B);
  for (auto& t : y) t = static_cast<int64_t>(gen.next_u64() % static_cast<uint64_t>(V));
  return y;
}

// Runs fn with OpenMP at 1 and at 2 threads, restoring the setting after.
template <typename Fn>
void for_thread_counts(Fn fn) {
  const int saved = get_num_threads();
  for (int threads : {1, 2}) {
    SCOPED_TRACE(fmt::format("{} threads", threads));
    set_num_threads(threads);
    fn();
  }
  set_num_threads(saved);
}

// --- Huffman tree -------------------------------------------------------------

TEST(HuffmanTree, MatchesWord2vecCodes) {
  std::ifstream file(std::string(BRIDLE_FIXTURES_DIR) + "/huffman_codes.json");
  ASSERT_TRUE(file) << "missing fixture huffman_codes.json";
  const nlohmann::json fixture = nlohmann::json::parse(file);
  ASSERT_GE(fixture["cases"].size(), 5u);
  for (const auto& c : fixture["cases"]) {
    const auto counts = c["counts"].get<std::vector<int64_t>>();
    SCOPED_TRACE(fmt::format("counts {}", fmt::join(counts, ", ")));
    HuffmanTree tree(counts);
    const auto V = static_cast<int64_t>(counts.size());
    ASSERT_EQ(tree.num_classes(), V);
    EXPECT_EQ(tree.num_nodes(), V - 1);
    EXPECT_EQ(tree.root(), V - 2);
    for (int64_t y = 0; y < V; ++y) {
      const auto codes = c["codes"][y].get<std::vector<int64_t>>();
      const auto points = c["points"][y].get<std::vector<int64_t>>();
      ASSERT_EQ(tree.depth(y), static_cast<int64_t>(codes.size())) << "class " << y;
      for (int64_t i = 0; i < tree.depth(y); ++i) {
        EXPECT_EQ(tree.codes[tree.offsets[y] + i], codes[i]) << "class " << y << " step " << i;
        EXPECT_EQ(tree.points[tree.offsets[y] + i], points[i]) << "class " << y << " step " << i;
      }
    }
  }
}

// Independent of word2vec's code: a Huffman tree is a full binary tree (Kraft
// sum 1), its children and paths agree, and its weighted depth is the optimal
// cost, the sum of all merges of the two smallest counts.
TEST(HuffmanTree, IsAnOptimalPrefixCode) {
  Generator gen(11);
  for (int64_t V : {2, 3, 7, 100, 1000}) {
    std::vector<int64_t> counts(V);
    for (auto& n : counts) n = static_cast<int64_t>(gen.next_u64() % 1000);
    HuffmanTree tree(counts);
    double kraft = 0.0;
    int64_t weighted_depth = 0;
    for (int64_t c = 0; c < V; ++c) {
      kraft += std::ldexp(1.0, -static_cast<int>(tree.depth(c)));
      weighted_depth += counts[c] * tree.depth(c);
      // Walking the codes down from the root reaches c's leaf through its points.
      int64_t x = tree.root();
      for (int64_t i = tree.offsets[c]; i < tree.offsets[c + 1]; ++i) {
        ASSERT_EQ(x, tree.points[i]);
        x = tree.children[2 * x + tree.codes[i]];
      }
      EXPECT_EQ(x, ~c);
    }
    EXPECT_DOUBLE_EQ(kraft, 1.0);
    std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> queue(counts.begin(),
                                                                             counts.end());
    int64_t cost = 0;
    while (queue.size() > 1) {
      const int64_t a = queue.top();
      queue.pop();
      const int64_t b = queue.top();
      queue.pop();
      cost += a + b;
      queue.push(a + b);
    }
    EXPECT_EQ(weighted_depth, cost) << "V=" << V;
  }
}

TEST(HuffmanTree, SmallTreesAndBadCounts) {
  HuffmanTree one({42});  // no internal node: P(0 | h) = 1
  EXPECT_EQ(one.num_classes(), 1);
  EXPECT_EQ(one.num_nodes(), 0);
  EXPECT_EQ(one.depth(0), 0);
  HuffmanTree two({5, 9});  // the rarer class is the first pick: bit 0
  EXPECT_EQ(two.depth(0), 1);
  EXPECT_EQ(two.codes[two.offsets[0]], 0);
  EXPECT_EQ(two.codes[two.offsets[1]], 1);
  expect_error([] { HuffmanTree(std::vector<int64_t>{}); }, {"HuffmanTree", "empty"});
  expect_error([] { HuffmanTree({3, 1, -2}); }, {"HuffmanTree", "class 2", "negative", "-2"});
}

// --- Huffman ops ----------------------------------------------------------------

struct HsmCase {
  HuffmanTree tree;
  Tensor hidden, weight, bias;
};

HsmCase make_case(const std::vector<int64_t>& counts, int64_t B, int64_t d, Generator& gen,
                  float scale = 1.0f) {
  HuffmanTree tree(counts);
  const int64_t N = tree.num_nodes();
  return {tree, randn({B, d}, gen), randn({N, d}, gen) * (scale / std::sqrt(float(d))),
          randn({N}, gen) * 0.5f};
}

TEST(HierarchicalSoftmax, ProbabilitiesSumToOne) {
  Generator gen(1);
  for (const auto& counts : {kCounts7, zipf_counts(1000), std::vector<int64_t>(64, 1)}) {
    HsmCase c = make_case(counts, 9, 16, gen, 3.0f);
    for (bool with_bias : {false, true}) {
      Tensor log_p =
          hierarchical_softmax_log_prob(c.hidden, c.weight, c.tree, with_bias ? c.bias : Tensor());
      ASSERT_EQ(log_p.shape(), (Shape{9, c.tree.num_classes()}));
      expect_close(logsumexp(log_p, 1), std::vector<float>(9, 0.0f), 2e-5f, 0);
      for (float v : log_p.to_vector()) EXPECT_LE(v, 0.0f);
    }
  }
}

TEST(HierarchicalSoftmax, LogProbMatchesNaive) {
  Generator gen(2);
  for (const auto& counts : {kCounts7, zipf_counts(300)}) {
    HsmCase c = make_case(counts, 13, 24, gen, 4.0f);
    const int64_t B = 13, V = c.tree.num_classes();
    Tensor naive = Tensor::empty({B, V});
    cpu::hierarchical_softmax_log_prob_naive(naive.data<float>(), c.hidden.data<float>(),
                                             c.weight.data<float>(), c.bias.data<float>(), c.tree,
                                             B, 24);
    for_thread_counts([&] {
      expect_close(hierarchical_softmax_log_prob(c.hidden, c.weight, c.tree, c.bias), naive, 2e-5f,
                   1e-5f);
    });
  }
}

TEST(HierarchicalSoftmax, LossIsMinusLogProbOfTheTarget) {
  Generator gen(3);
  HsmCase c = make_case(zipf_counts(200), 11, 8, gen, 3.0f);
  const std::vector<int64_t> y = random_targets(11, 200, gen);
  Tensor targets = from_vector(y);
  Tensor log_p = hierarchical_softmax_log_prob(c.hidden, c.weight, c.tree, c.bias);
  std::vector<float> expected(11);
  for (int64_t b = 0; b < 11; ++b) expected[b] = -log_p.at({b, y[b]});
  Tensor per_row =
      hierarchical_softmax_loss(c.hidden, c.weight, targets, c.tree, Reduction::kNone, c.bias);
  expect_close(per_row, expected, 1e-5f, 1e-5f);
  expect_close(
      hierarchical_softmax_loss(c.hidden, c.weight, targets, c.tree, Reduction::kMean, c.bias),
      {static_cast<float>(sum(per_row).item() / 11.0)}, 1e-5f, 1e-5f);
  expect_close(
      hierarchical_softmax_loss(c.hidden, c.weight, targets, c.tree, Reduction::kSum, c.bias),
      sum(per_row), 1e-5f, 1e-5f);
  // int32 targets give the same; so does the loss of zero weights: depth * log 2.
  std::vector<int32_t> y32(y.begin(), y.end());
  expect_close(hierarchical_softmax_loss(c.hidden, c.weight, from_vector(y32), c.tree,
                                         Reduction::kNone, c.bias),
               per_row, 0, 0);
  Tensor zero_loss = hierarchical_softmax_loss(c.hidden, zeros(c.weight.shape()), targets, c.tree,
                                               Reduction::kNone);
  for (int64_t b = 0; b < 11; ++b)
    EXPECT_NEAR(zero_loss.at({b}), c.tree.depth(y[b]) * std::log(2.0), 1e-5);
}

TEST(HierarchicalSoftmax, FastKernelsMatchNaive) {
  Generator gen(4);
  for (const auto& counts : {kCounts7, zipf_counts(2000)}) {
    const int64_t B = 37, d = 40;
    HsmCase c = make_case(counts, B, d, gen, 6.0f);
    const int64_t N = c.tree.num_nodes(), V = c.tree.num_classes();
    const std::vector<int64_t> y = random_targets(B, V, gen);
    const cpu::PathBatch paths = cpu::make_path_batch(c.tree, y);
    const int64_t S = paths.offsets[B];
    const float* h = c.hidden.data<float>();
    const float* w = c.weight.data<float>();
    const float* bias = c.bias.data<float>();
    Tensor loss_naive = Tensor::empty({B}), coef_naive = Tensor::empty({S});
    cpu::hierarchical_softmax_forward_naive(loss_naive.data<float>(), coef_naive.data<float>(), h,
                                            w, bias, paths, B, d);
    Tensor dloss = randn({B}, gen);
    Tensor dh_naive = zeros({B, d}), dw_naive = zeros({N, d}), db_naive = zeros({N});
    std::vector<Tensor> per_thread_count;  // dw on 1 and on 2 threads: the same bits
    cpu::hierarchical_softmax_backward_naive(dh_naive.data<float>(), dw_naive.data<float>(),
                                             db_naive.data<float>(), h, w, coef_naive.data<float>(),
                                             dloss.data<float>(), paths, B, d);
    for_thread_counts([&] {
      Tensor loss = Tensor::empty({B}), coef = Tensor::empty({S});
      cpu::hierarchical_softmax_forward(loss.data<float>(), coef.data<float>(), h, w, bias, paths,
                                        B, d);
      expect_close(loss, loss_naive, 1e-4f, 1e-5f);
      expect_close(coef, coef_naive, 1e-6f, 1e-5f);
      // Fresh buffers (filled with garbage: every element must be written) ...
      Tensor dh = full({B, d}, 7.0), dw = full({N, d}, 7.0), db = full({N}, 7.0);
      cpu::hierarchical_softmax_backward_hidden(dh.data<float>(), w, coef.data<float>(),
                                                dloss.data<float>(), paths, B, d, false);
      cpu::hierarchical_softmax_backward_weight(dw.data<float>(), h, coef.data<float>(),
                                                dloss.data<float>(), paths, N, d, false);
      cpu::hierarchical_softmax_backward_bias(db.data<float>(), coef.data<float>(),
                                              dloss.data<float>(), paths, N, false);
      expect_close(dh, dh_naive, 1e-5f, 1e-4f);
      expect_close(dw, dw_naive, 1e-5f, 1e-4f);
      expect_close(db, db_naive, 1e-5f, 1e-4f);
      per_thread_count.push_back(dw.clone());
      // ... and accumulation onto what is there.
      cpu::hierarchical_softmax_backward_hidden(dh.data<float>(), w, coef.data<float>(),
                                                dloss.data<float>(), paths, B, d);
      cpu::hierarchical_softmax_backward_weight(dw.data<float>(), h, coef.data<float>(),
                                                dloss.data<float>(), paths, N, d);
      cpu::hierarchical_softmax_backward_bias(db.data<float>(), coef.data<float>(),
                                              dloss.data<float>(), paths, N);
      expect_close(dh, dh_naive * 2.0f, 2e-5f, 1e-4f);
      expect_close(dw, dw_naive * 2.0f, 2e-5f, 1e-4f);
      expect_close(db, db_naive * 2.0f, 2e-5f, 1e-4f);
    });
    expect_close(per_thread_count[0], per_thread_count[1], 0, 0);
  }
}

// The search's top k are topk of the full log-probabilities: the same values in
// the same order, and at each place a class whose log-probability is that value.
// Two classes whose log-probabilities differ by a rounding error (the search sums
// a path's terms in another order) may come in either order.
TEST(HierarchicalSoftmax, TopkEqualsTopkOfLogProb) {
  Generator gen(5);
  for (const auto& counts : {kCounts7, zipf_counts(500)}) {
    HsmCase c = make_case(counts, 17, 12, gen, 4.0f);
    const int64_t V = c.tree.num_classes();
    Tensor log_p = hierarchical_softmax_log_prob(c.hidden, c.weight, c.tree, c.bias);
    const std::vector<float> all_log_p = log_p.to_vector();
    const int64_t N = log_p.size(0);
    for (int64_t k : {int64_t{1}, int64_t{3}, V}) {
      SCOPED_TRACE(fmt::format("V={} k={}", V, k));
      auto [values, indices] = topk(log_p, k, 1);
      const std::vector<float> expected = values.to_vector();
      for_thread_counts([&] {
        auto [found_values, found] =
            hierarchical_softmax_topk(c.hidden, c.weight, c.tree, k, c.bias);
        expect_close(found_values, values, 2e-5f, 1e-5f);
        const std::vector<int64_t> classes = found.to_int_vector();
        const std::vector<int64_t> reference = indices.to_int_vector();
        for (int64_t r = 0; r < N; ++r) {
          std::vector<bool> seen(V, false);
          for (int64_t i = 0; i < k; ++i) {
            const int64_t at = r * k + i, cls = classes[at];
            ASSERT_TRUE(cls >= 0 && cls < V && !seen[cls]) << "row " << r << " place " << i;
            seen[cls] = true;
            if (cls == reference[at]) continue;
            EXPECT_NEAR(all_log_p[r * V + cls], expected[at], 2e-5f * std::abs(expected[at]))
                << "row " << r << " place " << i << ": class " << cls << " instead of "
                << reference[at];
          }
        }
      });
    }
  }
}

// Exact ties (node weights at zero, as word2vec starts them: every class at one
// depth has the same log-probability) go to the lower class, as topk's do, and
// a tie across the k-th place takes the lower classes in.
TEST(HierarchicalSoftmax, TopkBreaksExactTiesAsTopk) {
  Generator gen(6);
  for (const auto& counts :
       {kCounts7, std::vector<int64_t>{10, 9, 8, 7, 6, 5, 4, 3}, zipf_counts(50)}) {
    HuffmanTree tree(counts);
    const int64_t V = tree.num_classes(), N = tree.num_nodes();
    Tensor hidden = randn({3, 4}, gen), weight = zeros({N, 4});
    Tensor log_p = hierarchical_softmax_log_prob(hidden, weight, tree);
    for (int64_t k = 1; k <= V; ++k) {
      SCOPED_TRACE(fmt::format("V={} k={}", V, k));
      auto [values, indices] = topk(log_p, k, 1);
      auto [found_values, found] = hierarchical_softmax_topk(hidden, weight, tree, k);
      EXPECT_EQ(found.to_int_vector(), indices.to_int_vector());
      expect_close(found_values, values, 1e-6f, 0);
    }
  }
}

TEST(HierarchicalSoftmax, BadInputsAreErrors) {
  HuffmanTree tree(kCounts7);
  Tensor h = zeros({3, 4}), w = zeros({6, 4});
  expect_error(
      [&] {
        hierarchical_softmax_loss(h, w, from_vector(std::vector<int64_t>{1, 7, 0}), tree);
      },
      {"hierarchical_softmax_loss", "target 7", "row 1", "7 classes"});
  expect_error(
      [&] {
        hierarchical_softmax_loss(h, w, from_vector(std::vector<int32_t>{1, 2, -3}), tree);
      },
      {"target -3", "row 2"});
  expect_error([&] { hierarchical_softmax_loss(h, w, zeros({3}), tree); }, {"int32 or int64"});
  expect_error(
      [&] {
        hierarchical_softmax_loss(h, w, from_vector(std::vector<int64_t>{1, 2}), tree);
      },
      {"targets", "[3]", "[2]"});
  expect_error(
      [&] {
        hierarchical_softmax_loss(h, zeros({7, 4}), from_vector(std::vector<int64_t>{1, 2, 0}),
                                  tree);
      },
      {"node_weight", "[6, 4]", "[7, 4]"});
  expect_error([&] { hierarchical_softmax_log_prob(h, w, tree, zeros({5})); },
               {"node_bias", "[6]", "[5]"});
  expect_error([&] { hierarchical_softmax_log_prob(zeros({3}), w, tree); }, {"hidden", "[B, d]"});
  expect_error([&] { hierarchical_softmax_topk(h, w, tree, 8); }, {"k", "[1, 7]", "8"});
  expect_error([&] { hierarchical_softmax_topk(h, w, tree, 0); }, {"k", "0"});
  Tensor nan_hidden = zeros({3, 4});
  nan_hidden.set({2, 1}, std::nan(""));
  expect_error(
      [&] {
        hierarchical_softmax_loss(nan_hidden, full({6, 4}, 1.0),
                                  from_vector(std::vector<int64_t>{1, 2, 0}), tree);
      },
      {"row 2", "NaN"});
}

// --- Huffman gradients ------------------------------------------------------------

TEST(HierarchicalSoftmaxGrad, LossMatchesFiniteDifferences) {
  Generator gen(6);
  HuffmanTree tree(kCounts7);
  Tensor h = randn({5, 4}, gen, grad_opts());
  Tensor w = (randn({6, 4}, gen) * 0.7f).set_requires_grad();
  Tensor bias = (randn({6}, gen) * 0.5f).set_requires_grad();
  Tensor targets = from_vector(std::vector<int64_t>{0, 3, 6, 3, 2});
  for (Reduction r : {Reduction::kNone, Reduction::kMean, Reduction::kSum}) {
    SCOPED_TRACE(reduction_name(r));
    expect_gradcheck(
        [&](auto& in) { return hierarchical_softmax_loss(in[0], in[1], targets, tree, r, in[2]); },
        {h, w, bias});
    expect_gradcheck(
        [&](auto& in) { return hierarchical_softmax_loss(in[0], in[1], targets, tree, r); },
        {h, w});
  }
}

TEST(HierarchicalSoftmaxGrad, LogProbMatchesFiniteDifferences) {
  Generator gen(7);
  HuffmanTree tree(kCounts7);
  Tensor h = randn({3, 4}, gen, grad_opts());
  Tensor w = (randn({6, 4}, gen) * 0.7f).set_requires_grad();
  Tensor bias = (randn({6}, gen) * 0.5f).set_requires_grad();
  expect_gradcheck(
      [&](auto& in) { return hierarchical_softmax_log_prob(in[0], in[1], tree, in[2]); },
      {h, w, bias});
}

// The fused loss's gradients equal those of nll_loss over the full log_prob, on
// a larger tree; and a second backward adds to the first.
TEST(HierarchicalSoftmaxGrad, FusedLossMatchesNllOfLogProb) {
  Generator gen(8);
  HsmCase c = make_case(zipf_counts(300), 10, 16, gen, 3.0f);
  Tensor targets = from_vector(random_targets(10, 300, gen));
  auto leaves = [&] {
    return std::vector<Tensor>{c.hidden.clone().set_requires_grad(),
                               c.weight.clone().set_requires_grad(),
                               c.bias.clone().set_requires_grad()};
  };
  std::vector<Tensor> fused = leaves(), reference = leaves();
  hierarchical_softmax_loss(fused[0], fused[1], targets, c.tree, Reduction::kMean, fused[2])
      .backward();
  nll_loss(hierarchical_softmax_log_prob(reference[0], reference[1], c.tree, reference[2]), targets)
      .backward();
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    expect_close(fused[i].grad(), reference[i].grad(), 1e-6f, 1e-4f);
  }
  Tensor first = fused[1].grad().clone();
  hierarchical_softmax_loss(fused[0], fused[1], targets, c.tree, Reduction::kMean, fused[2])
      .backward();
  expect_close(fused[1].grad(), first * 2.0f, 1e-6f, 1e-5f);
}

// --- Modules --------------------------------------------------------------------

TEST(HierarchicalSoftmax, ModuleInterface) {
  Generator gen(9);
  HierarchicalSoftmax layer(8, kCounts7);
  auto named = layer.named_parameters();
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].first, "weight");
  EXPECT_EQ(named[0].second.shape(), (Shape{6, 8}));
  for (float v : layer.weight.to_vector()) EXPECT_EQ(v, 0.0f);  // word2vec's init
  HierarchicalSoftmax with_bias(8, kCounts7, true);
  EXPECT_EQ(with_bias.named_parameters()[1].first, "bias");

  Tensor h = randn({16, 8}, gen);
  const std::vector<int64_t> y = random_targets(16, 7, gen);
  Tensor targets = from_vector(y);
  double mean_depth = 0.0;
  for (int64_t t : y) mean_depth += layer.tree().depth(t) / 16.0;
  EXPECT_NEAR(layer.loss(h, targets).item(), mean_depth * std::log(2.0), 1e-5);
  // A few steps of gradient descent on a fixed batch lower the loss.
  const float before = layer.loss(h, targets).item();
  for (int step = 0; step < 20; ++step) {
    layer.zero_grad();
    layer.loss(h, targets).backward();
    add_(layer.weight, layer.weight.grad(), -0.5f);
  }
  EXPECT_LT(layer.loss(h, targets).item(), 0.8f * before);
  Tensor log_p = layer.log_prob(h);
  EXPECT_EQ(log_p.shape(), (Shape{16, 7}));
  Tensor predicted = layer.predict(h);
  EXPECT_EQ(predicted.shape(), Shape{16});
  EXPECT_EQ(predicted.dtype(), DType::kInt64);
  EXPECT_EQ(predicted.to_int_vector(), argmax(log_p, 1).to_int_vector());
  expect_close(layer.forward(h), log_p, 0, 0);

  HierarchicalSoftmax single(4, {10});  // one class: probability 1
  Tensor h4 = randn({3, 4}, gen);
  EXPECT_EQ(single.loss(h4, from_vector(std::vector<int64_t>{0, 0, 0})).item(), 0.0f);
  expect_close(single.log_prob(h4), {0.0f, 0.0f, 0.0f}, 0, 0);
  EXPECT_EQ(single.predict(h4).to_int_vector(), (std::vector<int64_t>{0, 0, 0}));
}

// --- Two-level class tree ---------------------------------------------------------

TEST(HierarchicalClassBased, FrequencyBinnedClusters) {
  // Sorted counts 4, 3, 2, 1 (total 10): running shares .4 .7 .9 1; with 2 bins the
  // bin moves on once the share passes 1/2, after the class that passes it.
  EXPECT_EQ(frequency_binned_clusters({4, 3, 2, 1}, 2), (std::vector<int64_t>{0, 0, 1, 1}));
  // Unsorted input, ties in id order: sorted ids 1, 3, 0, 2 with counts 3, 3, 2, 2.
  EXPECT_EQ(frequency_binned_clusters({2, 3, 2, 3}, 2), (std::vector<int64_t>{1, 0, 1, 0}));
  // Four equal counts into four bins: shares .25 .5 .75 1 give bins 0 0 1 2; the
  // fourth bin stays empty and is dropped.
  EXPECT_EQ(frequency_binned_clusters({1, 1, 1, 1}, 4), (std::vector<int64_t>{0, 0, 1, 2}));
  // One dominant class fills its own cluster; the default is round(sqrt(V)) bins.
  EXPECT_EQ(frequency_binned_clusters({1, 100, 1, 1}), (std::vector<int64_t>{1, 0, 1, 1}));
  const std::vector<int64_t> zipf = frequency_binned_clusters(zipf_counts(10000));
  ClassClusters clusters(zipf);
  EXPECT_GT(clusters.num_clusters(), 50);
  EXPECT_LE(clusters.num_clusters(), 100);
  EXPECT_EQ(clusters.size(0), 1);                              // the most frequent class alone
  EXPECT_GT(clusters.size(clusters.num_clusters() - 1), 500);  // the rare tail
  expect_error([] { frequency_binned_clusters({}); }, {"frequency_binned_clusters", "empty"});
}

TEST(HierarchicalClassBased, ClustersAndErrors) {
  ClassClusters clusters(kClusters7);
  EXPECT_EQ(clusters.num_clusters(), 3);
  EXPECT_EQ(clusters.members, (std::vector<int64_t>{0, 4, 2, 5, 1, 3, 6}));
  EXPECT_EQ(clusters.offsets, (std::vector<int64_t>{0, 2, 4, 7}));
  EXPECT_EQ(clusters.position, (std::vector<int64_t>{0, 0, 0, 1, 1, 1, 2}));
  expect_error([] { ClassClusters({0, 2, 2}); }, {"ClassClusters", "cluster 1", "no classes"});
  expect_error([] { ClassClusters({0, -1}); }, {"ClassClusters", "class 1", "-1"});
  Generator gen(10);
  ClassBasedSoftmax layer(4, kClusters7, gen);
  expect_error(
      [&] {
        layer.loss(zeros({2, 4}), from_vector(std::vector<int64_t>{7, 0}));
      },
      {"class_based_softmax_loss", "target 7", "row 0"});
  expect_error(
      [&] {
        layer.loss(zeros({2, 5}), from_vector(std::vector<int64_t>{1, 0}));
      },
      {"class_based_softmax_loss", "[3, 5]", "[3, 4]"});
  expect_error([&] { layer.predict_topk(zeros({2, 4}), 8); }, {"k", "[1, 7]"});
}

struct ClassCase {
  ClassClusters clusters;
  Tensor hidden, cluster_weight, cluster_bias, class_weight, class_bias;
};

ClassCase make_class_case(const std::vector<int64_t>& assignment, int64_t B, int64_t d,
                          Generator& gen) {
  ClassClusters clusters(assignment);
  const int64_t K = clusters.num_clusters(), V = clusters.num_classes();
  const float scale = 3.0f / std::sqrt(static_cast<float>(d));
  return {clusters,        randn({B, d}, gen),         randn({K, d}, gen) * scale,
          randn({K}, gen), randn({V, d}, gen) * scale, randn({V}, gen)};
}

Tensor class_log_prob(const ClassCase& c) {
  return class_based_log_prob(linear(c.hidden, c.class_weight, c.class_bias),
                              linear(c.hidden, c.cluster_weight, c.cluster_bias), c.clusters);
}

TEST(HierarchicalClassBased, LogProbMatchesDefinitionAndSumsToOne) {
  Generator gen(12);
  for (const auto& assignment :
       {kClusters7, frequency_binned_clusters(zipf_counts(400)), std::vector<int64_t>(9, 0)}) {
    const int64_t B = 6, d = 10;
    ClassCase c = make_class_case(assignment, B, d, gen);
    const int64_t V = c.clusters.num_classes(), K = c.clusters.num_clusters();
    Tensor log_p = class_log_prob(c);
    expect_close(logsumexp(log_p, 1), std::vector<float>(B, 0.0f), 2e-5f, 0);
    // log P(y) = log softmax(U h + a)_k + log softmax over k's classes, in double.
    Tensor u = linear(c.hidden, c.cluster_weight, c.cluster_bias);
    Tensor z = linear(c.hidden, c.class_weight, c.class_bias);
    std::vector<float> expected(B * V);
    for (int64_t b = 0; b < B; ++b) {
      double cluster_sum = 0.0;
      for (int64_t k = 0; k < K; ++k) cluster_sum += std::exp(u.at({b, k}));
      for (int64_t y = 0; y < V; ++y) {
        const int64_t k = assignment[y];
        double within_sum = 0.0;
        for (int64_t j = 0; j < V; ++j)
          if (assignment[j] == k) within_sum += std::exp(z.at({b, j}));
        expected[b * V + y] = static_cast<float>(u.at({b, k}) - std::log(cluster_sum) +
                                                 z.at({b, y}) - std::log(within_sum));
      }
    }
    expect_close(log_p, expected, 2e-5f, 1e-5f);
    // The fused loss is -log P(target).
    const std::vector<int64_t> y = random_targets(B, V, gen);
    Tensor per_row =
        class_based_softmax_loss(c.hidden, c.cluster_weight, c.cluster_bias, c.class_weight,
                                 c.class_bias, from_vector(y), c.clusters, Reduction::kNone);
    std::vector<float> nll(B);
    for (int64_t b = 0; b < B; ++b) nll[b] = -expected[b * V + y[b]];
    expect_close(per_row, nll, 2e-5f, 1e-5f);
    expect_close(class_based_softmax_loss(c.hidden, c.cluster_weight, c.cluster_bias,
                                          c.class_weight, c.class_bias, from_vector(y), c.clusters),
                 {static_cast<float>(sum(per_row).item() / B)}, 1e-5f, 1e-5f);
  }
}

TEST(HierarchicalClassBased, FastKernelsMatchNaive) {
  Generator gen(13);
  const int64_t B = 41, d = 24;
  for (const auto& assignment : {kClusters7, frequency_binned_clusters(zipf_counts(3000))}) {
    ClassCase c = make_class_case(assignment, B, d, gen);
    const int64_t V = c.clusters.num_classes();
    const cpu::ClusterBatch batch = cpu::make_cluster_batch(c.clusters, random_targets(B, V, gen));
    const int64_t Z = batch.offsets[B];
    const float* h = c.hidden.data<float>();
    const float* w = c.class_weight.data<float>();
    const float* bias = c.class_bias.data<float>();
    Tensor nll_naive = Tensor::empty({B}), lse_naive = Tensor::empty({B}),
           logits_naive = Tensor::empty({Z});
    cpu::within_cluster_forward_naive(nll_naive.data<float>(), lse_naive.data<float>(),
                                      logits_naive.data<float>(), h, w, bias, batch, B, d);
    Tensor dloss = randn({B}, gen);
    Tensor dz = Tensor::empty({Z});
    cpu::within_cluster_dlogits(dz.data<float>(), logits_naive.data<float>(),
                                lse_naive.data<float>(), dloss.data<float>(), batch, B);
    Tensor dh_naive = zeros({B, d}), dw_naive = zeros({V, d}), db_naive = zeros({V});
    cpu::within_cluster_backward_naive(dh_naive.data<float>(), dw_naive.data<float>(),
                                       db_naive.data<float>(), h, w, dz.data<float>(), batch, B, d);
    for_thread_counts([&] {
      Tensor nll = Tensor::empty({B}), lse = Tensor::empty({B}), logits = Tensor::empty({Z});
      cpu::within_cluster_forward(nll.data<float>(), lse.data<float>(), logits.data<float>(), h, w,
                                  bias, batch, B, d);
      expect_close(nll, nll_naive, 1e-4f, 1e-5f);
      expect_close(lse, lse_naive, 1e-4f, 1e-5f);
      expect_close(logits, logits_naive, 1e-4f, 1e-5f);
      Tensor dh = full({B, d}, 3.0), dw = zeros({V, d}), db = zeros({V});
      cpu::within_cluster_backward_hidden(dh.data<float>(), w, dz.data<float>(), batch, B, d,
                                          false);
      cpu::within_cluster_backward_weight(dw.data<float>(), db.data<float>(), h, dz.data<float>(),
                                          batch, d);
      expect_close(dh, dh_naive, 1e-5f, 1e-4f);
      expect_close(dw, dw_naive, 1e-5f, 1e-4f);
      expect_close(db, db_naive, 1e-5f, 1e-4f);
    });
  }
}

TEST(HierarchicalClassBasedGrad, LossMatchesFiniteDifferences) {
  Generator gen(14);
  ClassCase c = make_class_case(kClusters7, 5, 4, gen);
  std::vector<Tensor> inputs = {c.hidden, c.cluster_weight, c.cluster_bias, c.class_weight,
                                c.class_bias};
  for (Tensor& t : inputs) t.set_requires_grad();
  Tensor targets = from_vector(std::vector<int64_t>{0, 3, 6, 3, 2});
  for (Reduction r : {Reduction::kNone, Reduction::kMean, Reduction::kSum}) {
    SCOPED_TRACE(reduction_name(r));
    expect_gradcheck(
        [&](auto& in) {
          return class_based_softmax_loss(in[0], in[1], in[2], in[3], in[4], targets, c.clusters,
                                          r);
        },
        inputs);
  }
  expect_gradcheck(
      [&](auto& in) {
        return class_based_softmax_loss(in[0], in[1], Tensor(), in[2], Tensor(), targets,
                                        c.clusters);
      },
      {c.hidden, c.cluster_weight, c.class_weight});
}

TEST(HierarchicalClassBasedGrad, LogProbMatchesFiniteDifferences) {
  Generator gen(15);
  ClassClusters clusters(kClusters7);
  Tensor class_logits = randn({3, 7}, gen, grad_opts());
  Tensor cluster_logits = randn({3, 3}, gen, grad_opts());
  expect_gradcheck([&](auto& in) { return class_based_log_prob(in[0], in[1], clusters); },
                   {class_logits, cluster_logits});
}

TEST(HierarchicalClassBased, TopkEqualsTopkOfLogProb) {
  Generator gen(16);
  for (const auto& assignment : {kClusters7, frequency_binned_clusters(zipf_counts(600))}) {
    ClassCase c = make_class_case(assignment, 15, 12, gen);
    const int64_t V = c.clusters.num_classes();
    Tensor log_p = class_log_prob(c);
    for (int64_t k : {int64_t{1}, int64_t{4}, V}) {
      SCOPED_TRACE(fmt::format("V={} k={}", V, k));
      auto [values, indices] = topk(log_p, k, 1);
      for_thread_counts([&] {
        auto [found_values, found] =
            class_based_softmax_topk(c.hidden, c.cluster_weight, c.cluster_bias, c.class_weight,
                                     c.class_bias, c.clusters, k);
        EXPECT_EQ(found.to_int_vector(), indices.to_int_vector());
        expect_close(found_values, values, 2e-5f, 1e-5f);
      });
    }
  }
}

TEST(HierarchicalClassBased, ModuleInterface) {
  Generator gen(17);
  auto layer = ClassBasedSoftmax::from_counts(6, zipf_counts(50), 0, gen);
  EXPECT_EQ(layer->clusters().num_clusters(), 7);  // round(sqrt(50)), none empty here
  std::vector<std::string> names;
  for (const auto& [name, t] : layer->named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"cluster_weight", "cluster_bias", "class_weight",
                                             "class_bias"}));
  EXPECT_EQ(layer->class_weight.shape(), (Shape{50, 6}));
  Tensor h = randn({12, 6}, gen);
  Tensor targets = from_vector(random_targets(12, 50, gen));
  const float before = layer->loss(h, targets).item();
  for (int step = 0; step < 20; ++step) {
    layer->zero_grad();
    layer->loss(h, targets).backward();
    for (Tensor& p : layer->parameters()) add_(p, p.grad(), -0.5f);
  }
  EXPECT_LT(layer->loss(h, targets).item(), 0.8f * before);
  Tensor log_p = layer->log_prob(h);
  EXPECT_EQ(log_p.shape(), (Shape{12, 50}));
  EXPECT_EQ(layer->predict(h).to_int_vector(), argmax(log_p, 1).to_int_vector());
  expect_close(layer->forward(h), log_p, 0, 0);
}

}  // namespace
}  // namespace bridle
