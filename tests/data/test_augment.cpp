// Augmentation: a crop keeps the shape and shifts the content by the drawn
// offset (zeros where it uses the padding), a flip mirrors, the draws follow the
// documented per-example seeding (same seed, same augmentation; another epoch
// or seed, another one; batch size, shuffling and prefetching change nothing),
// the DataLoader augments before it normalizes, and a loader without `augment`
// (the evaluation one) hands out the data unchanged.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/factory.h"
#include "data/augment.h"
#include "data/dataloader.h"
#include "data_test_util.h"

namespace bridle {
namespace {

using testing::error_message;

// N images [C, H, W] whose pixels say where they are: 1 + 1000 i + 100 c + 10 y + x
// (never 0, so padding stands out). Targets are the example indices.
std::shared_ptr<TensorDataset> image_dataset(int64_t n, int64_t C = 2, int64_t H = 5,
                                             int64_t W = 6) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < H; ++r)
        for (int64_t k = 0; k < W; ++k)
          x.push_back(static_cast<float>(1 + 1000 * i + 100 * c + 10 * r + k));
    y.push_back(i);
  }
  return std::make_shared<TensorDataset>(from_vector(x, {n, C, H, W}), from_vector(y, {n}));
}

float source_pixel(int64_t i, int64_t c, int64_t y, int64_t x) {
  return static_cast<float>(1 + 1000 * i + 100 * c + 10 * y + x);
}

std::vector<AugmentRng> rngs_for(int64_t n, uint64_t seed) {
  std::vector<AugmentRng> rngs;
  for (int64_t i = 0; i < n; ++i) rngs.emplace_back(augment_seed(seed, 0, i));
  return rngs;
}

// All batches of one epoch, inputs and targets.
std::vector<std::pair<std::vector<float>, std::vector<int64_t>>> run_epoch(DataLoader& loader,
                                                                           int64_t epoch) {
  std::vector<std::pair<std::vector<float>, std::vector<int64_t>>> out;
  for (Batch& b : loader.epoch(epoch))
    out.push_back({b.inputs.to_vector(), b.targets.to_int_vector()});
  return out;
}

// Example index -> its augmented pixels, for one epoch.
std::map<int64_t, std::vector<float>> by_example(DataLoader& loader, int64_t epoch) {
  std::map<int64_t, std::vector<float>> out;
  for (Batch& b : loader.epoch(epoch)) {
    const int64_t per = b.inputs.numel() / b.size();
    std::vector<float> x = b.inputs.to_vector();
    std::vector<int64_t> t = b.targets.to_int_vector();
    for (int64_t j = 0; j < b.size(); ++j)
      out[t[j]] = std::vector<float>(x.begin() + j * per, x.begin() + (j + 1) * per);
  }
  return out;
}

TEST(RandomCrop, ShiftsContentByTheDrawnOffset) {
  const int64_t n = 200, C = 2, H = 5, W = 6, pad = 2;
  Tensor x = image_dataset(n, C, H, W)->inputs();
  std::vector<AugmentRng> rngs = rngs_for(n, 11);
  std::vector<AugmentRng> replay = rngs;  // the same streams, to recompute the offsets
  Tensor out = random_crop(x, RandomCrop{.padding = pad}, rngs);
  ASSERT_EQ(out.shape(), x.shape());
  std::set<std::pair<int64_t, int64_t>> offsets;
  for (int64_t i = 0; i < n; ++i) {
    const auto dy = static_cast<int64_t>(replay[i].below(H + 2 * pad - H + 1));
    const auto dx = static_cast<int64_t>(replay[i].below(W + 2 * pad - W + 1));
    offsets.insert({dy, dx});
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t k = 0; k < W; ++k) {
          const int64_t sy = y + dy - pad, sx = k + dx - pad;
          const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
          ASSERT_EQ(out.at({i, c, y, k}), inside ? source_pixel(i, c, sy, sx) : 0.0f)
              << "example " << i << " offset " << dy << "," << dx;
        }
  }
  EXPECT_EQ(offsets.size(), 25u) << "every offset 0..4 x 0..4 occurs in 200 draws";
  // The input is left alone.
  EXPECT_EQ(x.at({3, 1, 2, 4}), source_pixel(3, 1, 2, 4));
}

