// MixtureOfSoftmaxes: a distribution per row, one component is a plain softmax
// layer, gradients, and errors.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

TEST(MixtureOfSoftmaxes, RowsAreLogDistributions) {
  Generator gen(1);
  MixtureOfSoftmaxes mos(6, 9, 3, gen);
  EXPECT_EQ(mos.num_parameters(), 6 * 3 + (6 * 18 + 18) + (6 * 9 + 9));
  Tensor log_p = mos.forward(randn({5, 6}, gen));
  EXPECT_EQ(log_p.shape(), (Shape{5, 9}));
  expect_close(exp(log_p).sum(1), ones({5}), 1e-5f, 0.0f);
}

TEST(MixtureOfSoftmaxes, OneComponentIsASoftmaxLayer) {
  Generator gen(2);
  MixtureOfSoftmaxes mos(4, 7, 1, gen);
  Tensor h = randn({3, 4}, gen);
  Tensor expected = log_softmax(mos.decoder->forward(tanh(mos.latent->forward(h))), -1);
  expect_close(mos.forward(h), expected, 1e-5f, 1e-5f);
}

TEST(MixtureOfSoftmaxes, GradientsAndErrors) {
  Generator gen(3);
  MixtureOfSoftmaxes mos(3, 4, 2, gen);
  Tensor targets = from_vector(std::vector<int64_t>{0, 3});
  expect_gradcheck([&](auto& in) { return nll_loss(mos.forward(in[0]), targets); },
                   {randn({2, 3}, gen).set_requires_grad()});
  nll_loss(mos.forward(randn({2, 3}, gen)), targets).backward();
  for (const Tensor& p : mos.parameters()) EXPECT_TRUE(p.grad().defined());
  expect_error([&] { mos.forward(zeros({2, 5})); }, {"MixtureOfSoftmaxes", "[B, 3]", "[2, 5]"});
  expect_error([&] { MixtureOfSoftmaxes(3, 4, 0); }, {"components=0"});
}

}  // namespace
}  // namespace bridle
