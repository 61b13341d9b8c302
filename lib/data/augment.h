// Data augmentation: seeded random transforms of image batches [B, C, H, W].
//
//   DataLoader train(dataset, {.batch_size = 128, .shuffle = true, .seed = 1,
//                              .augment = {RandomCrop{.padding = 4}, RandomHorizontalFlip{}},
//                              .mean = kCifar10Mean, .stddev = kCifar10Std});
//
// The standard CIFAR recipe (torchvision's RandomCrop(32, padding=4),
// RandomHorizontalFlip(), Normalize). The DataLoader (dataloader.h) applies the
// transforms in list order to each training batch on its background thread,
// after gathering and before normalizing, so the padding is black (0) as with
// torchvision. Give `augment` to the training loader only; the evaluation loader
// leaves it empty.
//
// Randomness. Each example draws from its own SplitMix64 stream, seeded with
// augment_seed(seed, epoch, i) for dataset index i. What happens to example i
// in epoch e therefore depends only on (seed, e, i): not on the shuffling, the
// batch size, which thread prepares the batch, or when. Each transform draws,
// in list order, from the example's stream (RandomCrop: dy then dx;
// RandomHorizontalFlip: one number).
#pragma once

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "core/tensor.h"

namespace bridle {

// Pads each image with `padding` zeros on every side, then cuts out a size x
// size window at a uniformly random position (dy, dx in 0..H+2*padding-size).
// size 0 keeps the input's height and width (32 for CIFAR).
struct RandomCrop {
  int64_t padding = 4;
  int64_t size = 0;
};

// Mirrors each image left to right with probability p.
struct RandomHorizontalFlip {
  float p = 0.5f;
};

using Augmentation = std::variant<RandomCrop, RandomHorizontalFlip>;

// SplitMix64 (Steele, Lea and Flood 2014) as a generator: tiny state, so one per
// example is free, and good enough for choosing crops and flips.
class AugmentRng {
 public:
  explicit AugmentRng(uint64_t seed) : state_(seed) {}
  uint64_t next();                 // 64 random bits
  uint64_t below(uint64_t bound);  // uniform in [0, bound), without modulo bias
  float uniform();                 // uniform in [0, 1), 24 bits

 private:
  uint64_t state_;
};

// The seed of example `index`'s stream in epoch `epoch`:
// splitmix64(splitmix64(seed ^ splitmix64(epoch) ^ 0x6175676D656E74 /* "augment" */) ^ index).
// The constant keeps it apart from the shuffling stream, splitmix64(seed ^ splitmix64(epoch)).
uint64_t augment_seed(uint64_t seed, int64_t epoch, int64_t index);

// Checks a transform's settings; throws bridle::Error naming the transform.
void check_augmentation(const Augmentation& augmentation);

// Applies `augment` in order to inputs [B, C, H, W] (float32), example b drawing
// from AugmentRng(augment_seed(seed, epoch, indices[b])). Flips work in place;
// crops return a new tensor. Returns the augmented batch.
Tensor augment_batch(Tensor inputs, const std::vector<Augmentation>& augment,
                     const std::vector<int64_t>& indices, uint64_t seed, int64_t epoch);

// The transforms one at a time, each example drawing from rngs[b] (for tests
// and for code that builds its own pipeline).
Tensor random_crop(const Tensor& inputs, const RandomCrop& crop, std::span<AugmentRng> rngs);
void random_horizontal_flip(Tensor& inputs, const RandomHorizontalFlip& flip,
                            std::span<AugmentRng> rngs);

}  // namespace bridle