TEST(RandomCrop, SizeAndPaddingZero) {
  Tensor x = image_dataset(4)->inputs();
  std::vector<AugmentRng> rngs = rngs_for(4, 1);
  EXPECT_EQ(random_crop(x, RandomCrop{.padding = 0}, rngs).to_vector(), x.to_vector());

  // A smaller window without padding always lies inside the image.
  Tensor small = random_crop(x, RandomCrop{.padding = 0, .size = 3}, rngs);
  ASSERT_EQ(small.shape(), (Shape{4, 2, 3, 3}));
  for (int64_t i = 0; i < 4; ++i) {
    const float corner = small.at({i, 0, 0, 0});
    EXPECT_GT(corner, 0);
    EXPECT_FLOAT_EQ(small.at({i, 1, 2, 2}), corner + 100 + 22) << "a contiguous window";
  }
  // A window bigger than the image shows the padding on some side.
  Tensor big = random_crop(x, RandomCrop{.padding = 1, .size = 7}, rngs);
  EXPECT_EQ(big.shape(), (Shape{4, 2, 7, 7}));
}

TEST(RandomHorizontalFlip, Mirrors) {
  Tensor x = image_dataset(300)->inputs();
  Tensor always = x.clone();
  std::vector<AugmentRng> rngs = rngs_for(300, 2);
  random_horizontal_flip(always, RandomHorizontalFlip{.p = 1}, rngs);
  for (int64_t i : {0, 150, 299})
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t y = 0; y < 5; ++y)
        for (int64_t k = 0; k < 6; ++k)
          ASSERT_EQ(always.at({i, c, y, k}), source_pixel(i, c, y, 5 - k));

  Tensor never = x.clone();
  random_horizontal_flip(never, RandomHorizontalFlip{.p = 0}, rngs);
  EXPECT_EQ(never.to_vector(), x.to_vector());

  Tensor half = x.clone();
  random_horizontal_flip(half, RandomHorizontalFlip{}, rngs);
  int64_t flipped = 0;
  for (int64_t i = 0; i < 300; ++i) {
    const bool f = half.at({i, 0, 0, 0}) == source_pixel(i, 0, 0, 5);
    if (!f) {
      EXPECT_EQ(half.at({i, 1, 4, 0}), source_pixel(i, 1, 4, 0));  // untouched
    }
    flipped += f;
  }
  EXPECT_GT(flipped, 100);  // 150 expected; 100..200 is over 5 standard deviations
  EXPECT_LT(flipped, 200);
}

