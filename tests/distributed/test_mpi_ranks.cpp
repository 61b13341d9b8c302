// Data-parallel training on two ranks: run as `mpirun -np 2 bridle_mpi_tests`
// (ctest does). Every rank runs every test; a test passes when it passes on
// both. The central claim: 2 ranks x batch B end with the same parameters as 1
// rank x batch 2B. Each rank computes that single-process reference itself (no
// communication), from the same seeds, and compares.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "distributed_test_util.h"

namespace bridle {
namespace {

using testing::expect_error;
using testing::max_parameter_difference;
using testing::random_batches;
using testing::rows;
using testing::SmallNet;

std::shared_ptr<ProcessGroup> group() { return init_process_group(); }

// Each rank's share of every global batch: rows [rank*B, (rank+1)*B).
std::vector<Batch> my_share(const std::vector<Batch>& global) {
  const int rank = group()->rank(), size = group()->size();
  std::vector<Batch> mine;
  for (const Batch& b : global) {
    const int64_t per_rank = b.size() / size;
    mine.push_back(rows(b, rank * per_rank, (rank + 1) * per_rank));
  }
  return mine;
}

// Rank 0's copy of t, everywhere, to compare against.
Tensor from_rank0(const Tensor& t) {
  Tensor copy = t.detach().clone();
  group()->broadcast(copy, 0);
  return copy;
}

float max_difference_to_rank0(Module& model) {
  float worst = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    std::vector<float> mine = p.to_vector(), theirs = from_rank0(p).to_vector();
    for (size_t i = 0; i < mine.size(); ++i) worst = std::max(worst, std::abs(mine[i] - theirs[i]));
  }
  return worst;
}

TEST(MpiProcessGroup, Collectives) {
  auto g = group();
  ASSERT_EQ(g->size(), 2) << "run under mpirun -np 2";
  EXPECT_EQ(g->backend(), "mpi");
  Tensor t = from_vector({1.0f + g->rank(), 10.0f * (g->rank() + 1)}, {2});
  g->all_reduce(t);
  testing::expect_close(t, {3.0f, 30.0f}, 0, 0);
  Tensor m = from_vector({static_cast<float>(g->rank())}, {1});
  g->all_reduce(m, ReduceOp::kMax);
  testing::expect_close(m, {1.0f}, 0, 0);
  double d[2] = {0.25 * g->rank(), 1.0};
  g->all_reduce(d, 2, ReduceOp::kSum);
  EXPECT_EQ(d[0], 0.25);
  EXPECT_EQ(d[1], 2.0);
  Tensor b = full({3}, g->rank() == 1 ? 5.0 : 0.0);
  g->broadcast(b, 1);
  testing::expect_close(b, {5, 5, 5}, 0, 0);
  g->barrier();
  EXPECT_EQ(rank_str(*g), "rank " + std::to_string(g->rank()) + "/2");
}

TEST(DistributedDataParallel, TwoRanksOfBMatchOneRankOf2B) {
  const std::vector<Batch> global = random_batches(/*steps=*/5, /*batch=*/16, /*seed=*/11);
  for (int64_t bucket_bytes : {int64_t{25} << 20, int64_t{200}}) {
    SmallNet reference, model;
    SGD reference_sgd(reference.parameters(), {.lr = 0.2f, .momentum = 0.9f});
    testing::train(reference, reference_sgd, global);

    DistributedDataParallel ddp(model, group(), {.bucket_bytes = bucket_bytes});
    SGD sgd(model.parameters(), {.lr = 0.2f, .momentum = 0.9f});
    testing::train(model, sgd, my_share(global));
    EXPECT_LT(max_parameter_difference(model, reference), 2e-6f)
        << "bucket_bytes " << bucket_bytes << ", " << ddp.num_buckets() << " buckets";
    EXPECT_EQ(max_difference_to_rank0(model), 0.0f);
    EXPECT_EQ(ddp.stats().backward_passes, 5);
  }
}

TEST(DistributedDataParallel, StartsFromRankZerosWeights) {
  SmallNet model(false, /*seed=*/100 + group()->rank());  // different on each rank
  const float before = max_difference_to_rank0(model);    // a collective: every rank calls it
  if (group()->rank() == 1) {
    EXPECT_GT(before, 0.0f);
  }
  DistributedDataParallel ddp(model, group());
  EXPECT_EQ(max_difference_to_rank0(model), 0.0f);
}

TEST(DistributedDataParallel, ShardedLoaderAndAdamMatchOneLoaderOfTwiceTheBatch) {
  Generator gen(21);
  const int64_t n = 96, batch = 8;
  Tensor x = randn({n, 6}, gen);
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) y.push_back(i % 4);
  auto data = std::make_shared<TensorDataset>(x, from_vector(y, {n}));
  DataLoader whole(data, {.batch_size = 2 * batch, .shuffle = true, .seed = 3});
  DataLoader mine(
      data,
      {.batch_size = batch, .shuffle = true, .seed = 3, .num_shards = 2, .shard = group()->rank()});
  ASSERT_EQ(mine.num_batches(), whole.num_batches());

