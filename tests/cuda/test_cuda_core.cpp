// The CUDA backend's core: availability, copies between devices, the caching
// allocators, pinned memory, the error macros, and ops without CUDA kernels.
// Tests that need a GPU skip (and are reported skipped) without one; the first
// group checks what must hold on a machine without a GPU.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "bridle.h"
#include "cuda_test_util.h"
#include "ops/op_utils.h"

#ifdef BRIDLE_WITH_CUDA
#include "core/cuda/cuda_check.h"
#endif

namespace bridle {
namespace {

using testing::expect_error;

// --- Without a GPU (this runs in CI) ---------------------------------------------

TEST(CudaWithoutGpu, IsNotAvailableAndMovingThrowsAClearError) {
  if (cuda_is_available()) GTEST_SKIP() << "a GPU is present: this test is for machines without";
  EXPECT_FALSE(cuda_is_available());  // no throw, no abort without a driver
  Tensor x = from_vector({1.0f, 2.0f});
  // No GPU (or no CUDA backend in this build): an error that says so, not a crash.
  expect_error([&] { x.to(Device::cuda()); }, {"cuda:0"});
  expect_error([&] { x.cuda(); }, {"cuda:0"});
  expect_error([&] { Tensor::empty({3}, Device::cuda()); }, {"cuda:0"});
  try {
    x.cuda();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_TRUE(message.find("no CUDA device") != std::string::npos ||
                message.find("no CUDA backend") != std::string::npos)
        << message;
  }
  expect_error([&] { x.pin_memory(); }, {"pinned memory"});
  // The CPU allocator's figures still come back, the CUDA ones are zero.
  EXPECT_EQ(allocator_stats(Device::cuda()).system_allocations, kCudaBuild ? 0u : 0u);
}

// A loader told to pin its batches for a GPU that is not there says so when made.
TEST(CudaWithoutGpu, PinningDataLoaderSaysItNeedsAGpu) {
  if (cuda_is_available()) GTEST_SKIP() << "a GPU is present: this test is for machines without";
  auto dataset = std::make_shared<TensorDataset>(
      randn({6, 2}), from_vector(std::vector<int64_t>{0, 1, 0, 1, 0, 1}));
  expect_error([&] { DataLoader(dataset, {.batch_size = 2, .pin_memory = true}); },
               {"DataLoader", "pin_memory", kCudaBuild ? "no CUDA device" : "no CUDA backend"});
  DataLoader plain(dataset, {.batch_size = 2});  // the default pins nothing and needs no GPU
  plain.start_epoch(0);
  EXPECT_FALSE(plain.next()->inputs.is_pinned());
}

TEST(CudaWithoutGpu, DeviceParsingAndNames) {
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:1").index, 1);
  EXPECT_EQ(Device::cuda(1).str(), "cuda:1");
}

// --- With a GPU ----------------------------------------------------------------------

TEST(CudaTensor, RoundTripKeepsEveryValue) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({37, 53});
  Tensor on_gpu = x.to(Device::cuda());
  EXPECT_TRUE(on_gpu.device().is_cuda());
  EXPECT_EQ(on_gpu.shape(), x.shape());
  EXPECT_EQ(on_gpu.cpu().to_vector(), x.to_vector());
  Tensor labels = from_vector(std::vector<int64_t>{3, 1, 4, 1, 5});
  EXPECT_EQ(labels.cuda().to_int_vector(), labels.to_int_vector());
  Tensor small = from_vector(std::vector<int32_t>{7, -2});
  EXPECT_EQ(small.cuda().cpu().to_int_vector(), small.to_int_vector());
}

TEST(CudaTensor, AccessorsCopyToTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = from_vector({1.5f, -2.0f, 3.0f, 4.0f}, {2, 2}).cuda();
  EXPECT_FLOAT_EQ(x.at({1, 0}), 3.0f);
  EXPECT_FLOAT_EQ(x.sum().item(), 6.5f);
  x.set({0, 1}, 7.0);
  EXPECT_EQ(x.to_vector(), (std::vector<float>{1.5f, 7.0f, 3.0f, 4.0f}));
  EXPECT_NE(x.str().find("device=cuda:0"), std::string::npos) << x.str();
  EXPECT_NE(x.str().find("7.0000"), std::string::npos) << x.str();
}

TEST(CudaTensor, FillCloneCopyAndDtype) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = Tensor::empty({1000}, Device::cuda());
  x.fill_(2.5);
  EXPECT_EQ(x.to_vector(), std::vector<float>(1000, 2.5f));
  x.fill_(0.0);  // the memset path
  EXPECT_EQ(x.to_vector(), std::vector<float>(1000, 0.0f));
  Tensor ints = full({5}, 7.0, TensorOptions(kInt64).with_device(Device::cuda()));
  EXPECT_EQ(ints.to_int_vector(), (std::vector<int64_t>(5, 7)));

