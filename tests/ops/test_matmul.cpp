// matmul and linear: the OpenBLAS kernel against the naive loops, shapes, errors,
// and gradient checks.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

using testing::grad_opts;

TEST(Gemm, BothBackendsMatchNaiveForEveryTransposeAndBeta) {
  Generator gen(11);
  const int64_t M = 37, N = 29, K = 53;
  for (GemmBackend backend : {GemmBackend::kOneDnn, GemmBackend::kOpenBlas})
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (float beta : {0.0f, 1.0f}) {
          Tensor A = randn({ta ? K : M, ta ? M : K}, gen);
          Tensor B = randn({tb ? N : K, tb ? K : N}, gen);
          Tensor C0 = randn({M, N}, gen);
          Tensor fast = C0.clone(), naive = C0.clone();
          cpu::gemm_with(backend, ta, tb, M, N, K, 0.5f, A.data<float>(), A.shape()[1],
                         B.data<float>(), B.shape()[1], beta, fast.data<float>(), N);
          cpu::gemm_naive(ta, tb, M, N, K, 0.5f, A.data<float>(), A.shape()[1], B.data<float>(),
                          B.shape()[1], beta, naive.data<float>(), N);
          expect_close(fast, naive, 1e-4f, 1e-4f);
        }
      }
    }
}

// K = 0: a product of empty matrices adds nothing, C = beta C, with the
// leading dimensions K = 0 that BLAS itself would reject.
TEST(Gemm, EmptyInnerDimensionScalesC) {
  Tensor C0 = from_vector({1.0f, -2.0f, 3.0f, 4.0f, 5.0f, -6.0f}, {2, 3});
  for (GemmBackend backend : {GemmBackend::kOneDnn, GemmBackend::kOpenBlas})
    for (float beta : {0.0f, 1.0f}) {
      Tensor C = C0.clone();
      const float none = 0.0f;
      cpu::gemm_with(backend, false, false, 2, 3, 0, 1.0f, &none, 0, &none, 3, beta,
                     C.data<float>(), 3);
      expect_close(C, beta == 0.0f ? zeros({2, 3}) : C0, 0, 0);
    }
}

TEST(Gemm, BackendCanBeSwitched) {
  GemmBackend before = gemm_backend();
  Generator gen(12);
  Tensor a = randn({8, 5}, gen), b = randn({5, 3}, gen);
  set_gemm_backend(GemmBackend::kOpenBlas);
  Tensor via_openblas = matmul(a, b);
  set_gemm_backend(GemmBackend::kOneDnn);
  Tensor via_onednn = matmul(a, b);
  set_gemm_backend(before);
  expect_close(via_openblas, via_onednn, 1e-5f, 1e-5f);
}

TEST(Matmul, ValuesAndShapes) {
  Tensor a = from_vector({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {2, 3});
  Tensor b = from_vector({1.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f}, {3, 2});
  expect_close(matmul(a, b), {4, 5, 10, 11});
  EXPECT_EQ(matmul(zeros({5, 2, 3}), zeros({5, 3, 4})).shape(), (Shape{5, 2, 4}));
  EXPECT_EQ(matmul(zeros({5, 2, 3}), zeros({3, 4})).shape(), (Shape{5, 2, 4}));
}

// An inner dimension of 0 is an empty sum: zeros (it used to divide by zero).
TEST(Matmul, EmptyInnerDimensionGivesZeros) {
  Tensor a = full({3, 0}, 1.0f, grad_opts()), b = full({0, 4}, 1.0f, grad_opts());
  Tensor c = matmul(a, b);
  expect_close(c, zeros({3, 4}), 0, 0);
  c.sum().backward();
  EXPECT_EQ(a.grad().shape(), (Shape{3, 0}));
  expect_close(matmul(full({2, 3, 0}, 1.0f), full({0, 4}, 1.0f)), zeros({2, 3, 4}), 0, 0);
  expect_close(matmul(full({2, 3, 0}, 1.0f), full({2, 0, 4}, 1.0f)), zeros({2, 3, 4}), 0, 0);
  Tensor bias = from_vector({1.0f, 2.0f});
  expect_close(linear(full({3, 0}, 1.0f), full({2, 0}, 1.0f), bias), {1, 2, 1, 2, 1, 2}, 0, 0);
  expect_close(linear(full({3, 0}, 1.0f), full({2, 0}, 1.0f)), zeros({3, 2}), 0, 0);
}

TEST(Matmul, ErrorsNameShapes) {
  expect_error([] { matmul(zeros({2, 3}), zeros({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]"});
  expect_error([] { matmul(zeros({2, 2, 3}), zeros({3, 3, 4})); }, {"batch", "[2, 2, 3]"});
  expect_error([] { matmul(zeros({3}), zeros({3, 4})); }, {"matmul", "[3]"});
  expect_error([] { linear(zeros({2, 3}), zeros({4, 5})); }, {"linear", "[2, 3]", "[4, 5]"});
  expect_error([] { linear(zeros({2, 3}), zeros({4, 3}), zeros({5})); }, {"bias", "[5]"});
}

TEST(MatmulGrad, TwoDimensionalAndBatched) {
  Generator gen(3);
  expect_gradcheck([](auto& in) { return matmul(in[0], in[1]); },
                   {randn({3, 4}, gen, grad_opts()), randn({4, 5}, gen, grad_opts())});
  expect_gradcheck([](auto& in) { return matmul(in[0], in[1]); },
                   {randn({2, 3, 4}, gen, grad_opts()), randn({2, 4, 2}, gen, grad_opts())});
  expect_gradcheck([](auto& in) { return matmul(in[0], in[1]); },
                   {randn({2, 3, 4}, gen, grad_opts()), randn({4, 2}, gen, grad_opts())});
}

TEST(Linear, MatchesMatmulPlusBias) {
  Generator gen(5);
  Tensor x = randn({6, 4}, gen), w = randn({3, 4}, gen), b = randn({3}, gen);
  expect_close(linear(x, w, b), matmul(x, w.transpose(0, 1)) + b, 1e-5f, 1e-5f);
  expect_close(linear(x, w), matmul(x, w.transpose(0, 1)), 1e-5f, 1e-5f);
  EXPECT_EQ(linear(zeros({2, 5, 4}), w).shape(), (Shape{2, 5, 3}));
}

TEST(LinearGrad, InputWeightAndBias) {
  Generator gen(9);
  expect_gradcheck([](auto& in) { return linear(in[0], in[1], in[2]); },
                   {randn({5, 4}, gen, grad_opts()), randn({3, 4}, gen, grad_opts()),
                    randn({3}, gen, grad_opts())});
  expect_gradcheck([](auto& in) { return linear(in[0], in[1]); },
                   {randn({2, 5, 4}, gen, grad_opts()), randn({3, 4}, gen, grad_opts())});
}

}  // namespace
}  // namespace bridle
