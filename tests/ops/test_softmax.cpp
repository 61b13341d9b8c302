// softmax / log_softmax / logsumexp: the article's worked examples, extreme
// inputs, -inf, temperature, naive vs fast kernels, and gradient checks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "../test_util.h"
#include "ops/fast_math.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;
using testing::for_each_simd_path;

constexpr float kInf = std::numeric_limits<float>::infinity();

using testing::grad_opts;

TEST(Softmax, ArticleWorkedExamples) {
  expect_close(softmax(from_vector({1.0f, 2.0f, 3.0f})), {0.090f, 0.245f, 0.665f}, 5e-4f, 0);
  expect_close(softmax(from_vector({1.2f, 0.3f, -0.5f, 2.8f})), {0.153f, 0.062f, 0.028f, 0.757f},
               5e-4f, 0);
  // And to full precision: e^j / (e + e^2 + e^3).
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  expect_close(softmax(from_vector({1.0f, 2.0f, 3.0f})),
               {float(std::exp(1.0) / z), float(std::exp(2.0) / z), float(std::exp(3.0) / z)},
               1e-7f, 1e-6f);
}

TEST(Softmax, ExtremeInputsAreExact) {
  // Shifting by the max makes [1000, 1001, 1002] the same as [0, 1, 2].
  expect_close(softmax(from_vector({1000.0f, 1001.0f, 1002.0f})),
               softmax(from_vector({0.0f, 1.0f, 2.0f})), 1e-7f, 1e-6f);
  expect_close(softmax(from_vector({-1e4f, 0.0f})), {0, 1}, 0, 0);
  expect_close(log_softmax(from_vector({-1e4f, 0.0f})), {-1e4f, 0}, 0, 0);
  expect_close(logsumexp(from_vector({1000.0f, 1000.0f})), {1000.0f + std::log(2.0f)}, 1e-4f, 0);
  expect_close(logsumexp(from_vector({-1e4f, 0.0f})), {0}, 0, 0);
}

TEST(Softmax, NegativeInfinityGetsZeroProbability) {
  Tensor x = from_vector({-kInf, 0.0f, -kInf, 0.0f}, {1, 4});
  expect_close(softmax(x), {0, 0.5f, 0, 0.5f}, 0, 0);
  std::vector<float> ls = log_softmax(x).to_vector();
  EXPECT_EQ(ls[0], -kInf);
  EXPECT_FLOAT_EQ(ls[1], -std::log(2.0f));
  expect_close(logsumexp(x), {std::log(2.0f)}, 1e-7f, 0);
}

TEST(Softmax, RowWithNoFiniteMaximumIsAnError) {
  Tensor all_neg_inf = from_vector({0.0f, 1.0f, -kInf, -kInf}, {2, 2});
  expect_error([&] { softmax(all_neg_inf); }, {"softmax", "row 1", "[2, 2]", "-inf"});
  expect_error([&] { log_softmax(all_neg_inf); }, {"log_softmax", "row 1"});
  expect_error([] { softmax(from_vector({0.0f, kInf})); }, {"row 0", "+inf"});
  expect_error([] { softmax(from_vector({0.0f, std::nanf("")})); }, {"row 0", "NaN"});
  // The naive kernel reports the same row.
  Tensor out = Tensor::empty({2, 2});
  EXPECT_EQ(cpu::softmax_forward_naive(out.data<float>(), all_neg_inf.data<float>(), 2, 2, 1, 1.0f,
                                       false),
            1);
  // logsumexp of an all -inf row is -inf, its true value, with zero gradient.
  Tensor x = from_vector({-kInf, -kInf, 1.0f, 2.0f}, {2, 2}, grad_opts());
  Tensor lse = logsumexp(x, 1);
  EXPECT_EQ(lse.to_vector()[0], -kInf);
  sum(lse * from_vector({0.0f, 1.0f})).backward();
  for (float g : x.grad().to_vector()) EXPECT_FALSE(std::isnan(g));
}

TEST(Softmax, TemperatureIsFirstClass) {
  Tensor x = from_vector({1.0f, 2.0f, 3.0f});
  expect_close(softmax(x, -1, 2.0f), softmax(x / 2.0f), 1e-7f, 1e-6f);
  expect_close(log_softmax(x, -1, 0.5f), log_softmax(x * 2.0f), 1e-6f, 1e-6f);
  // Large T flattens toward uniform, small T sharpens toward one-hot.
  for (float p : softmax(x, -1, 1e4f).to_vector()) EXPECT_NEAR(p, 1.0f / 3, 1e-3);
  expect_close(softmax(x, -1, 1e-3f), {0, 0, 1}, 1e-6f, 0);
  expect_error([&] { softmax(x, -1, 0.0f); }, {"temperature", "0"});
  expect_error([&] { log_softmax(x, -1, -1.0f); }, {"temperature", "-1"});
}

