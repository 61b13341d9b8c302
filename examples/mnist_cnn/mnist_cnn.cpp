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
#include "common/datasets.h"

using namespace bridle;
using models::MnistCnn;

int main(int argc, char** argv) {
  CLI::App app{"Train the PyTorch-example CNN on MNIST"};
  examples::CommonFlags flags;
  flags.data_dir = "data/mnist";
  flags.epochs = 12;
  flags.batch_size = 64;
  flags.lr = 0.05f;
  examples::CheckpointFlags checkpoint_flags;
  examples::CalibrationFlags calibration_flags;
  examples::add_common_flags(app, flags);
  examples::add_checkpoint_flags(app, checkpoint_flags);
  examples::add_calibration_flags(app, calibration_flags);
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);
    examples::Loaders data = examples::mnist_loaders(flags, calibration_flags.held_out);
    MnistCnn model(flags.seed);
    spdlog::info("model: {} parameters\n{}", model.num_parameters(), model.str());
    SGD optimizer(model.parameters(), {.lr = flags.lr, .momentum = 0.9f});
    examples::ClassifierRun run{
        .example = "mnist_cnn",
        .model = &model,
        .optimizer = &optimizer,
        .train_loader = data.train.get(),
        .test_loader = data.test.get(),
        .held_out_loader = data.held_out.get(),
        .calibration = calibration_flags,
        .epochs = flags.smoke ? 1 : flags.epochs,
        .lr_at = [&](int64_t step,
                     int64_t total) { return examples::warmup_cosine_lr(flags.lr, step, total); },
        .config = examples::run_config(flags),
        .generators = model.generators()};
    return examples::run_classifier(flags, checkpoint_flags, run);
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
