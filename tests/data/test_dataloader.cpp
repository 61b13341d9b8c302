// TensorDataset and DataLoader: each epoch covers the dataset exactly once,
// drop_last, reproducible seeded orders that change per epoch, normalization,
// prefetching that delivers the same batches as the synchronous path, worker
// exceptions reaching the caller, and early exits that neither hang nor leak.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <random>
#include <set>

#include "core/factory.h"
#include "data/dataloader.h"
#include "data/mnist.h"
#include "data_test_util.h"

namespace bridle {
namespace {

using testing::error_message;

// N examples of shape [2, 3]: x[i, c, k] = 100 i + 10 c + k, target i. Every
// value says which example (and which element) it came from.
std::shared_ptr<TensorDataset> indexed_dataset(int64_t n) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 3; ++k) x.push_back(static_cast<float>(100 * i + 10 * c + k));
    y.push_back(i);
  }
  return std::make_shared<TensorDataset>(from_vector(x, {n, 2, 3}), from_vector(y, {n}));
}

// Every batch's targets, in order, for one epoch.
std::vector<std::vector<int64_t>> run_epoch(DataLoader& loader, int64_t epoch) {
  std::vector<std::vector<int64_t>> out;
  for (Batch& batch : loader.epoch(epoch)) out.push_back(batch.targets.to_int_vector());
  return out;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

TEST(TensorDataset, GathersRows) {
  auto ds = indexed_dataset(5);
  EXPECT_EQ(ds->size(), 5);
  Batch b = ds->get_batch({4, 0, 4});
  EXPECT_EQ(b.inputs.shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(b.size(), 3);
  EXPECT_EQ(b.targets.to_int_vector(), (std::vector<int64_t>{4, 0, 4}));
  EXPECT_EQ(b.inputs.at({0, 1, 2}), 412);
  EXPECT_EQ(b.inputs.at({1, 0, 1}), 1);
}

TEST(TensorDataset, Errors) {
  auto ds = indexed_dataset(5);
  std::string msg = error_message([&] { ds->get_batch({1, 5}); });
  EXPECT_CONTAINS(msg, "index 5 (position 1 of the batch) is out of range");
  msg = error_message([&] { TensorDataset(zeros({4, 3}), zeros({5}, kInt64)); });
  EXPECT_CONTAINS(msg, "inputs [4, 3] and targets [5] differ");
}

TEST(DataLoader, EachEpochCoversTheDatasetOnce) {
  for (int prefetch : {0, 2}) {
    DataLoader loader(indexed_dataset(103),
                      {.batch_size = 10, .shuffle = true, .seed = 7, .prefetch = prefetch});
    EXPECT_EQ(loader.num_batches(), 11);
    EXPECT_EQ(loader.num_examples(), 103);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      int64_t count = 0;
      std::vector<int64_t> seen;
      for (Batch& batch : loader.epoch(epoch)) {
        EXPECT_EQ(batch.size(), count < 10 ? 10 : 3);
        std::vector<int64_t> targets = batch.targets.to_int_vector();
        for (int64_t i = 0; i < batch.size(); ++i)  // inputs travel with their targets
          ASSERT_EQ(batch.inputs.at({i, 1, 2}), 100 * targets[i] + 12);
        seen.insert(seen.end(), targets.begin(), targets.end());
        ++count;
      }
      EXPECT_EQ(count, 11);
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> all(103);
      std::iota(all.begin(), all.end(), 0);
      EXPECT_EQ(seen, all) << "epoch " << epoch;
    }
  }
}

TEST(DataLoader, DropLast) {
  DataLoader loader(indexed_dataset(103), {.batch_size = 10, .shuffle = true, .drop_last = true});
  EXPECT_EQ(loader.num_batches(), 10);
  auto batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 10u);
  for (const auto& b : batches) EXPECT_EQ(b.size(), 10u);
  std::vector<int64_t> all = flatten(batches);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 100u);

  // An exact multiple loses nothing; fewer examples than a batch gives no batch.
  EXPECT_EQ(DataLoader(indexed_dataset(100), {.batch_size = 10, .drop_last = true}).num_batches(),
            10);
  EXPECT_EQ(DataLoader(indexed_dataset(9), {.batch_size = 10, .drop_last = true}).num_batches(), 0);
  EXPECT_EQ(DataLoader(indexed_dataset(9), {.batch_size = 10}).num_batches(), 1);
}

TEST(DataLoader, WithoutShuffleKeepsDatasetOrder) {
  DataLoader loader(indexed_dataset(25), {.batch_size = 8});
  std::vector<int64_t> expected(25);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(flatten(run_epoch(loader, 0)), expected);
  EXPECT_EQ(flatten(run_epoch(loader, 5)), expected);
}