TEST(Softmax, RowsSumToOneAlongAnyDim) {
  Generator gen(1);
  Tensor x = randn({3, 4, 5}, gen) * 5.0f;
  for (int64_t dim : {0, 1, 2}) {
    Tensor s = sum(softmax(x, dim), dim);
    for (float v : s.to_vector()) EXPECT_NEAR(v, 1.0f, 1e-6f);
    expect_close(exp(log_softmax(x, dim)), softmax(x, dim), 1e-6f, 1e-5f);
    expect_close(logsumexp(x, dim, true), log(sum(exp(x), dim, true)), 1e-5f, 1e-5f);
  }
}

// softmax and log_softmax, each with its passes in turn and a row apart.
std::vector<std::pair<bool, cpu::RowOrder>> every_forward() {
  return {{false, cpu::RowOrder::kInTurn},
          {false, cpu::RowOrder::kRowApart},
          {true, cpu::RowOrder::kInTurn},
          {true, cpu::RowOrder::kRowApart}};
}

std::string forward_name(bool log, cpu::RowOrder order) {
  return std::string(log ? "log_softmax" : "softmax") +
         (order == cpu::RowOrder::kInTurn ? ", in turn" : ", a row apart");
}

TEST(Softmax, FastKernelMatchesNaive) {
  for_each_simd_path([] {
    Generator gen(2);
    for (int64_t n : {1, 7, 8, 10, 16, 17, 33, 1000, 2500}) {
      Tensor x = randn({17, n}, gen) * 10.0f;
      if (n > 1) x.set({3, 0}, -kInf);  // one -inf in a row (a row of only -inf is an error)
      for (bool log : {false, true}) {
        for (float inv_temp : {1.0f, 0.3f}) {
          Tensor fast = Tensor::empty(x.shape()), naive = Tensor::empty(x.shape());
          EXPECT_EQ(cpu::softmax_forward(fast.data<float>(), x.data<float>(), 17, n, inv_temp, log),
                    -1);
          Tensor other_order = Tensor::empty(x.shape());  // the order this CPU does not choose
          const cpu::RowOrder order = cpu::softmax_forward_order(n, log) == cpu::RowOrder::kInTurn
                                          ? cpu::RowOrder::kRowApart
                                          : cpu::RowOrder::kInTurn;
          EXPECT_EQ(cpu::softmax_forward(other_order.data<float>(), x.data<float>(), 17, n,
                                         inv_temp, log, order),
                    -1);
          EXPECT_EQ(cpu::softmax_forward_naive(naive.data<float>(), x.data<float>(), 17, n, 1,
                                               inv_temp, log),
                    -1);
          if (log) {  // compare the finite entries; -inf must match exactly
            std::vector<float> g = naive.to_vector();
            for (const Tensor& t : {fast, other_order}) {
              std::vector<float> f = t.to_vector();
              for (size_t i = 0; i < f.size(); ++i)
                if (std::isinf(g[i]))
                  EXPECT_EQ(f[i], g[i]);
                else
                  EXPECT_NEAR(f[i], g[i], 1e-5f + 1e-5f * std::abs(g[i]));
            }
          } else {
            expect_close(fast, naive, 1e-7f, 1e-5f);
            expect_close(other_order, naive, 1e-7f, 1e-5f);
          }
          Tensor dout = randn(x.shape(), gen);
          Tensor dfast = zeros(x.shape()), dnaive = zeros(x.shape());
          cpu::softmax_backward(dfast.data<float>(), naive.data<float>(), dout.data<float>(), 17, n,
                                inv_temp, log);
          cpu::softmax_backward_naive(dnaive.data<float>(), naive.data<float>(), dout.data<float>(),
                                      17, n, 1, inv_temp, log);
          expect_close(dfast, dnaive, 1e-5f, 1e-4f);
          // Without accumulate the kernel overwrites every element of a fresh buffer.
          Tensor dfresh = full(x.shape(), std::numeric_limits<float>::quiet_NaN());
          cpu::softmax_backward(dfresh.data<float>(), naive.data<float>(), dout.data<float>(), 17,
                                n, inv_temp, log, /*accumulate=*/false);
          expect_close(dfresh, dnaive, 1e-5f, 1e-4f);
        }
      }
    }
  });
}

