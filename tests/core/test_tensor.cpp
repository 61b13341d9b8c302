// Tensor basics: factories, views, element access, errors, the allocator and threading.
#include <gtest/gtest.h>

#include <cstdint>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;

TEST(Tensor, FactoriesHaveShapeDtypeAndValues) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), kFloat32);
  EXPECT_TRUE(z.device().is_cpu());
  expect_close(z, {0, 0, 0, 0, 0, 0});
  expect_close(ones({2}), {1, 1});
  expect_close(full({3}, 2.5), {2.5f, 2.5f, 2.5f});
  expect_close(arange(0.0, 1.0, 0.25), {0, 0.25f, 0.5f, 0.75f});
  Tensor labels = arange(4, kInt64);
  EXPECT_EQ(labels.dtype(), kInt64);
  EXPECT_EQ(labels.to_int_vector(), (std::vector<int64_t>{0, 1, 2, 3}));
  Tensor i32 = from_vector(std::vector<int32_t>{3, 1}, {2});
  EXPECT_EQ(i32.dtype(), kInt32);
  EXPECT_EQ(i32.at({0}), 3);
  EXPECT_EQ(scalar(4.0f).dim(), 0);
  EXPECT_EQ(scalar(4.0f).item(), 4.0f);
}

TEST(Tensor, StorageIsAlignedTo64Bytes) {
  for (int64_t n : {1, 3, 17, 1000, 100000}) {
    Tensor t = Tensor::empty({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data<float>()) % 64, 0u) << n;
  }
}

TEST(Tensor, CachingAllocatorReusesFreedBlocks) {
  { Tensor warm = Tensor::empty({12345}); }
  size_t before = allocator_stats().system_allocations;
  for (int i = 0; i < 10; ++i) Tensor t = Tensor::empty({12345});
  EXPECT_EQ(allocator_stats().system_allocations, before);
}

TEST(Tensor, RandomFactoriesAreSeeded) {
  Generator a(42), b(42), c(43);
  Tensor x = randn({100}, a), y = randn({100}, b), z = randn({100}, c);
  EXPECT_EQ(x.to_vector(), y.to_vector());
  EXPECT_NE(x.to_vector(), z.to_vector());
  manual_seed(7);
  Tensor u1 = rand({5});
  manual_seed(7);
  Tensor u2 = rand({5});
  EXPECT_EQ(u1.to_vector(), u2.to_vector());
  for (float v : uniform({1000}, -2.0f, 3.0f, a).to_vector()) {
    EXPECT_GE(v, -2.0f);
    EXPECT_LT(v, 3.0f);
  }
  // randn has roughly zero mean and unit variance.
  std::vector<float> s = randn({20000}, a).to_vector();
  double mean = 0, var = 0;
  for (float v : s) mean += v;
  mean /= s.size();
  for (float v : s) var += (v - mean) * (v - mean);
  var /= s.size();
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.05);
}

TEST(Tensor, HandlesShareStorageAndCloneCopies) {
  Tensor a = zeros({2, 2});
  Tensor b = a;
  b.set({0, 1}, 5.0);
  EXPECT_EQ(a.at({0, 1}), 5.0);
  Tensor c = a.clone();
  c.set({0, 1}, 7.0);
  EXPECT_EQ(a.at({0, 1}), 5.0);
  EXPECT_EQ(a.at({-1, -1}), 0.0);  // negative indices count from the end
}

TEST(Tensor, ReshapeAndSliceAreViews) {
  Tensor a = arange(0.0, 12.0);
  Tensor m = a.reshape({3, -1});
  EXPECT_EQ(m.shape(), (Shape{3, 4}));
  m.set({1, 0}, 100.0);
  EXPECT_EQ(a.at({4}), 100.0);
  Tensor rows = m.slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 4}));
  EXPECT_EQ(rows.at({0, 0}), 100.0);
  EXPECT_EQ(rows.at({1, 3}), 11.0);
}

TEST(Tensor, ConversionsAndFill) {
  Tensor f = from_vector({1.7f, -2.2f});
  EXPECT_EQ(f.to(kInt64).to_int_vector(), (std::vector<int64_t>{1, -2}));
  Tensor t = Tensor::empty({3});
  t.fill_(3.0);
  expect_close(t, {3, 3, 3});
  Tensor u = zeros({3});
  u.copy_(t);
  expect_close(u, {3, 3, 3});
}

TEST(Tensor, EmptyFromVector) {
  Tensor empty = from_vector(std::vector<int64_t>{});
  EXPECT_EQ(empty.shape(), (Shape{0}));
  EXPECT_EQ(from_vector(std::vector<float>{}, {0, 3}).numel(), 0);
}

TEST(Tensor, ErrorsNameTheProblem) {
  expect_error(
      [] {
        from_vector({1.0f, 2.0f, 3.0f}, {2, 2});
      },
      {"from_vector", "3 values", "[2, 2]"});
  expect_error([] { zeros({2, 3}).at({2, 0}); }, {"index 2", "[2, 3]"});
  expect_error([] { zeros({2, 3}).item(); }, {"item", "[2, 3]"});
  expect_error([] { zeros({2}).data<int64_t>(); }, {"int64", "float32"});
  expect_error([] { zeros({2}, kInt64).set_requires_grad(); }, {"float", "int64"});
  expect_error([] { zeros({2}).copy_(zeros({3})); }, {"[3]", "[2]"});
  expect_error([] { Tensor().shape(); }, {"undefined"});
  expect_error([] { zeros({2}).to(Device::cuda()); }, {"cuda"});
  expect_error([] { Device::parse("tpu"); }, {"tpu"});
}

TEST(Tensor, PrintsLikePyTorch) {
  EXPECT_EQ(from_vector({1.0f, 2.5f}).str(), "tensor([1.0000, 2.5000], shape=[2])");
  EXPECT_EQ(arange(3, kInt64).str(), "tensor([0, 1, 2], shape=[3], dtype=int64)");
  std::string big = zeros({100}).str();
  EXPECT_NE(big.find("..."), std::string::npos);
  Tensor x = ones({2}, TensorOptions().with_requires_grad());
  EXPECT_NE(x.str().find("requires_grad"), std::string::npos);
  EXPECT_NE((x * 2.0f).str().find("grad_fn=mul_scalar"), std::string::npos);
}

TEST(Threading, OneOpenMpPoolForEverything) {
  EXPECT_TRUE(openblas_uses_openmp()) << threading_info();
  int before = get_num_threads();
  set_num_threads(1);
  EXPECT_EQ(get_num_threads(), 1);
  set_num_threads(before);
  EXPECT_EQ(get_num_threads(), before);
}

}  // namespace
}  // namespace bridle
