// Data-parallel training, the parts one process can check: the gradient hooks
// and end-of-backward callbacks the engine offers, the sharded data loader,
// synchronized batch norm's own arithmetic (with a sum over one rank it must
// equal batch norm, forward, backward and running statistics), and
// DistributedDataParallel's buckets on a job of one rank. The two-rank
// behaviour is in test_mpi_ranks.cpp, run under mpirun.
#include <gtest/gtest.h>

#include <set>

#include "../test_util.h"
#include "distributed_test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::grad_opts;

// --- Engine hooks ------------------------------------------------------------

TEST(PostAccumulateGradHook, RunsOnceWithTheCompleteGradient) {
  Tensor w = from_vector({1.0f, 2.0f, 3.0f}, {3}, grad_opts());
  Tensor x = from_vector({4.0f, 5.0f, 6.0f}, {3});
  int calls = 0;
  std::vector<float> seen;
  w.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    ++calls;
    seen = leaf.grad().to_vector();
  });
  // w reaches the loss along two paths: d/dw = x + 2w.
  (sum(w * x) + sum(w * w)).backward();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, (std::vector<float>{6, 9, 12}));
  // A second backward accumulates, and the hook sees the sum.
  (sum(w * x) + sum(w * w)).backward();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(seen, (std::vector<float>{12, 18, 24}));
}

TEST(PostAccumulateGradHook, RunsAsSoonAsTheLeafIsDoneNotAtTheEnd) {
  // out = sum((a * x) * b): b's gradient is complete after the outer multiply,
  // before the inner one has given a its gradient.
  Tensor a = from_vector({1.0f, 2.0f}, {2}, grad_opts());
  Tensor b = from_vector({3.0f, 4.0f}, {2}, grad_opts());
  Tensor x = from_vector({5.0f, 6.0f}, {2});
  std::vector<std::string> events;
  b.register_post_accumulate_grad_hook([&](const Tensor&) {
    events.push_back(a.grad().defined() ? "b after a" : "b before a");
    queue_backward_callback([&] { events.push_back("end of backward"); });
  });
  a.register_post_accumulate_grad_hook([&](const Tensor&) { events.push_back("a"); });
  sum((a * x) * b).backward();
  EXPECT_EQ(events, (std::vector<std::string>{"b before a", "a", "end of backward"}));
}

TEST(PostAccumulateGradHook, RemovedHooksDoNotRunAndOnlyLeavesTakeHooks) {
  Tensor w = from_vector({1.0f}, {1}, grad_opts());
  int calls = 0;
  int64_t handle = w.register_post_accumulate_grad_hook([&](const Tensor&) { ++calls; });
  w.remove_post_accumulate_grad_hook(handle);
  sum(w * w).backward();
  EXPECT_EQ(calls, 0);
  Tensor y = w * 2.0f;
  expect_error([&] { y.register_post_accumulate_grad_hook([](const Tensor&) {}); },
               {"only a leaf"});
  expect_error([] { queue_backward_callback([] {}); }, {"no backward is running"});
}

TEST(PostAccumulateGradHook, ALeafTheBackwardDoesNotReachIsNotCalled) {
  Tensor used = from_vector({1.0f}, {1}, grad_opts());
  Tensor unused = from_vector({1.0f}, {1}, grad_opts());
  int calls = 0;
  unused.register_post_accumulate_grad_hook([&](const Tensor&) { ++calls; });
  sum(used * 3.0f).backward();
  EXPECT_EQ(calls, 0);
}

// --- Sharded data loading ------------------------------------------------------

std::shared_ptr<TensorDataset> numbered(int64_t n) {
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = i;
  return std::make_shared<TensorDataset>(zeros({n, 1}), from_vector(y, {n}));
}

std::vector<int64_t> targets_of_epoch(DataLoader& loader, int64_t epoch) {
  std::vector<int64_t> out;
  for (Batch& batch : loader.epoch(epoch))
    for (int64_t t : batch.targets.to_int_vector()) out.push_back(t);
  return out;
}

