// End to end: load the committed MNIST subset (2000 training, 500 test images),
// train a small MLP with the real loader, loss and optimizer, and check that it
// learns (test accuracy far above the 10% of chance) and that a seed fixes the
// whole loss curve.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

const std::string kSubset = std::string(BRIDLE_FIXTURES_DIR) + "/mnist_subset";

struct RunResult {
  std::vector<float> losses;
  double test_accuracy = 0;
};

RunResult train(uint64_t seed, int epochs) {
  manual_seed(seed);
  MnistData train = load_mnist(kSubset, "train");
  MnistData test = load_mnist(kSubset, "test");
  DataLoaderOptions options;
  options.batch_size = 64;
  options.shuffle = true;
  options.seed = seed;
  options.mean = {0.1307f};
  options.stddev = {0.3081f};
  DataLoader loader(std::make_shared<TensorDataset>(train.images, train.labels), options);

  Sequential model{std::make_shared<Flatten>(), std::make_shared<Linear>(784, 128),
                   std::make_shared<ReLU>(), std::make_shared<Linear>(128, 10)};
  SGD sgd(model.parameters(), {.lr = 0.05f, .momentum = 0.9f});
  RunResult result;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    for (Batch& batch : loader.epoch(epoch)) {
      sgd.zero_grad();
      Tensor loss = cross_entropy(model.forward(batch.inputs), batch.targets);
      loss.backward();
      sgd.step();
      result.losses.push_back(loss.item());
    }
  }
  NoGradGuard no_grad;
  Tensor images = (test.images - 0.1307f) / 0.3081f;
  Tensor predicted = argmax(model.forward(images), 1);
  int64_t correct = 0;
  for (int64_t i = 0; i < predicted.numel(); ++i)
    correct += predicted.data<int64_t>()[i] == test.labels.data<int64_t>()[i];
  result.test_accuracy = static_cast<double>(correct) / predicted.numel();
  return result;
}

TEST(EndToEnd, SmallMlpLearnsMnistSubset) {
  RunResult run = train(0, 3);
  EXPECT_GT(run.test_accuracy, 0.80) << "chance is 0.10";
  EXPECT_LT(run.losses.back(), 0.5f * run.losses.front());
}

TEST(EndToEnd, SameSeedOnOneThreadGivesTheSameLossCurve) {
  int threads = get_num_threads();
  set_num_threads(1);
  RunResult a = train(3, 1), b = train(3, 1), c = train(4, 1);
  set_num_threads(threads);
  EXPECT_EQ(a.losses, b.losses);
  EXPECT_NE(a.losses, c.losses);
}

}  // namespace
}  // namespace bridle
