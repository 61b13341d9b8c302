// Example data loaders; see datasets.h.
#include "common/datasets.h"

#include <spdlog/spdlog.h>

#include "common/distributed.h"

namespace bridle::examples {
namespace {

// MNIST's pixel mean and standard deviation (over the training set).
const std::vector<float> kMnistMean = {0.1307f}, kMnistStd = {0.3081f};

// The training images [0, n - held_out) train; [n - held_out, n) are held out.
Loaders make_loaders(const char* dataset, const Tensor& train_x, const Tensor& train_y,
                     const Tensor& test_x, const Tensor& test_y, DataLoaderOptions train_options,
                     int64_t held_out, bool smoke) {
  if (smoke) held_out = std::min<int64_t>(held_out, 512);
  const int64_t n = train_y.numel(), cut = n - held_out;
  BRIDLE_CHECK(held_out >= 0 && cut > 0, "--heldout {} leaves none of the {} training images",
               held_out, n);
  DataLoaderOptions test_options = train_options;
  shard_by_rank(train_options);  // --distributed: each rank its own share of every epoch
  test_options.batch_size = 500;
  test_options.shuffle = false;
  test_options.augment.clear();
  Loaders loaders;
  loaders.train = std::make_unique<DataLoader>(
      std::make_shared<TensorDataset>(train_x.slice(0, cut), train_y.slice(0, cut)), train_options);
  loaders.test =
      std::make_unique<DataLoader>(std::make_shared<TensorDataset>(test_x, test_y), test_options);
  if (held_out > 0)
    loaders.held_out = std::make_unique<DataLoader>(
        std::make_shared<TensorDataset>(train_x.slice(cut, n), train_y.slice(cut, n)),
        test_options);
  spdlog::info("{}: {} training, {} held-out and {} test images", dataset, cut, held_out,
               test_y.numel());
  return loaders;
}

}  // namespace

Loaders mnist_loaders(const CommonFlags& flags, int64_t held_out) {
  BRIDLE_CHECK(has_mnist(flags.data_dir),
               "MNIST not found in '{}': run datasets/fetch.sh mnist (or pass --data DIR)",
               flags.data_dir);
  MnistData train = load_mnist(flags.data_dir, "train", flags.smoke ? 2048 : -1);
  MnistData test = load_mnist(flags.data_dir, "test", flags.smoke ? 1000 : -1);
  spdlog::info("MNIST from {}", flags.data_dir);
  DataLoaderOptions options;
  options.batch_size = flags.batch_size;
  options.shuffle = true;
  options.seed = flags.seed;
  options.mean = kMnistMean;
  options.stddev = kMnistStd;
  options.pin_memory = training_device(flags).is_cuda();  // batches go to the GPU
  return make_loaders("MNIST", train.images, train.labels, test.images, test.labels, options,
                      held_out, flags.smoke);
}

Loaders cifar10_loaders(const CommonFlags& flags, bool augment, int64_t held_out) {
  BRIDLE_CHECK(has_cifar10(flags.data_dir),
               "CIFAR-10 not found in '{}': run datasets/fetch.sh cifar10 (or pass --data DIR or "
               "the .tar.gz)",
               flags.data_dir);
  CifarData train = load_cifar10(flags.data_dir, "train", flags.smoke ? 2048 : -1);
  CifarData test = load_cifar10(flags.data_dir, "test", flags.smoke ? 1000 : -1);
  spdlog::info("CIFAR-10 from {}", flags.data_dir);
  DataLoaderOptions options;
  options.batch_size = flags.batch_size;
  options.shuffle = true;
  options.seed = flags.seed;
  options.mean = kCifar10Mean;
  options.stddev = kCifar10Std;
  options.pin_memory = training_device(flags).is_cuda();
  if (augment) options.augment = {RandomCrop{.padding = 4}, RandomHorizontalFlip{}};
  return make_loaders("CIFAR-10", train.images, train.labels, test.images, test.labels, options,
                      held_out, flags.smoke);
}

}  // namespace bridle::examples
