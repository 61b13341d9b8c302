// cifar10_resnet: ResNet-20 (He et al. 2016) on CIFAR-10 with the standard
// augmentation (random crop with 4 pixels of padding, horizontal flip).
//
// What it teaches: residual blocks as plain modules composed from Conv2d,
// BatchNorm2d and ReLU; batch norm's train/eval switch; a learning-rate schedule.
// The network is the paper's: a 3x3 conv (16), three stages of three basic blocks
// (16, 32, 64 channels; stride 2 at the start of stages 2 and 3), global average
// pooling, fc 10. Where a block changes shape its shortcut is a 1x1 convolution
// with batch norm (the paper's option B); 0.27M parameters.
//
// Recipes (--recipe):
//   resnet20  the full run (default): 60 epochs of SGD, nesterov momentum 0.9,
//             weight decay 5e-4, batch 128, peak lr 0.1 with 2 epochs of linear
//             warmup then cosine decay to 0.
//   quick     the same network and optimizer in 10 epochs (1 of warmup): >= 80%
//             in under 20 minutes on 2 cores.
// --optimizer, --schedule, --weight-decay, --warmup-epochs ... (common/training_flags.h)
// override the recipe's optimizer and schedule; --heldout (5000) training images
// are kept out of training to fit the temperature of the calibration report.
// Run:    datasets/fetch.sh cifar10 && ./build/examples/cifar10_resnet --data data/cifar10
// Expect: see README.md for each recipe's command, accuracy and wall time.
#include <spdlog/spdlog.h>

#include "bridle.h"
#include "common/classifier.h"
#include "common/distributed.h"
#include "models/cifar_resnet.h"

using namespace bridle;
using models::CifarResNet;

int main(int argc, char** argv) {
  CLI::App app{"Train ResNet-20 on CIFAR-10"};
  examples::ClassifierFlags flags;
  flags.common.data_dir = "data/cifar10";
  flags.common.batch_size = 128;
  flags.common.lr = 0.1f;
  flags.optimizer.nesterov = true;  // SGD, Nesterov momentum 0.9, cosine decay
  flags.optimizer.weight_decay = 5e-4f;
  std::string recipe = "resnet20";
  examples::add_classifier_flags(app, flags);
  app.add_option("--recipe", recipe, "resnet20 (the full schedule) or quick")
      ->capture_default_str()
      ->check(CLI::IsMember({"resnet20", "quick"}));
  CLI11_PARSE(app, argc, argv);
  // The recipe sets the epochs and the warmup unless they are given.
  if (app.count("--epochs") == 0) flags.common.epochs = recipe == "quick" ? 10 : 60;
  if (app.count("--warmup-epochs") == 0 && flags.optimizer.schedule != "onecycle")
    flags.optimizer.warmup_epochs = recipe == "quick" ? 1 : 2;
  try {
    flags.common.takes_device = true;  // the model and batches go to --device
    examples::apply_common_flags(flags.common);
    examples::Loaders data =
        examples::cifar10_loaders(flags.common, true, flags.calibration.held_out);
    CifarResNet model(3);
    spdlog::info("recipe {}: {} parameters\n{}", recipe, model.num_parameters(), model.str());
    return examples::train_classifier(flags, "cifar10_resnet", model, data, {{"recipe", recipe}});
  } catch (const Error& e) {
    return examples::exit_with_error(e);  // --distributed: ends every rank
  }
}