// The fast forward reads a row once, block by block (512 elements for
// the pipeline, 16384 for rows in turn), taking each block's exps against a
// shift that trails the running maximum (by at most 60) and rescaling
// afterwards: rows whose maximum comes late (a little, or far beyond the gap,
// which redoes the block), whose first block is all -inf, or whose values span a
// large range must match the three-pass reference, and stay probabilities
// (p <= 1, log p <= 0, rows summing to 1), in either order of the passes. Rows
// of 5000 are several blocks for the pipeline and one in turn; rows of 40000 are
// several for both.
TEST(Softmax, OnlineMaximumMatchesTwoPassReference) {
  for_each_simd_path([] {
    for (const int64_t n : {5000, 40000}) {
      SCOPED_TRACE("row length " + std::to_string(n));
      Generator gen(7);
      Tensor x = randn({5, n}, gen);
      for (int64_t j = 0; j < n; ++j) {
        x.set({0, j}, static_cast<double>(j) * 0.01);  // rising: every block raises the max
        if (j < n * 3 / 10 || (n > 20000 && j < 17000))
          x.set({1, j}, -kInf);                      // the first blocks all -inf
        x.set({2, j}, x.at({2, j}) * 30.0 - 200.0);  // a wide, negative range
      }
      x.set({3, n - 1}, 80.0);      // one large value at the very end: beyond the gap
      x.set({4, n * 3 / 5}, 59.5);  // just inside the gap: kept, e^59.5 rescaled
      for (const auto& [log, order] : every_forward()) {
        SCOPED_TRACE(forward_name(log, order));
        Tensor fast = Tensor::empty(x.shape()), naive = Tensor::empty(x.shape());
        ASSERT_EQ(cpu::softmax_forward(fast.data<float>(), x.data<float>(), 5, n, 1.0f, log, order),
                  -1);
        ASSERT_EQ(
            cpu::softmax_forward_naive(naive.data<float>(), x.data<float>(), 5, n, 1, 1.0f, log),
            -1);
        std::vector<float> f = fast.to_vector(), g = naive.to_vector();
        for (size_t i = 0; i < f.size(); ++i) {
          if (std::isinf(g[i]))
            EXPECT_EQ(f[i], g[i]) << "element " << i;
          else
            EXPECT_NEAR(f[i], g[i], (log ? 2e-5f : 1e-7f) + 1e-5f * std::abs(g[i]))
                << "element " << i;
          if (log)
            EXPECT_LE(f[i], 0.0f) << "element " << i;
          else
            EXPECT_LE(f[i], 1.0f) << "element " << i;
        }
        if (!log) {
          for (int64_t r = 0; r < 5; ++r) {
            double row_sum = 0;
            for (int64_t j = 0; j < n; ++j) row_sum += f[r * n + j];
            EXPECT_NEAR(row_sum, 1.0, 1e-5) << "row " << r;
          }
        }
      }
      for (int64_t r = 0; r < 5; ++r) {
        std::vector<float> row(x.data<float>() + r * n, x.data<float>() + (r + 1) * n);
        double max = -kInf, sum = 0.0;
        for (float v : row) max = std::max<double>(max, v);
        for (float v : row) sum += std::exp(v - max);
        EXPECT_NEAR(cpu::row_logsumexp(row.data(), n), max + std::log(sum), 1e-4);
      }
    }
    std::vector<float> with_nan = {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f};
    EXPECT_TRUE(std::isnan(cpu::row_logsumexp(with_nan.data(), 3)));
  });
}

// Each thread runs its share of the rows in order, in turn or as a pipeline (row
// r's first pass beside row r-1's second): with one to three threads, in either
// order, rows short (one block), long (several blocks in the pipeline) and
// longer (several blocks for both), the kernel must report the first bad row,
// and write every good row, before and after the bad ones, as the reference
// does.
TEST(Softmax, RowsMatchTheReferenceAroundBadRows) {
  const int saved = get_num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t n : {1000, 5000, 20000}) {
      Generator gen(11);
      const int64_t rows = n == 1000 ? 40 : 9;  // enough work to run in parallel
      Tensor x = randn({rows, n}, gen) * 4.0f;
      x.set({4, n / 2}, std::numeric_limits<float>::quiet_NaN());
      x.set({7, 0}, kInf);
      for (const auto& [log, order] : every_forward()) {
        SCOPED_TRACE(forward_name(log, order));
        Tensor fast = full(x.shape(), 123.0f);
        EXPECT_EQ(
            cpu::softmax_forward(fast.data<float>(), x.data<float>(), rows, n, 1.0f, log, order), 4)
            << threads << " threads, n " << n;
        for (int64_t r = 0; r < rows; ++r) {
          if (r == 4 || r == 7) continue;
          std::vector<float> naive(n);
          ASSERT_EQ(
              cpu::softmax_forward_naive(naive.data(), x.data<float>() + r * n, 1, n, 1, 1.0f, log),
              -1);
          for (int64_t j = 0; j < n; ++j)
            ASSERT_NEAR(fast.data<float>()[r * n + j], naive[j], 2e-5f + 1e-5f * std::abs(naive[j]))
                << threads << " threads, n " << n << ", row " << r << ", element " << j;
        }
      }
    }
  }
  set_num_threads(saved);
}

