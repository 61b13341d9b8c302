// Data loaders for the examples: MNIST (normalized) and CIFAR-10 (normalized,
// with random crop + flip on the training set), from --data, honouring --smoke,
// --batch-size and --seed.
//
// held_out > 0 keeps the last held_out training images out of training: they
// form the held-out (calibration) split, unshuffled and unaugmented, on which
// the examples fit temperature scaling (common/calibration_report.h). With
// --smoke (2048 training images) at most 512 are held out.
#pragma once

#include <memory>

#include "bridle.h"
#include "common/example_main.h"

namespace bridle::examples {

struct Loaders {
  std::unique_ptr<DataLoader> train, test;
  std::unique_ptr<DataLoader> held_out;  // null when nothing is held out
};

// MNIST from flags.data_dir (run datasets/fetch.sh mnist first).
Loaders mnist_loaders(const CommonFlags& flags, int64_t held_out = 0);
// CIFAR-10 from flags.data_dir: the extracted folder or the .tar.gz archive
// (datasets/fetch.sh cifar10). `augment` adds random crop (padding 4) and flip.
Loaders cifar10_loaders(const CommonFlags& flags, bool augment = true, int64_t held_out = 0);

}  // namespace bridle::examples