  SmallNet reference, model;
  Adam reference_adam(reference.parameters(), {.lr = 0.01f});
  DistributedDataParallel ddp(model, group(), {.bucket_bytes = 256});
  Adam adam(model.parameters(), {.lr = 0.01f});
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<Batch> global_batches, my_batches;
    for (Batch& b : whole.epoch(epoch)) global_batches.push_back(b);
    for (Batch& b : mine.epoch(epoch)) my_batches.push_back(b);
    testing::train(reference, reference_adam, global_batches);
    testing::train(model, adam, my_batches);
  }
  // Adam divides by sqrt(v): rounding differences grow a little more than with SGD.
  EXPECT_LT(max_parameter_difference(model, reference), 2e-5f);
  EXPECT_EQ(max_difference_to_rank0(model), 0.0f);
}

TEST(DistributedDataParallel, AParameterOnlyOneRankUsesStaysInSync) {
  // Rank 1 skips fc2's bias (a branch taken on one rank only): its gradient
  // there counts as zero, and both ranks still take the same step.
  struct Branchy : SmallNet {
    Tensor forward(const Tensor& x) override {
      Tensor h = relu(fc1->forward(x));
      if (init_process_group()->rank() == 1) return matmul(h, transpose(fc2->weight, 0, 1));
      return fc2->forward(h);
    }
  } model;
  DistributedDataParallel ddp(model, group(), {.bucket_bytes = 64});
  SGD sgd(model.parameters(), {.lr = 0.1f});
  testing::train(model, sgd, my_share(random_batches(3, 8, 5)));
  EXPECT_EQ(max_difference_to_rank0(model), 0.0f);
}

TEST(SyncBatchNorm, TwoRanksOfBMatchOneRankOf2BWithBatchNorm) {
  const std::vector<Batch> global = random_batches(4, 16, 17);
  SmallNet reference(/*batch_norm=*/true), model(/*batch_norm=*/true);
  SGD reference_sgd(reference.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  testing::train(reference, reference_sgd, global);

  DistributedDataParallel ddp(model, group());
  EXPECT_EQ(convert_sync_batch_norm(model, group()), 1);
  SGD sgd(model.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  testing::train(model, sgd, my_share(global));
  EXPECT_LT(max_parameter_difference(model, reference), 1e-5f);
  testing::expect_close(model.bn->running_mean, reference.bn->running_mean, 1e-5f, 1e-5f);
  testing::expect_close(model.bn->running_var, reference.bn->running_var, 1e-5f, 1e-5f);
}

TEST(SyncBatchNorm, LocalBatchNormDoesNotMatch) {
  // The control for the test above: without synchronization each rank
  // normalizes by its own half batch, and the trajectories part.
  const std::vector<Batch> global = random_batches(4, 16, 17);
  SmallNet reference(true), model(true);
  SGD reference_sgd(reference.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  testing::train(reference, reference_sgd, global);
  DistributedDataParallel ddp(model, group());
  SGD sgd(model.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  testing::train(model, sgd, my_share(global));
  EXPECT_GT(max_parameter_difference(model, reference), 1e-3f);
}

TEST(DistributedDataParallel, RanksWithDifferentModelsFailClearly) {
  struct Wider : Module {
    std::shared_ptr<Linear> fc;
    explicit Wider(int64_t out) : Module("Wider") {
      fc = register_module("fc", std::make_shared<Linear>(3, out));
    }
  } model(group()->rank() == 0 ? 4 : 5);
  expect_error([&] { DistributedDataParallel ddp(model, group()); },
               {"the ranks disagree", "every rank must build the same model"});
}

}  // namespace
}  // namespace bridle

// One process group for the whole binary; a test that fails on any rank fails
// the job (the exit code is the same on every rank).
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto group = bridle::init_process_group();
  int failed = RUN_ALL_TESTS();
  double any_failed = failed;
  group->all_reduce(&any_failed, 1, bridle::ReduceOp::kMax);
  return any_failed != 0 ? 1 : 0;
}
