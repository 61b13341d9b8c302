// mnist_cnn: the CNN of PyTorch's MNIST example (conv32 - conv64 - max-pool -
// dropout - fc128 - dropout - fc10), trained with SGD + momentum.
//
// What it teaches: dropout (on in training, off in evaluation: Module::train()
// and eval() switch it), and a network where the convolutions dominate the cost.
//
// Run:    datasets/fetch.sh mnist && ./build/examples/mnist_cnn --data data/mnist
// Expect: test accuracy >= 99.2% after 12 epochs; see README.md for the
//         measured figure and time.
#include "models/mnist_cnn.h"

#include <spdlog/spdlog.h>

#include "bridle.h"
#include "common/classifier.h"
#include "common/distributed.h"

using namespace bridle;
using models::MnistCnn;

int main(int argc, char** argv) {
  CLI::App app{"Train the PyTorch-example CNN on MNIST"};
  examples::ClassifierFlags flags;  // SGD, momentum 0.9, cosine decay
  flags.common.data_dir = "data/mnist";
  flags.common.epochs = 12;
  flags.common.batch_size = 64;
  flags.common.lr = 0.05f;
  examples::add_classifier_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  try {
    flags.common.takes_device = true;  // the model and batches go to --device
    examples::apply_common_flags(flags.common);
    examples::Loaders data = examples::mnist_loaders(flags.common, flags.calibration.held_out);
    MnistCnn model(flags.common.seed);
    spdlog::info("model: {} parameters\n{}", model.num_parameters(), model.str());
    // The dropout layers' generator is part of a resumable run's state.
    return examples::train_classifier(flags, "mnist_cnn", model, data, {}, model.generators());
  } catch (const Error& e) {
    return examples::exit_with_error(e);  // --distributed: ends every rank
  }
}