// The backward's fast kernel: every row of every thread's share, short rows and
// long ones, written or added to, with cached and with streaming stores, against
// the double reference.
TEST(SoftmaxGrad, EveryRowOfEveryThreadMatchesTheReference) {
  const int saved = get_num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t n : {1000, 5000, 8200}) {
      Generator gen(12);
      // Rows of 8200 start on a cache line and half-way into one, in turn.
      const int64_t rows = n == 1000 ? 40 : n == 5000 ? 9 : 36;
      Tensor x = randn({rows, n}, gen) * 4.0f, g = randn({rows, n}, gen);
      for (bool log : {false, true}) {
        Tensor y = log ? log_softmax(x, 1) : softmax(x, 1);
        for (bool accumulate : {false, true}) {
          Tensor naive = full(x.shape(), accumulate ? 0.5f : 0.0f);
          cpu::softmax_backward_naive(naive.data<float>(), y.data<float>(), g.data<float>(), rows,
                                      n, 1, 0.8f, log);
          for (Store store : {Store::kCached, Store::kStreaming}) {
            Tensor fast = full(x.shape(), 0.5f);
            cpu::softmax_backward(fast.data<float>(), y.data<float>(), g.data<float>(), rows, n,
                                  0.8f, log, accumulate, store);
            for (int64_t i = 0; i < rows * n; ++i)
              ASSERT_NEAR(fast.data<float>()[i], naive.data<float>()[i],
                          1e-5f + 1e-4f * std::abs(naive.data<float>()[i]))
                  << threads << " threads, n " << n << ", log " << log << ", accumulate "
                  << accumulate << ", streaming " << (store == Store::kStreaming) << ", row "
                  << i / n << ", element " << i % n;
          }
        }
      }
    }
  }
  set_num_threads(saved);
}

// Softmax's backward streams dx only for a fresh softmax gradient in long rows
// that move more than the last-level cache holds.
TEST(SoftmaxGrad, StreamsOnlyLongRowsLargerThanTheCache) {
  const auto cache_rows = [](int64_t n) {  // rows whose y, g and dx fill the cache
    return static_cast<int64_t>(last_level_cache_bytes() / (3 * sizeof(float) * n));
  };
  EXPECT_GT(last_level_cache_bytes(), size_t{0});
  EXPECT_EQ(cpu::softmax_backward_store(2 * cache_rows(50000) + 2, 50000, false),
            Store::kStreaming);
  EXPECT_EQ(cpu::softmax_backward_store(cache_rows(50000), 50000, false), Store::kCached);
  EXPECT_EQ(cpu::softmax_backward_store(2 * cache_rows(50000) + 2, 50000, true), Store::kCached);
  EXPECT_EQ(cpu::softmax_backward_store(2 * cache_rows(1000) + 2, 1000, false), Store::kCached);
}

// The first backward into x writes a fresh gradient; later ones add to it.
TEST(SoftmaxGrad, GradientsAccumulateAcrossUses) {
  Generator gen(4);
  Tensor x = randn({5, 300}, gen, grad_opts());
  Tensor g1 = randn(x.shape(), gen), g2 = randn(x.shape(), gen);
  softmax(x, 1).backward(g1);
  Tensor first = x.grad().clone();
  log_softmax(x, 1, 2.0f).backward(g2);
  Tensor added = x.grad().clone();
  x.set_grad(Tensor());
  log_softmax(x, 1, 2.0f).backward(g2);
  expect_close(added, first + x.grad(), 1e-6f, 1e-5f);
}

TEST(SoftmaxGrad, AllFormsAlongEveryDim) {
  Generator gen(3);
  Tensor x = randn({3, 4, 5}, gen, grad_opts());
  for (int64_t dim : {0, 1, 2}) {
    expect_gradcheck([dim](auto& in) { return softmax(in[0], dim); }, {x});
    expect_gradcheck([dim](auto& in) { return log_softmax(in[0], dim); }, {x});
    expect_gradcheck([dim](auto& in) { return softmax(in[0], dim, 0.7f); }, {x});
    expect_gradcheck([dim](auto& in) { return log_softmax(in[0], dim, 2.0f); }, {x});
    expect_gradcheck([dim](auto& in) { return logsumexp(in[0], dim); }, {x});
  }
}

TEST(Softmax, ErrorsNameTheOp) {
  expect_error([] { softmax(zeros({2, 3}), 2); }, {"softmax", "dim 2"});
  expect_error([] { logsumexp(zeros({2}, kInt64)); }, {"logsumexp", "int64"});
}

}  // namespace
}  // namespace bridle