TEST(ShardedDataLoader, ShardsAreDisjointAndTheirBatchesMakeTheGlobalBatch) {
  const int64_t n = 48, ranks = 3, batch = 4;
  DataLoader whole(numbered(n), {.batch_size = batch * ranks, .shuffle = true, .seed = 5});
  std::vector<std::unique_ptr<DataLoader>> shards;
  for (int64_t r = 0; r < ranks; ++r)
    shards.push_back(std::make_unique<DataLoader>(
        numbered(n),
        DataLoaderOptions{
            .batch_size = batch, .shuffle = true, .seed = 5, .num_shards = ranks, .shard = r}));
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> all;
    std::vector<std::vector<int64_t>> per_rank;
    for (auto& loader : shards) {
      EXPECT_EQ(loader->num_examples(), n / ranks);
      EXPECT_EQ(loader->num_batches(), whole.num_batches());
      per_rank.push_back(targets_of_epoch(*loader, epoch));
      all.insert(per_rank.back().begin(), per_rank.back().end());
    }
    EXPECT_EQ(static_cast<int64_t>(all.size()), n) << "shards overlap or miss examples";
    // Batch k of each rank, together, is batch k of the unsharded loader.
    int64_t k = 0;
    for (Batch& global : whole.epoch(epoch)) {
      std::vector<int64_t> expected = global.targets.to_int_vector(), got;
      for (const auto& mine : per_rank)
        got.insert(got.end(), mine.begin() + k * batch, mine.begin() + (k + 1) * batch);
      std::sort(expected.begin(), expected.end());
      std::sort(got.begin(), got.end());
      EXPECT_EQ(got, expected) << "epoch " << epoch << " batch " << k;
      ++k;
    }
  }
}

TEST(ShardedDataLoader, EvenShardsPadAndUnevenShardsCoverEachExampleOnce) {
  const int64_t n = 10, ranks = 3;
  std::vector<int64_t> padded_sizes, exact_sizes;
  std::multiset<int64_t> exact_all;
  for (int64_t r = 0; r < ranks; ++r) {
    DataLoader even(numbered(n), {.batch_size = 2, .num_shards = ranks, .shard = r});
    DataLoader exact(numbered(n),
                     {.batch_size = 2, .num_shards = ranks, .shard = r, .even_shards = false});
    padded_sizes.push_back(static_cast<int64_t>(targets_of_epoch(even, 0).size()));
    std::vector<int64_t> mine = targets_of_epoch(exact, 0);
    exact_sizes.push_back(static_cast<int64_t>(mine.size()));
    exact_all.insert(mine.begin(), mine.end());
  }
  EXPECT_EQ(padded_sizes, (std::vector<int64_t>{4, 4, 4}));  // ceil(10 / 3), wrapping around
  EXPECT_EQ(exact_sizes, (std::vector<int64_t>{4, 3, 3}));
  std::multiset<int64_t> expected;
  for (int64_t i = 0; i < n; ++i) expected.insert(i);
  EXPECT_EQ(exact_all, expected);
  expect_error([] { DataLoader(numbered(4), {.num_shards = 2, .shard = 2}); }, {"shard 2"});
  expect_error([] { DataLoader(numbered(4), {.num_shards = 0}); }, {"num_shards"});
}

// --- Synchronized batch norm, one rank -------------------------------------------

// Trains a BatchNorm layer for two steps as-is and synchronized over one rank
// (the sum is the identity): the outputs, gradients and running statistics agree.
void expect_sync_matches_local(const Shape& shape, bool two_d) {
  auto make = [&]() -> std::shared_ptr<BatchNorm> {
    if (two_d) return std::make_shared<BatchNorm2d>(shape[1]);
    return std::make_shared<BatchNorm1d>(shape[1]);
  };
  std::shared_ptr<BatchNorm> local = make(), synced = make();
  synced->set_rank_sum([](const Tensor& t) { return t * 1.0f; });
  Generator gen(3);
  for (int step = 0; step < 2; ++step) {
    Tensor x = randn(shape, gen) * 3.0f + 1.5f;
    Tensor xa = x.clone().set_requires_grad(), xb = x.clone().set_requires_grad();
    Tensor weights = randn(shape, gen);  // a loss that weighs every output differently
    Tensor ya = local->forward(xa), yb = synced->forward(xb);
    expect_close(yb, ya, 2e-5f, 1e-4f);
    sum(ya * weights).backward();
    sum(yb * weights).backward();
    expect_close(xb.grad(), xa.grad(), 2e-5f, 1e-3f);
    expect_close(synced->weight.grad(), local->weight.grad(), 1e-4f, 1e-4f);
    expect_close(synced->bias.grad(), local->bias.grad(), 1e-4f, 1e-4f);
  }
  expect_close(synced->running_mean, local->running_mean, 1e-5f, 1e-5f);
  expect_close(synced->running_var, local->running_var, 1e-5f, 1e-5f);
}