TEST(DataLoader, SameSeedSameOrder) {
  DataLoaderOptions options{.batch_size = 16, .shuffle = true, .seed = 1234};
  DataLoader a(indexed_dataset(200), options);
  DataLoader b(indexed_dataset(200), options);
  for (int64_t epoch : {0, 1, 7}) EXPECT_EQ(run_epoch(a, epoch), run_epoch(b, epoch));

  options.seed = 1235;
  DataLoader c(indexed_dataset(200), options);
  EXPECT_NE(run_epoch(a, 0), run_epoch(c, 0));
}

TEST(DataLoader, EpochsDifferAndRepeat) {
  DataLoader loader(indexed_dataset(200), {.batch_size = 16, .shuffle = true, .seed = 3});
  auto epoch0 = run_epoch(loader, 0);
  auto epoch1 = run_epoch(loader, 1);
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(run_epoch(loader, 0), epoch0);  // an epoch's order depends on its number only
  EXPECT_EQ(flatten(epoch1), loader.epoch_order(1));
}

// The order is the one dataloader.h documents, so other code (or a reader with
// a pencil) can reproduce it.
TEST(DataLoader, OrderIsTheDocumentedFisherYates) {
  const int64_t n = 1000;
  const uint64_t seed = 42;
  const int64_t epoch = 3;
  std::vector<int64_t> expected(n);
  std::iota(expected.begin(), expected.end(), 0);
  std::mt19937_64 rng(splitmix64(seed ^ splitmix64(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    const uint64_t excess = (UINT64_MAX % bound + 1) % bound;
    uint64_t x = rng();
    while (x > UINT64_MAX - excess) x = rng();
    std::swap(expected[i], expected[x % bound]);
  }
  DataLoader loader(indexed_dataset(n), {.batch_size = 1, .shuffle = true, .seed = seed});
  EXPECT_EQ(loader.epoch_order(epoch), expected);

  // Pinned values: a change here changes every seeded experiment.
  DataLoader small(indexed_dataset(10), {.batch_size = 1, .shuffle = true, .seed = 42});
  EXPECT_EQ(small.epoch_order(0), (std::vector<int64_t>{9, 6, 2, 0, 1, 4, 3, 8, 5, 7}));
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
}

TEST(DataLoader, NormalizesPerChannel) {
  DataLoader loader(indexed_dataset(4),
                    {.batch_size = 4, .mean = {1.0f, 2.0f}, .stddev = {2.0f, 4.0f}});
  loader.start_epoch(0);
  std::optional<Batch> batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t k = 0; k < 3; ++k) {
        const float x = static_cast<float>(100 * i + 10 * c + k);
        EXPECT_FLOAT_EQ(batch->inputs.at({i, c, k}), c == 0 ? (x - 1) / 2 : (x - 2) / 4);
      }
  EXPECT_FALSE(loader.next().has_value());
  // The dataset itself is left untouched.
  EXPECT_EQ(loader.dataset().get_batch({3}).inputs.at({0, 1, 2}), 312);

  DataLoader one(indexed_dataset(2), {.batch_size = 2, .mean = {10.0f}, .stddev = {5.0f}});
  one.start_epoch(0);
  EXPECT_FLOAT_EQ(one.next()->inputs.at({1, 1, 1}), (111.0f - 10) / 5);
}

TEST(DataLoader, NormalizationChannelMismatchReachesCaller) {
  for (int prefetch : {0, 2}) {
    DataLoader loader(
        indexed_dataset(4),
        {.batch_size = 2, .mean = {0, 0, 0}, .stddev = {1, 1, 1}, .prefetch = prefetch});
    loader.start_epoch(0);
    std::string msg = error_message([&] { loader.next(); });
    EXPECT_CONTAINS(msg, "need inputs [B, 3, ...], got [2, 2, 3]");
  }
}

TEST(DataLoader, PrefetchDeliversTheSameBatches) {
  auto ds = indexed_dataset(517);
  DataLoaderOptions options{.batch_size = 32,
                            .shuffle = true,
                            .seed = 9,
                            .mean = {3, 4},
                            .stddev = {5, 6},
                            .prefetch = 0};
  DataLoader sync(ds, options);
  options.prefetch = 2;
  DataLoader prefetched(ds, options);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    sync.start_epoch(epoch);
    prefetched.start_epoch(epoch);
    int64_t count = 0;
    while (auto a = sync.next()) {
      std::optional<Batch> b = prefetched.next();
      ASSERT_TRUE(b.has_value()) << "batch " << count;
      EXPECT_EQ(a->inputs.to_vector(), b->inputs.to_vector());
      EXPECT_EQ(a->targets.to_int_vector(), b->targets.to_int_vector());
      ++count;
    }
    EXPECT_FALSE(prefetched.next().has_value());
    EXPECT_EQ(count, sync.num_batches());
  }
}