  Tensor source = randn({1000});
  x.copy_(source);  // cpu -> cuda
  EXPECT_EQ(x.to_vector(), source.to_vector());
  Tensor copy = x.clone();  // cuda -> cuda
  x.fill_(1.0);
  EXPECT_EQ(copy.to_vector(), source.to_vector());
  Tensor back = zeros({1000});
  back.copy_(copy);  // cuda -> cpu
  EXPECT_EQ(back.to_vector(), source.to_vector());
  EXPECT_EQ(copy.to(kInt64).device(), copy.device());
}

TEST(CudaTensor, ToIsDifferentiable) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({4, 3}).set_requires_grad();
  Tensor y = (x.cuda() * 3.0f).sum();
  y.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().device().is_cpu());
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(12, 3.0f));
}

TEST(CudaAllocator, NoNewCudaMallocAfterWarmUp) {
  BRIDLE_REQUIRE_CUDA();
  const Device gpu = Device::cuda();
  Tensor w = (randn({256, 128}) * 0.1f).cuda().set_requires_grad();
  Tensor b = zeros({256}).cuda().set_requires_grad();
  Tensor x = randn({64, 128}).cuda();
  Tensor y = from_vector(std::vector<int64_t>(64, 3)).cuda();
  SGD sgd({w, b}, {.lr = 0.1f, .momentum = 0.9f});
  auto step = [&] {
    sgd.zero_grad();
    Tensor loss = cross_entropy(relu(linear(x, w, b)), y);
    loss.backward();
    sgd.step();
    return loss.item();
  };
  step();  // warm-up: every size gets its block
  step();
  const size_t after_warm_up = allocator_stats(gpu).system_allocations;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(allocator_stats(gpu).system_allocations, after_warm_up);
  EXPECT_GT(allocator_stats(gpu).bytes_in_use, 0u);
  empty_cache();
  EXPECT_EQ(allocator_stats(gpu).bytes_cached, 0u);
}

TEST(CudaAllocator, PinnedMemoryCopiesAndIsReused) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = randn({4096});
  Tensor pinned = x.pin_memory();
  EXPECT_TRUE(pinned.is_pinned());
  EXPECT_FALSE(x.is_pinned());
  EXPECT_EQ(pinned.to_vector(), x.to_vector());
  Tensor on_gpu = pinned.cuda();  // asynchronous copy from pinned memory
  EXPECT_EQ(on_gpu.cpu().to_vector(), x.to_vector());
}

