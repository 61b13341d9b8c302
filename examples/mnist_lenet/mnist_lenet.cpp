// mnist_lenet: LeNet-5 on MNIST, the convolutional network that started it all.
//
// What it teaches: convolution and pooling layers composed into a Module, and
// how few parameters (61,706) a convolutional network needs next to the MLP.
// The layout is LeCun et al. (1998): conv 5x5 (6) - pool - conv 5x5 (16) - pool -
// fc 120 - fc 84 - fc 10, with the modern ReLU and max pooling in place of the
// scaled tanh and trainable subsampling.
//
// Run:    datasets/fetch.sh mnist && ./build/examples/mnist_lenet --data data/mnist
// Expect: test accuracy >= 99.0% after 15 epochs (LeCun et al. report 99.05%);
//         see README.md for the measured figure and time.
#include <spdlog/spdlog.h>

#include "bridle.h"
#include "common/classifier.h"
#include "common/distributed.h"
#include "models/lenet5.h"

using namespace bridle;
using models::LeNet5;

int main(int argc, char** argv) {
  CLI::App app{"Train LeNet-5 on MNIST"};
  examples::ClassifierFlags flags;  // SGD, momentum 0.9, cosine decay
  flags.common.data_dir = "data/mnist";
  flags.common.epochs = 15;
  flags.common.batch_size = 64;
  flags.common.lr = 0.05f;
  flags.optimizer.weight_decay = 5e-4f;
  examples::add_classifier_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  try {
    flags.common.takes_device = true;  // the model and batches go to --device
    examples::apply_common_flags(flags.common);
    examples::Loaders data = examples::mnist_loaders(flags.common, flags.calibration.held_out);
    LeNet5 model;
    spdlog::info("model: {} parameters\n{}", model.num_parameters(), model.str());
    return examples::train_classifier(flags, "mnist_lenet", model, data);
  } catch (const Error& e) {
    return examples::exit_with_error(e);  // --distributed: ends every rank
  }
}
