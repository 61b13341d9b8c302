// Indexing ops: index_select (any dim, any dtype), gather, embedding and
// indices_in_range: values, repeated-index accumulation, fast vs naive backward,
// finite-difference gradients, errors; and the Embedding layer.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <vector>

#include "../test_util.h"
#include "nn/embedding.h"
#include "ops/indexing.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;
using testing::grad_opts;

Tensor ids(const std::vector<int64_t>& values, const Shape& shape = {}) {
  return from_vector(values, shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape);
}

TEST(IndexingSelect, PicksRowsAlongAnyDim) {
  Tensor x = from_vector({0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}, {4, 3});
  expect_close(index_select(x, ids({2, 0, 2})), {20, 21, 22, 0, 1, 2, 20, 21, 22}, 0, 0);
  EXPECT_EQ(index_select(x, ids({2, 0, 2})).shape(), (Shape{3, 3}));
  // dim 1 (and -1): columns.
  expect_close(index_select(x, ids({2, 0}), 1), {2, 0, 12, 10, 22, 20, 32, 30}, 0, 0);
  expect_close(index_select(x, ids({1}), -1), {1, 11, 21, 31}, 0, 0);
  // A middle dim of a 3-D tensor: [2, 3, 2] -> [2, 2, 2].
  Tensor y = arange(12).reshape({2, 3, 2});
  expect_close(index_select(y, ids({2, 1}), 1), {4, 5, 2, 3, 10, 11, 8, 9}, 0, 0);
  // int32 indices, integer inputs, and no indices at all.
  Tensor i32 = from_vector(std::vector<int32_t>{3, 3}, {2});
  expect_close(index_select(x, i32), {30, 31, 32, 30, 31, 32}, 0, 0);
  Tensor labels = from_vector(std::vector<int64_t>{7, 8, 9});
  EXPECT_EQ(index_select(labels, ids({2, 0})).to_int_vector(), (std::vector<int64_t>{9, 7}));
  EXPECT_EQ(index_select(x, ids({})).shape(), (Shape{0, 3}));
}

TEST(IndexingSelect, RepeatedIndicesAccumulate) {
  Tensor x = zeros({4, 3}, grad_opts());
  Tensor out = index_select(x, ids({1, 3, 1, 1}));
  out.backward(from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {4, 3}));
  // row 1 gets rows 0, 2 and 3 of the gradient; row 3 gets row 1; rows 0 and 2 nothing.
  expect_close(x.grad(), {0, 0, 0, 18, 21, 24, 0, 0, 0, 4, 5, 6}, 0, 0);
  // Along dim 1.
  Tensor z = zeros({2, 3}, grad_opts());
  index_select(z, ids({0, 0, 2}), 1).backward(from_vector({1, 2, 3, 4, 5, 6}, {2, 3}));
  expect_close(z.grad(), {3, 0, 3, 9, 0, 6}, 0, 0);
}

TEST(IndexingSelect, FastBackwardMatchesNaive) {
  // Many repeats, several column blocks, both dims, accumulate and overwrite.
  Generator gen(3);
  for (auto [outer, n, K, inner] : std::vector<std::array<int64_t, 4>>{
           {1, 50, 4000, 77}, {3, 20, 500, 40}, {64, 9, 300, 1}, {1, 7, 10, 1}}) {
    std::vector<int64_t> idx(K);
    for (auto& i : idx) i = static_cast<int64_t>(gen.next_u64() % n);
    Tensor dout = randn({outer * K * inner}, gen);
    Tensor start = randn({outer * n * inner}, gen);
    Tensor fast = start.clone(), naive = start.clone(), fresh = randn({outer * n * inner}, gen);
    cpu::index_select_backward(fast.data<float>(), dout.data<float>(), idx.data(), outer, n, K,
                               inner, /*accumulate=*/true);
    cpu::index_select_backward_naive(naive.data<float>(), dout.data<float>(), idx.data(), outer, n,
                                     K, inner);
    expect_close(fast, naive, 1e-5f, 1e-5f);
    cpu::index_select_backward(fresh.data<float>(), dout.data<float>(), idx.data(), outer, n, K,
                               inner, /*accumulate=*/false);
    expect_close(fresh, naive - start, 1e-4f, 1e-5f);
  }
}

TEST(IndexingSelect, Gradcheck) {
  Generator gen(4);
  Tensor x = randn({5, 4}, gen, grad_opts());
  Tensor rows = ids({4, 0, 4, 2, 4});
  expect_gradcheck([&](auto& in) { return index_select(in[0], rows); }, {x});
  Tensor y = randn({2, 5, 3}, gen, grad_opts());
  expect_gradcheck([&](auto& in) { return index_select(in[0], ids({1, 1, 3}), 1); }, {y});
  expect_gradcheck([&](auto& in) { return index_select(in[0], ids({2, 0}), 2); }, {y});
}