TEST(SyncBatchNorm, OverOneRankEqualsBatchNorm) {
  expect_sync_matches_local({8, 5}, false);
  expect_sync_matches_local({4, 3, 6}, false);
  expect_sync_matches_local({4, 3, 5, 5}, true);
}

TEST(SyncBatchNorm, Gradcheck) {
  BatchNorm2d bn(2);
  bn.set_rank_sum([](const Tensor& t) { return t * 1.0f; });
  Generator gen(4);
  Tensor x = randn({3, 2, 2, 2}, gen).set_requires_grad();
  Tensor w = randn({3, 2, 2, 2}, gen);
  testing::expect_gradcheck(
      [&](const std::vector<Tensor>& in) { return sum(bn.forward(in[0]) * w); }, {x});
}

TEST(SyncBatchNorm, ConvertFindsEveryBatchNormAndEvalNeedsNoCommunication) {
  testing::SmallNet net(/*batch_norm=*/true);
  auto group = std::make_shared<testing::SingleProcessGroup>();
  EXPECT_EQ(convert_sync_batch_norm(net, group), 1);
  EXPECT_TRUE(net.bn->is_synchronized());
  Tensor x = randn({4, 6});
  net.forward(x);
  EXPECT_EQ(group->float_all_reduces, 2);  // the sums for the mean, then for the variance
  net.eval();
  net.forward(x);
  EXPECT_EQ(group->float_all_reduces, 2);
}

// --- DistributedDataParallel on one rank -------------------------------------------

TEST(DistributedDataParallel, OneRankLeavesTheGradientsAsPlainBackwardGivesThem) {
  testing::SmallNet plain, wrapped;
  auto group = std::make_shared<testing::SingleProcessGroup>();
  // 16 bytes per bucket: a bucket per parameter (fc2.bias, fc2.weight, fc1.bias, fc1.weight).
  DistributedDataParallel ddp(wrapped, group, {.bucket_bytes = 16});
  EXPECT_EQ(ddp.num_buckets(), 4);
  EXPECT_EQ(group->broadcasts, 4);  // the parameters from rank 0 (no buffers here)
  std::vector<Batch> batches = testing::random_batches(3, 8, 1);
  SGD a(plain.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  SGD b(wrapped.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  testing::train(plain, a, batches);
  testing::train(wrapped, b, batches);
  EXPECT_EQ(testing::max_parameter_difference(plain, wrapped), 0.0f);
  EXPECT_EQ(ddp.stats().backward_passes, 3);
  EXPECT_EQ(ddp.stats().all_reduces, 12);
  // Every bucket's gradients were complete before backward ended.
  EXPECT_EQ(ddp.stats().buckets_started_early, 12);
  EXPECT_EQ(group->floats_reduced, 3 * wrapped.num_parameters());
}

TEST(DistributedDataParallel, AnUnusedParameterGetsAGradientAndHoldsTheBucketsBack) {
  struct TwoHeads : Module {
    std::shared_ptr<Linear> used, unused;
    TwoHeads() : Module("TwoHeads") {
      used = register_module("used", std::make_shared<Linear>(3, 2));
      unused = register_module("unused", std::make_shared<Linear>(3, 2));
    }
    Tensor forward(const Tensor& x) override { return used->forward(x); }
  } model;
  auto group = std::make_shared<testing::SingleProcessGroup>();
  DistributedDataParallel ddp(model, group, {.bucket_bytes = 4});
  sum(model.forward(randn({2, 3}))).backward();
  // The last-registered parameters come first, so the unused head's buckets
  // are first in line, and nothing could start before backward ended.
  EXPECT_EQ(ddp.stats().buckets_started_early, 0);
  EXPECT_EQ(ddp.stats().all_reduces, 4);
  ASSERT_TRUE(model.unused->weight.grad().defined());
  expect_close(model.unused->weight.grad(), zeros({2, 3}), 0, 0);
}
}  // namespace
}  // namespace bridle
