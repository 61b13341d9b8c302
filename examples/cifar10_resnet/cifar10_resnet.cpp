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
// Run:    datasets/fetch.sh cifar10 && ./build/examples/cifar10_resnet --data data/cifar10
// Expect: see README.md for each recipe's command, accuracy and wall time.
#include <spdlog/spdlog.h>

#include "bridle.h"
#include "common/classifier.h"
#include "common/datasets.h"
#include "models/cifar_resnet.h"

using namespace bridle;
using models::CifarResNet;

int main(int argc, char** argv) {
  CLI::App app{"Train ResNet-20 on CIFAR-10"};
  examples::CommonFlags flags;
  flags.data_dir = "data/cifar10";
  flags.batch_size = 128;
  flags.lr = 0.1f;
  std::string recipe = "resnet20";
  int warmup_epochs = 2;
  float weight_decay = 5e-4f;
  examples::CheckpointFlags checkpoint_flags;
  examples::CalibrationFlags calibration_flags;
  examples::add_common_flags(app, flags);
  examples::add_checkpoint_flags(app, checkpoint_flags);
  examples::add_calibration_flags(app, calibration_flags);
  app.add_option("--recipe", recipe, "resnet20 (the full schedule) or quick")
      ->capture_default_str()
      ->check(CLI::IsMember({"resnet20", "quick"}));
  app.add_option("--warmup-epochs", warmup_epochs,
                 "Epochs of linear learning-rate warmup (resnet20: 2, quick: 1)");
  app.add_option("--weight-decay", weight_decay, "SGD weight decay")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // The recipe sets the epochs and the warmup unless they are given.
  if (app.count("--epochs") == 0) flags.epochs = recipe == "quick" ? 10 : 60;
  if (app.count("--warmup-epochs") == 0) warmup_epochs = recipe == "quick" ? 1 : 2;
  try {
    examples::apply_common_flags(flags);
    examples::Loaders data = examples::cifar10_loaders(flags, true, calibration_flags.held_out);
    CifarResNet model(3);
    spdlog::info("recipe {}: {} parameters\n{}", recipe, model.num_parameters(), model.str());
    SGD optimizer(
        model.parameters(),
        {.lr = flags.lr, .momentum = 0.9f, .weight_decay = weight_decay, .nesterov = true});
    nlohmann::json config = examples::run_config(flags);
    config["recipe"] = recipe;
    config["warmup_epochs"] = warmup_epochs;
    config["weight_decay"] = examples::json_float(weight_decay);
    const int64_t warmup_steps = warmup_epochs * data.train->num_batches();
    examples::ClassifierRun run{.example = "cifar10_resnet",
                                .model = &model,
                                .optimizer = &optimizer,
                                .train_loader = data.train.get(),
                                .test_loader = data.test.get(),
                                .held_out_loader = data.held_out.get(),
                                .calibration = calibration_flags,
                                .epochs = flags.smoke ? 1 : flags.epochs,
                                .lr_at =
                                    [&](int64_t step, int64_t total) {
                                      return examples::warmup_cosine_lr(flags.lr, step, total,
                                                                        warmup_steps);
                                    },
                                .config = config};
    return examples::run_classifier(flags, checkpoint_flags, run);
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
