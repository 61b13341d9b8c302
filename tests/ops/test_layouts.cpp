// Opaque (oneDNN blocked) layouts: convolution outputs stay blocked, plain access
// converts them, and a conv - batch norm - ReLU - residual add chain computes the
// same values and gradients with blocked layouts as with every tensor plain.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "ops/conv.h"
#include "ops/onednn.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_gradcheck;

using testing::grad_opts;

// Turns blocked layouts off for its scope.
class PlainLayoutsGuard {
 public:
  PlainLayoutsGuard() { onednn::set_blocked_layouts_enabled(false); }
  ~PlainLayoutsGuard() { onednn::set_blocked_layouts_enabled(true); }
};

Tensor naive_conv(const Tensor& x, const Tensor& w, int64_t padding) {
  ConvGeometry g{};
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.O = w.size(0), g.KH = w.size(2), g.KW = w.size(3);
  g.SH = g.SW = g.DH = g.DW = g.G = 1;
  g.PH = g.PW = padding;
  g.OH = g.H + 2 * padding - g.KH + 1, g.OW = g.W + 2 * padding - g.KW + 1;
  Tensor y = Tensor::empty({g.N, g.O, g.OH, g.OW});
  cpu::conv2d_forward_naive(y.data<float>(), x.data<float>(), w.data<float>(), nullptr, g);
  return y;
}

TEST(Layouts, ConvOutputIsBlockedAndReadsBackPlain) {
  Generator gen(1);
  Tensor x = randn({2, 16, 8, 8}, gen), w = randn({16, 16, 3, 3}, gen) * 0.1f;
  Tensor y = conv2d(x, w, Tensor(), {{1, 1}, {1, 1}});
  ASSERT_FALSE(y.is_plain()) << "oneDNN chose a plain output; the blocked path goes untested";
  EXPECT_NE(y.layout()->name().find("blocked"), std::string::npos) << y.layout()->name();
  Tensor kept = y.detach();  // shares the blocked memory and keeps its layout
  EXPECT_FALSE(kept.is_plain());
  Tensor expected = naive_conv(x, w, 1);
  expect_close(y, expected.to_vector(), 1e-4f, 1e-4f);  // to_vector converts y in place
  EXPECT_TRUE(y.is_plain());
  expect_close(kept, expected.to_vector(), 1e-4f, 1e-4f);
  // Views, element access and reductions see row-major elements.
  Tensor z = conv2d(x, w, Tensor(), {{1, 1}, {1, 1}});
  EXPECT_NEAR(z.reshape({2, 16 * 64}).at({1, 70}), expected.at({1, 1, 0, 6}), 1e-4);
  Tensor z2 = conv2d(x, w, Tensor(), {{1, 1}, {1, 1}});
  EXPECT_NEAR(z2.sum().item(), expected.sum().item(), 1e-2);
}

TEST(Layouts, PlainSwitchKeepsEveryTensorPlain) {
  Generator gen(2);
  Tensor x = randn({2, 16, 8, 8}, gen), w = randn({16, 16, 3, 3}, gen);
  PlainLayoutsGuard plain;
  Tensor y = conv2d(x, w, Tensor(), {{1, 1}, {1, 1}});
  EXPECT_TRUE(y.is_plain());
  EXPECT_TRUE(max_pool2d(y, 2).is_plain());
}

TEST(Layouts, MixedLayoutsAddCorrectly) {
  Generator gen(3);
  Tensor x = randn({2, 16, 6, 6}, gen), w = randn({16, 16, 3, 3}, gen) * 0.1f;
  Tensor blocked = conv2d(x, w, Tensor(), {{1, 1}, {1, 1}});
  ASSERT_FALSE(blocked.is_plain());
  Tensor plain = randn({2, 16, 6, 6}, gen);
  Tensor expected = naive_conv(x, w, 1) + plain;
  expect_close(blocked + plain, expected.to_vector(), 1e-4f, 1e-4f);
}

// One ResNet basic block with a strided 1x1 shortcut, run twice: with blocked
// layouts and with every tensor plain. Values and all gradients must agree.
struct BlockResult {
  std::vector<float> y, dx, dw1, dw2, dws, dbn;
};

BlockResult run_block(const Tensor& x_init, const std::vector<Tensor>& weights) {
  Tensor x = x_init.clone().set_requires_grad();
  std::vector<Tensor> w;
  for (const Tensor& t : weights) w.push_back(t.clone().set_requires_grad());
  Tensor gamma = ones({32}).set_requires_grad(), beta = zeros({32}).set_requires_grad();
  Tensor rm = zeros({32}), rv = ones({32});
  Tensor h =
      relu(batch_norm(conv2d(x, w[0], Tensor(), {{2, 2}, {1, 1}}), rm, rv, gamma, beta, true));
  h = batch_norm(conv2d(h, w[1], Tensor(), {{1, 1}, {1, 1}}), rm, rv, Tensor(), Tensor(), true);
  Tensor shortcut = conv2d(x, w[2], Tensor(), {{2, 2}});
  Tensor y = max_pool2d(relu(h + shortcut), 2);
  Tensor loss = (flatten(y) * flatten(y)).sum();
  loss.backward();
  return {y.to_vector(),           x.grad().to_vector(),    w[0].grad().to_vector(),
          w[1].grad().to_vector(), w[2].grad().to_vector(), gamma.grad().to_vector()};
}

void expect_vectors_close(const std::vector<float>& a, const std::vector<float>& b,
                          const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], 1e-4f + 1e-3f * std::abs(b[i])) << what << " element " << i;
}

TEST(Layouts, ResidualBlockMatchesPlainLayouts) {
  Generator gen(4);
  Tensor x = randn({4, 16, 12, 12}, gen);
  std::vector<Tensor> w = {randn({32, 16, 3, 3}, gen) * 0.1f, randn({32, 32, 3, 3}, gen) * 0.1f,
                           randn({32, 16, 1, 1}, gen) * 0.3f};
  BlockResult blocked = run_block(x, w);
  BlockResult plain;
  {
    PlainLayoutsGuard guard;
    plain = run_block(x, w);
  }
  expect_vectors_close(blocked.y, plain.y, "y");
  expect_vectors_close(blocked.dx, plain.dx, "dx");
  expect_vectors_close(blocked.dw1, plain.dw1, "dw1");
  expect_vectors_close(blocked.dw2, plain.dw2, "dw2");
  expect_vectors_close(blocked.dws, plain.dws, "dw shortcut");
  expect_vectors_close(blocked.dbn, plain.dbn, "dgamma");
}

TEST(Layouts, GradcheckThroughABlockedChain) {
  Generator gen(5);
  Tensor w = randn({8, 8, 3, 3}, gen) * 0.3f;
  expect_gradcheck(
      [w](auto& in) {
        Tensor h = conv2d(in[0], w, Tensor(), {{1, 1}, {1, 1}});
        h = batch_norm(h, Tensor(), Tensor(), in[1], Tensor(), true);
        return avg_pool2d(relu(h + conv2d(in[0], w, Tensor(), {{1, 1}, {1, 1}})), 2);
      },
      {randn({2, 8, 4, 4}, gen, grad_opts()), uniform({8}, 0.5f, 1.5f, gen).set_requires_grad()});
}

}  // namespace
}  // namespace bridle
