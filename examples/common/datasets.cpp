// Example data loaders; see datasets.h.
#include "common/datasets.h"

#include <spdlog/spdlog.h>

namespace bridle::examples {
namespace {

// MNIST's pixel mean and standard deviation (over the training set).
const std::vector<float> kMnistMean = {0.1307f}, kMnistStd = {0.3081f};

Loaders make_loaders(const Tensor& train_x, const Tensor& train_y, const Tensor& test_x,
                     const Tensor& test_y, DataLoaderOptions train_options) {
  DataLoaderOptions test_options = train_options;
  test_options.batch_size = 500;
  test_options.shuffle = false;
  test_options.augment.clear();
  Loaders loaders;
  loaders.train = std::make_unique<DataLoader>(std::make_shared<TensorDataset>(train_x, train_y),
                                               train_options);
  loaders.test =
      std::make_unique<DataLoader>(std::make_shared<TensorDataset>(test_x, test_y), test_options);
  return loaders;
}

}  // namespace

Loaders mnist_loaders(const CommonFlags& flags) {
  BRIDLE_CHECK(has_mnist(flags.data_dir),
               "MNIST not found in '{}': run datasets/fetch.sh mnist (or pass --data DIR)",
               flags.data_dir);
  MnistData train = load_mnist(flags.data_dir, "train", flags.smoke ? 2048 : -1);
  MnistData test = load_mnist(flags.data_dir, "test", flags.smoke ? 1000 : -1);
  spdlog::info("MNIST: {} training and {} test images from {}", train.labels.numel(),
               test.labels.numel(), flags.data_dir);
  DataLoaderOptions options;
  options.batch_size = flags.batch_size;
  options.shuffle = true;
  options.seed = flags.seed;
  options.mean = kMnistMean;
  options.stddev = kMnistStd;
  return make_loaders(train.images, train.labels, test.images, test.labels, options);
}

Loaders cifar10_loaders(const CommonFlags& flags, bool augment) {
  BRIDLE_CHECK(has_cifar10(flags.data_dir),
               "CIFAR-10 not found in '{}': run datasets/fetch.sh cifar10 (or pass --data DIR or "
               "the .tar.gz)",
               flags.data_dir);
  CifarData train = load_cifar10(flags.data_dir, "train", flags.smoke ? 2048 : -1);
  CifarData test = load_cifar10(flags.data_dir, "test", flags.smoke ? 1000 : -1);
  spdlog::info("CIFAR-10: {} training and {} test images from {}", train.labels.numel(),
               test.labels.numel(), flags.data_dir);
  DataLoaderOptions options;
  options.batch_size = flags.batch_size;
  options.shuffle = true;
  options.seed = flags.seed;
  options.mean = kCifar10Mean;
  options.stddev = kCifar10Std;
  if (augment) options.augment = {RandomCrop{.padding = 4}, RandomHorizontalFlip{}};
  return make_loaders(train.images, train.labels, test.images, test.labels, options);
}

}  // namespace bridle::examples
