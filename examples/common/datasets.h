// Data loaders for the examples: MNIST (normalized) and CIFAR-10 (normalized,
// with random crop + flip on the training set), from --data, honouring --smoke,
// --batch-size and --seed.
#pragma once

#include <memory>

#include "bridle.h"
#include "common/example_main.h"

namespace bridle::examples {

struct Loaders {
  std::unique_ptr<DataLoader> train, test;
};

// MNIST from flags.data_dir (run datasets/fetch.sh mnist first).
Loaders mnist_loaders(const CommonFlags& flags);
// CIFAR-10 from flags.data_dir: the extracted folder or the .tar.gz archive
// (datasets/fetch.sh cifar10). `augment` adds random crop (padding 4) and flip.
Loaders cifar10_loaders(const CommonFlags& flags, bool augment = true);

}  // namespace bridle::examples
