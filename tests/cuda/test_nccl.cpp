// The NCCL process group on a job of one rank (no mpirun): a collective over
// one rank leaves the data as it is, and DistributedDataParallel on a CUDA
// model follows the same trajectory as the model trained alone. The GPU tests
// skip without a GPU (and without NCCL in the build); the checks that the
// model's device must match the group's run everywhere. A timeout needs a
// second rank that never answers, so it is not tested here.
#include <gtest/gtest.h>

#include "../distributed/distributed_test_util.h"
#include "../test_util.h"
#include "cuda_test_util.h"

namespace bridle {
namespace {

using testing::expect_error;

#define BRIDLE_REQUIRE_NCCL()                                                         \
  do {                                                                                \
    BRIDLE_REQUIRE_CUDA();                                                            \
    if (!nccl_is_available()) GTEST_SKIP() << "this build has no NCCL process group"; \
  } while (0)

// A group that claims to work on a GPU, as the NCCL one does, without needing one.
class FakeGpuGroup : public testing::SingleProcessGroup {
 public:
  std::string backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(0); }
};

TEST(NcclProcessGroup, WithoutNcclInTheBuildSaysSo) {
  if (nccl_is_available()) GTEST_SKIP() << "this build has the NCCL process group";
  expect_error([] { init_nccl_process_group(); }, {"init_nccl_process_group", "NCCL"});
}

TEST(NcclDataParallel, CpuModelWithAGpuGroupIsAClearError) {
  testing::SmallNet model;
  expect_error([&] { DistributedDataParallel ddp(model, std::make_shared<FakeGpuGroup>()); },
               {"DistributedDataParallel", "fc1.weight", "on cpu", "nccl", "cuda:0"});
}

TEST(NcclDataParallel, CudaModelWithACpuGroupIsAClearError) {
  BRIDLE_REQUIRE_CUDA();
  testing::SmallNet model;
  model.to(Device::cuda(0));
  expect_error(
      [&] { DistributedDataParallel ddp(model, std::make_shared<testing::SingleProcessGroup>()); },
      {"DistributedDataParallel", "on cuda:0", "exchanges gradients on cpu", "NCCL group"});
}

TEST(NcclProcessGroup, AllReduceOverOneRankLeavesTheDataUnchanged) {
  BRIDLE_REQUIRE_NCCL();
  std::shared_ptr<ProcessGroup> group = init_nccl_process_group();
  EXPECT_EQ(group->backend(), "nccl");
  EXPECT_EQ(group->size(), 1);
  ASSERT_TRUE(group->device().is_cuda());

  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f};
  Tensor t = from_vector(values, {5}).to(group->device());
  group->all_reduce(t);
  EXPECT_EQ(t.to_vector(), values);
  auto work = group->all_reduce_async(t.data<float>(), t.numel(), ReduceOp::kMax);
  work->wait();
  EXPECT_TRUE(work->test());
  EXPECT_EQ(t.to_vector(), values);
  group->broadcast(t, /*root=*/0);
  EXPECT_EQ(t.to_vector(), values);

  // Host memory goes through MPI, and comes back the same too.
  std::vector<double> host = {1.0, 2.0};
  group->all_reduce(host.data(), 2);
  EXPECT_EQ(host, (std::vector<double>{1.0, 2.0}));
  group->barrier();
}

// Three steps of plain SGD for each model, on the same batches on `device`.
void train_both(Module& alone, Module& wrapped, Device device, uint64_t seed) {
  std::vector<Batch> batches = testing::random_batches(/*steps=*/3, /*batch=*/8, seed);
  for (Batch& b : batches) b = {b.inputs.to(device), b.targets.to(device)};
  SGD alone_sgd(alone.parameters(), SGDOptions{.lr = 0.1f});
  SGD wrapped_sgd(wrapped.parameters(), SGDOptions{.lr = 0.1f});
  testing::train(alone, alone_sgd, batches);
  testing::train(wrapped, wrapped_sgd, batches);
}

TEST(NcclDataParallel, OneRankMatchesTrainingWithoutTheWrapper) {
  BRIDLE_REQUIRE_NCCL();
  std::shared_ptr<ProcessGroup> group = init_nccl_process_group();
  const Device device = group->device();
  testing::SmallNet alone, wrapped;  // the same seed: the same weights
  alone.to(device);
  wrapped.to(device);
  // Small buckets, so that more than one all-reduce is in flight.
  DistributedDataParallel ddp(wrapped, group, DataParallelOptions{.bucket_bytes = 256});
  EXPECT_GT(ddp.num_buckets(), 1);

  train_both(alone, wrapped, device, /*seed=*/11);

  EXPECT_EQ(ddp.stats().backward_passes, 3);
  EXPECT_EQ(ddp.stats().all_reduces, 3 * ddp.num_buckets());
  for (const Tensor& p : wrapped.parameters()) EXPECT_TRUE(p.device() == device);
  EXPECT_LE(testing::max_parameter_difference(alone, wrapped), 1e-6f);
}

// Synchronized batch norm on the GPU: over one rank its statistics are the
// batch's own, so training follows plain batch norm's (to rounding: the two
// compute the variance differently).
TEST(NcclDataParallel, SyncBatchNormOnOneRankMatchesPlainBatchNorm) {
  BRIDLE_REQUIRE_NCCL();
  std::shared_ptr<ProcessGroup> group = init_nccl_process_group();
  const Device device = group->device();
  testing::SmallNet alone(/*batch_norm=*/true), wrapped(/*batch_norm=*/true);
  alone.to(device);
  wrapped.to(device);
  EXPECT_EQ(convert_sync_batch_norm(wrapped, group), 1);
  DistributedDataParallel ddp(wrapped, group);
  train_both(alone, wrapped, device, /*seed=*/12);
  EXPECT_LE(testing::max_parameter_difference(alone, wrapped), 1e-5f);
}

}  // namespace
}  // namespace bridle