#ifdef BRIDLE_WITH_CUDA
// pin_memory: the same batches as without, in pinned memory (prefetched on the
// worker thread), and their copies to the GPU arrive whole.
TEST(CudaData, PinningDataLoaderGivesPinnedCopiesOfTheSameBatches) {
  BRIDLE_REQUIRE_CUDA();
  std::vector<int64_t> labels(100);
  for (int64_t i = 0; i < 100; ++i) labels[i] = i % 7;
  auto dataset = std::make_shared<TensorDataset>(randn({100, 3, 4, 4}), from_vector(labels));
  DataLoaderOptions options{
      .batch_size = 16, .shuffle = true, .seed = 3, .mean = {0.5f}, .stddev = {2.0f}};
  DataLoader plain(dataset, options);
  options.pin_memory = true;
  DataLoader pinned(dataset, options);
  plain.start_epoch(1);
  pinned.start_epoch(1);
  int64_t count = 0;
  while (auto a = plain.next()) {
    std::optional<Batch> b = pinned.next();
    ASSERT_TRUE(b.has_value()) << "batch " << count;
    EXPECT_TRUE(b->inputs.is_pinned());
    EXPECT_TRUE(b->targets.is_pinned());
    EXPECT_EQ(b->inputs.to_vector(), a->inputs.to_vector());
    EXPECT_EQ(b->inputs.cuda().cpu().to_vector(), a->inputs.to_vector());
    EXPECT_EQ(b->targets.cuda().cpu().to_int_vector(), a->targets.to_int_vector());
    ++count;
  }
  EXPECT_EQ(count, plain.num_batches());
}

TEST(CudaErrors, CheckMacroNamesTheCallTheFileAndTheError) {
  BRIDLE_REQUIRE_CUDA();
  try {
    BRIDLE_CUDA_CHECK(cudaSetDevice(9999));
    ADD_FAILURE() << "cudaSetDevice(9999) did not fail";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cudaSetDevice(9999)"), std::string::npos) << message;
    EXPECT_NE(message.find("test_cuda_core.cpp"), std::string::npos) << message;
    EXPECT_NE(message.find("cudaErrorInvalidDevice"), std::string::npos) << message;
  }
  // The failed call's error was cleared: the next launch check is clean.
  Tensor x = ones({8}, Device::cuda());
  EXPECT_FLOAT_EQ((x * 2.0f).sum().item(), 16.0f);
}

TEST(CudaErrors, CublasMacroNamesTheStatus) {
  BRIDLE_REQUIRE_CUDA();
  try {
    BRIDLE_CUBLAS_CHECK(cublasSgemm(cuda::cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, -1, 1, 1,
                                    nullptr, nullptr, 1, nullptr, 1, nullptr, nullptr, 1));
    ADD_FAILURE() << "a gemm with M = -1 did not fail";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cublasSgemm"), std::string::npos) << message;
    EXPECT_NE(message.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << message;
  }
}
#endif

TEST(CudaErrors, OpsWithoutACudaKernelSaySo) {
  BRIDLE_REQUIRE_CUDA();
  Tensor x = rand({4, 4}).cuda();
  // Every built-in op has CUDA kernels; a user's op that keeps check_device's
  // default (CPU kernels only) gets this error instead of a crash.
  expect_error([&] { check_device("my_op", {x}); },
               {"my_op", "no kernel for device cuda:0 yet", ".cpu()"});
  check_device("my_op", {x}, Kernels::kCpuAndCuda);  // no error
  expect_error([&] { x + rand({4, 4}); }, {"different devices", "cuda:0", "cpu"});
}

TEST(CudaErrors, DeviceOutOfRange) {
  BRIDLE_REQUIRE_CUDA();
  expect_error([&] { Tensor::empty({2}, Device::cuda(1000)); }, {"cuda:1000", "CUDA device"});
}

TEST(CudaModule, ToMovesParametersInPlaceAndTrainsThere) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(3);
  auto fc = std::make_shared<Linear>(5, 3, true, gen);
  Tensor weight_handle = fc->weight;  // the handle an optimizer would hold
  const std::vector<float> weight = fc->weight.to_vector();
  fc->to(Device::cuda());
  EXPECT_TRUE(weight_handle.device().is_cuda());  // the same tensor, moved
  EXPECT_EQ(weight_handle.to_vector(), weight);
  Tensor x = randn({4, 5}, gen);
  Tensor y_gpu = fc->forward(x.cuda());
  fc->to(Device::cpu());
  testing::expect_close(y_gpu.cpu(), fc->forward(x), 1e-5f, 1e-4f);
}

}  // namespace
}  // namespace bridle