TEST(IndexingSelect, Errors) {
  Tensor x = zeros({5, 4});
  expect_error(
      [&] {
        index_select(x, ids({1, 5, 2}));
      },
      {"index_select", "index 5 at position 1", "size 5", "[5, 4]", "[3]"});
  expect_error([&] { index_select(x, ids({-1})); }, {"index_select", "index -1 at position 0"});
  expect_error([&] { index_select(x, ids({9}), 1); }, {"index_select", "dim 1 of size 4"});
  expect_error([&] { index_select(x, from_vector({1.0f})); },
               {"index_select", "int32 or int64", "float32"});
  expect_error([&] { index_select(x, ids({1, 2}, {1, 2})); }, {"index_select", "1-D", "[1, 2]"});
  expect_error([&] { index_select(x, ids({0}), 2); }, {"index_select", "dim 2"});
}

TEST(IndexingGather, PicksEntriesPerRow) {
  Tensor x = from_vector({0, 1, 2, 10, 11, 12}, {2, 3});
  Tensor one = gather(x, ids({2, 0}));
  EXPECT_EQ(one.shape(), (Shape{2}));
  expect_close(one, {2, 10}, 0, 0);
  Tensor several = gather(x, ids({1, 1, 0, 2, 2, 2}, {2, 3}));
  EXPECT_EQ(several.shape(), (Shape{2, 3}));
  expect_close(several, {1, 1, 0, 12, 12, 12}, 0, 0);
  expect_close(gather(x, from_vector(std::vector<int32_t>{1, 2})), {1, 12}, 0, 0);
}

TEST(IndexingGather, RepeatedIndicesAccumulateAndGradcheck) {
  Tensor x = zeros({2, 3}, grad_opts());
  gather(x, ids({1, 1, 0, 2, 2, 2}, {2, 3})).backward(from_vector({1, 2, 3, 4, 5, 6}, {2, 3}));
  expect_close(x.grad(), {3, 3, 0, 0, 0, 15}, 0, 0);
  Generator gen(5);
  Tensor y = randn({4, 6}, gen, grad_opts());
  expect_gradcheck([&](auto& in) { return gather(in[0], ids({5, 0, 3, 3})); }, {y});
  expect_gradcheck(
      [&](auto& in) {
        return gather(in[0], ids({5, 5, 0, 1, 3, 3, 2, 4}, {4, 2}));
      },
      {y});
  // A large batch runs the threaded kernels: the gradient is still exact.
  Tensor big = zeros({4096, 16}, grad_opts());
  std::vector<int64_t> cols(4096 * 2);
  for (size_t i = 0; i < cols.size(); ++i) cols[i] = static_cast<int64_t>(i % 3);
  gather(big, ids(cols, {4096, 2})).backward(ones({4096, 2}));
  std::vector<float> g = big.grad().to_vector();
  for (int64_t b = 0; b < 4096; ++b)
    for (int64_t c = 0; c < 16; ++c) {
      float expected = static_cast<float>((cols[2 * b] == c) + (cols[2 * b + 1] == c));
      ASSERT_EQ(g[b * 16 + c], expected) << b << ", " << c;
    }
}

TEST(IndexingGather, Errors) {
  Tensor x = zeros({2, 5});
  expect_error(
      [&] {
        gather(x, ids({1, 0, 7, 1}, {2, 2}));
      },
      {"gather", "index 7 at [1, 0]", "5 columns", "[2, 5]", "[2, 2]"});
  expect_error([&] { gather(x, ids({1, -2})); }, {"gather", "index -2 at [1]"});
  expect_error([&] { gather(x, ids({1, 2, 3})); }, {"gather", "[2] or [2, k]", "[3]"});
  expect_error([&] { gather(zeros({2, 5, 1}), ids({1, 2})); }, {"gather", "[B, C]", "[2, 5, 1]"});
  expect_error([&] { gather(x, from_vector({1.0f, 0.0f})); }, {"gather", "int32 or int64"});
}