TEST(DataLoader, EarlyBreakAndDestructionDoNotHang) {
  auto ds = indexed_dataset(1000);
  for (int round = 0; round < 50; ++round) {
    DataLoader loader(
        ds,
        {.batch_size = 10, .shuffle = true, .seed = uint64_t(round), .prefetch = 1 + round % 2});
    int64_t taken = 0;
    for (Batch& batch : loader.epoch(0)) {
      (void)batch;
      if (++taken == round % 4) break;  // 0: runs the whole epoch
    }
    // A new epoch after an early break starts from its first batch.
    loader.start_epoch(1);
    std::vector<int64_t> order = loader.epoch_order(1);
    order.resize(10);
    EXPECT_EQ(loader.next()->targets.to_int_vector(), order);
    // The loader is destroyed here with its worker blocked on a full queue.
  }
  // Destroyed right after starting, before the worker ran at all.
  for (int round = 0; round < 50; ++round) {
    DataLoader loader(ds, {.batch_size = 100});
    loader.start_epoch(0);
  }
}

// Throws from get_batch for batches holding example `bad_`, after counting calls.
class FailingDataset : public Dataset {
 public:
  explicit FailingDataset(int64_t bad) : inner_(indexed_dataset(50)), bad_(bad) {}
  int64_t size() const override { return inner_->size(); }
  Batch get_batch(const std::vector<int64_t>& indices) const override {
    if (std::find(indices.begin(), indices.end(), bad_) != indices.end())
      BRIDLE_FAIL("FailingDataset: example {} is unreadable", bad_);
    return inner_->get_batch(indices);
  }

 private:
  std::shared_ptr<TensorDataset> inner_;
  int64_t bad_;
};

TEST(DataLoader, WorkerExceptionReachesCaller) {
  for (int prefetch : {0, 1, 2}) {
    DataLoader loader(std::make_shared<FailingDataset>(25),
                      {.batch_size = 10, .prefetch = prefetch});
    loader.start_epoch(0);
    EXPECT_EQ(loader.next()->targets.to_int_vector()[0], 0);  // batches before it arrive
    EXPECT_EQ(loader.next()->targets.to_int_vector()[0], 10);
    std::string msg = error_message([&] { loader.next(); });
    EXPECT_CONTAINS(msg, "FailingDataset: example 25 is unreadable");
    EXPECT_FALSE(loader.next().has_value()) << "the epoch ends with the error";
    // The next epoch starts afresh.
    loader.start_epoch(1);
    EXPECT_TRUE(loader.next().has_value());
  }
}

TEST(DataLoader, Errors) {
  auto ds = indexed_dataset(10);
  EXPECT_CONTAINS(error_message([&] { DataLoader(ds, {.batch_size = 0}); }),
                  "batch_size must be positive, got 0");
  EXPECT_CONTAINS(error_message([&] { DataLoader(ds, {.mean = {1}, .stddev = {}}); }),
                  "1 means but 0 stddevs");
  EXPECT_CONTAINS(error_message([&] { DataLoader(ds, {.mean = {0}, .stddev = {0}}); }),
                  "stddev[0] = 0 must be positive");
  EXPECT_CONTAINS(error_message([&] { DataLoader(nullptr); }), "dataset is null");
  DataLoader loader(ds);
  EXPECT_CONTAINS(error_message([&] { loader.next(); }), "call start_epoch(epoch) first");
}

TEST(DataLoader, EmptyDataset) {
  auto ds = std::make_shared<TensorDataset>(zeros({0, 3}), zeros({0}, kInt64));
  DataLoader loader(ds, {.batch_size = 4, .shuffle = true});
  EXPECT_EQ(loader.num_batches(), 0);
  EXPECT_TRUE(run_epoch(loader, 0).empty());
}

// The committed MNIST subset through the whole pipeline, as the examples use it.
TEST(DataLoader, MnistSubset) {
  MnistData train = load_mnist(std::string(BRIDLE_FIXTURES_DIR) + "/mnist_subset", "train");
  DataLoader loader(
      std::make_shared<TensorDataset>(train.images, train.labels),
      {.batch_size = 64, .shuffle = true, .seed = 1, .mean = {0.1307f}, .stddev = {0.3081f}});
  EXPECT_EQ(loader.num_batches(), 32);  // 31 of 64 and one of 16
  double sum = 0;
  int64_t count = 0, labels = 0;
  for (Batch& batch : loader.epoch(0)) {
    EXPECT_EQ(batch.inputs.shape()[1], 1);
    for (float v : batch.inputs.to_vector()) sum += v;
    count += batch.inputs.numel();
    labels += batch.size();
  }
  EXPECT_EQ(labels, 2000);
  // The subset's pixel mean is 0.13018, close to the full set's 0.1307.
  EXPECT_NEAR(sum / static_cast<double>(count), (0.130178 - 0.1307) / 0.3081, 1e-4);
}

}  // namespace
}  // namespace bridle