// The documented seeding, replayed by hand: crop draws dy then dx, the flip one
// uniform, all from SplitMix64 seeded with augment_seed(seed, epoch, index).
TEST(Augment, FollowsTheDocumentedSeeding) {
  auto mix = [](uint64_t z) {  // splitmix64, as written in the paper
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const uint64_t seed = 5;
  const int64_t epoch = 3, index = 17;
  const uint64_t expected_seed = mix(mix(seed ^ mix(epoch) ^ 0x6175676D656E74ull) ^ index);
  EXPECT_EQ(augment_seed(seed, epoch, index), expected_seed);
  AugmentRng rng(expected_seed);
  EXPECT_EQ(rng.next(), mix(expected_seed));
  EXPECT_EQ(rng.next(), mix(expected_seed + 0x9E3779B97F4A7C15ull));
  AugmentRng unit(1);
  for (int i = 0; i < 1000; ++i) {
    const float u = unit.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    ASSERT_LT(unit.below(9), 9u);
  }
}

DataLoaderOptions train_options(uint64_t seed, int64_t batch_size = 16, int prefetch = 2) {
  return {.batch_size = batch_size,
          .shuffle = true,
          .seed = seed,
          .augment = {RandomCrop{.padding = 2}, RandomHorizontalFlip{}},
          .prefetch = prefetch};
}

TEST(Augment, SameSeedSameAugmentation) {
  auto ds = image_dataset(100);
  DataLoader a(ds, train_options(7));
  DataLoader b(ds, train_options(7));
  for (int64_t epoch : {0, 1, 4}) EXPECT_EQ(run_epoch(a, epoch), run_epoch(b, epoch));
  EXPECT_EQ(run_epoch(a, 1), run_epoch(a, 1)) << "an epoch can be replayed";
}

TEST(Augment, EpochsAndSeedsDiffer) {
  auto ds = image_dataset(100);
  DataLoader a(ds, train_options(7));
  DataLoader b(ds, train_options(8));
  auto e0 = by_example(a, 0), e1 = by_example(a, 1), other = by_example(b, 0);
  int64_t differ_epoch = 0, differ_seed = 0;
  for (int64_t i = 0; i < 100; ++i) {
    differ_epoch += e0[i] != e1[i];
    differ_seed += e0[i] != other[i];
  }
  // With 25 offsets x 2 flips, an example repeats its augmentation 1 time in 50.
  EXPECT_GT(differ_epoch, 85);
  EXPECT_GT(differ_seed, 85);
}

// Example i's augmentation depends on (seed, epoch, i) only: not on the batch
// size, the shuffling, or whether a background thread made the batch.
TEST(Augment, IndependentOfBatchingAndThreads) {
  auto ds = image_dataset(100);
  DataLoader first(ds, train_options(3, 16, 2));
  const auto reference = by_example(first, 2);
  for (auto [batch_size, prefetch] : {std::pair{16, 0}, {7, 1}, {100, 3}, {1, 0}}) {
    DataLoader loader(ds, train_options(3, batch_size, prefetch));
    EXPECT_EQ(by_example(loader, 2), reference) << batch_size << " " << prefetch;
  }
  DataLoaderOptions unshuffled = train_options(3);
  unshuffled.shuffle = false;
  DataLoader loader(ds, unshuffled);
  EXPECT_EQ(by_example(loader, 2), reference);
}

TEST(Augment, EvalLoaderUnaffected) {
  auto ds = image_dataset(40);
  DataLoader train(ds, train_options(1));
  run_epoch(train, 0);  // augmenting leaves the dataset alone
  DataLoader eval(ds, {.batch_size = 16});
  std::vector<float> all;
  for (Batch& b : eval.epoch(0)) {
    std::vector<float> x = b.inputs.to_vector();
    all.insert(all.end(), x.begin(), x.end());
  }
  EXPECT_EQ(all, ds->inputs().to_vector());
}

TEST(Augment, BeforeNormalization) {
  // Padding is black before normalization: (0 - mean) / stddev afterwards.
  auto ds = image_dataset(50);
  DataLoader loader(ds, {.batch_size = 50,
                         .augment = {RandomCrop{.padding = 3, .size = 8}},
                         .mean = {2.0f, 3.0f},
                         .stddev = {4.0f, 5.0f}});
  loader.start_epoch(0);
  Batch b = *loader.next();
  ASSERT_EQ(b.inputs.shape(), (Shape{50, 2, 8, 8}));
  std::set<float> values;
  for (int64_t i = 0; i < 50; ++i) {
    for (int64_t c = 0; c < 2; ++c) values.insert(static_cast<float>(b.inputs.at({i, c, 0, 0})));
  }
  EXPECT_TRUE(values.count(-2.0f / 4.0f)) << "a padded corner in channel 0";
  EXPECT_TRUE(values.count(-3.0f / 5.0f)) << "a padded corner in channel 1";
}

TEST(Augment, Errors) {
  auto ds = image_dataset(4);
  EXPECT_CONTAINS(error_message([&] { DataLoader(ds, {.augment = {RandomCrop{.padding = -1}}}); }),
                  "RandomCrop: padding (-1) and size (0) must be >= 0");
  EXPECT_CONTAINS(
      error_message([&] { DataLoader(ds, {.augment = {RandomHorizontalFlip{.p = 1.5f}}}); }),
      "RandomHorizontalFlip: p = 1.5 is outside [0, 1]");
  // Shape errors reach the caller from next(), as other batch errors do.
  DataLoader too_big(ds, {.augment = {RandomCrop{.padding = 1, .size = 9}}});
  too_big.start_epoch(0);
  EXPECT_CONTAINS(error_message([&] { too_big.next(); }),
                  "RandomCrop: a 9x9 crop does not fit images 5x6 padded by 1");
  auto flat = std::make_shared<TensorDataset>(zeros({4, 3}), zeros({4}, kInt64));
  DataLoader not_images(flat, {.augment = {RandomHorizontalFlip{}}, .prefetch = 0});
  not_images.start_epoch(0);
  EXPECT_CONTAINS(error_message([&] { not_images.next(); }),
                  "RandomHorizontalFlip: needs float32 images [B, C, H, W], got float32 [4, 3]");
}

}  // namespace
}  // namespace bridle