TEST(IndexingInRange, FindsPositions) {
  Tensor t = ids({5, 0, 12, 7, 4, 19, 5, -100});
  EXPECT_EQ(indices_in_range(t, 5, 12).to_int_vector(), (std::vector<int64_t>{0, 3, 6}));
  EXPECT_EQ(indices_in_range(t, 0, 5).to_int_vector(), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(indices_in_range(t, 20, 30).numel(), 0);
  Tensor t32 = from_vector(std::vector<int32_t>{3, 1, 2});
  EXPECT_EQ(indices_in_range(t32, 2, 4).to_int_vector(), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(indices_in_range(t, 0, 5).dtype(), DType::kInt64);
  expect_error([&] { indices_in_range(zeros({3}), 0, 1); }, {"indices_in_range", "int32 or int64"});
}

TEST(Embedding, LooksUpRowsForAnyIndexShape) {
  Tensor w = from_vector({0, 1, 10, 11, 20, 21}, {3, 2});
  Tensor out = embedding(w, ids({2, 0, 1, 2, 2, 0}, {2, 3}));
  EXPECT_EQ(out.shape(), (Shape{2, 3, 2}));
  expect_close(out, {20, 21, 0, 1, 10, 11, 20, 21, 20, 21, 0, 1}, 0, 0);
  Tensor scalar_id = from_vector(std::vector<int64_t>{1}).reshape({});
  EXPECT_EQ(embedding(w, scalar_id).shape(), (Shape{2}));
  expect_close(embedding(w, scalar_id), {10, 11}, 0, 0);
  expect_close(embedding(w, from_vector(std::vector<int32_t>{1, 0})), {10, 11, 0, 1}, 0, 0);
}

TEST(Embedding, RepeatedIdsAccumulateAndGradcheck) {
  Tensor w = zeros({4, 2}, grad_opts());
  embedding(w, ids({3, 1, 3, 3}, {2, 2}))
      .backward(from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}));
  expect_close(w.grad(), {0, 0, 3, 4, 0, 0, 13, 16}, 0, 0);
  // A second backward adds to the gradient that is there.
  embedding(w, ids({0})).backward(from_vector({1, 1}, {1, 2}));
  expect_close(w.grad(), {1, 1, 3, 4, 0, 0, 13, 16}, 0, 0);
  Generator gen(6);
  Tensor v = randn({5, 3}, gen, grad_opts());
  expect_gradcheck(
      [&](auto& in) {
        return embedding(in[0], ids({4, 4, 0, 2, 4, 1}, {3, 2}));
      },
      {v});
}

TEST(Embedding, WordModelSizedBackwardMatchesNaive) {
  // V = 25k words, d = 128, a batch of 512 x 3 context ids (with many repeats).
  const int64_t V = 25000, d = 128, N = 512 * 3;
  Generator gen(7);
  Tensor w = randn({V, d}, gen, grad_opts());
  std::vector<int64_t> idx(N);
  for (auto& i : idx) i = static_cast<int64_t>(gen.next_u64() % 300);  // frequent words repeat
  Tensor dout = randn({512, 3, d}, gen);
  embedding(w, ids(idx, {512, 3})).backward(dout);
  Tensor expected = zeros({V, d});
  cpu::index_select_backward_naive(expected.data<float>(), dout.data<float>(), idx.data(), 1, V, N,
                                   d);
  expect_close(w.grad(), expected, 1e-5f, 1e-5f);
}

TEST(Embedding, Errors) {
  Tensor w = zeros({10, 4});
  expect_error(
      [&] {
        embedding(w, ids({1, 2, 3, 10}, {2, 2}));
      },
      {"embedding", "index 10 at position 3", "10 embeddings", "[10, 4]", "[2, 2]"});
  expect_error([&] { embedding(w, ids({-1})); }, {"embedding", "index -1"});
  expect_error([&] { embedding(zeros({10}), ids({1})); }, {"embedding", "[num_embeddings, dim]"});
  expect_error([&] { embedding(w, from_vector({1.0f})); }, {"embedding", "int32 or int64"});
  expect_error([&] { Embedding(0, 4); }, {"Embedding", "positive"});
}

TEST(Embedding, LayerInitNamesAndForward) {
  Generator gen(8);
  Embedding layer(2000, 64, gen);
  auto named = layer.named_parameters();
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].first, "weight");
  EXPECT_EQ(layer.weight.shape(), (Shape{2000, 64}));
  // N(0, 1), as PyTorch initializes it.
  std::vector<float> w = layer.weight.to_vector();
  double mean = 0.0, sq = 0.0;
  for (float v : w) mean += v;
  mean /= static_cast<double>(w.size());
  for (float v : w) sq += (v - mean) * (v - mean);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / static_cast<double>(w.size())), 1.0, 0.01);
  Tensor idx = ids({5, 1999});
  expect_close(layer.forward(idx), embedding(layer.weight, idx), 0, 0);
  EXPECT_NE(layer.str().find("Embedding(2000, 64)"), std::string::npos) << layer.str();
}

}  // namespace
}  // namespace bridle
