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
//   resnet20  the full run (default): SGD, nesterov momentum 0.9, weight decay 5e-4,
//             batch 128, peak lr 0.1 with 2 epochs of warmup then cosine decay.
//   quick     the same network and optimizer on a short schedule.
// Run:    datasets/fetch.sh cifar10 && ./build/examples/cifar10_resnet --data data/cifar10
// Expect: see README.md for each recipe's command, accuracy and wall time.
#include <spdlog/spdlog.h>

#include "bridle.h"
#include "common/classifier.h"
#include "common/datasets.h"

using namespace bridle;

// conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU.
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride) : Module("BasicBlock") {
    conv1_ = register_module("conv1", conv(in, out, 3, stride));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out));
    conv2_ = register_module("conv2", conv(out, out, 3, 1));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out));
    if (stride != 1 || in != out) {
      shortcut_conv_ = register_module("shortcut_conv", conv(in, out, 1, stride));
      shortcut_bn_ = register_module("shortcut_bn", std::make_shared<BatchNorm2d>(out));
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu(bn1_->forward(conv1_->forward(x)));
    y = bn2_->forward(conv2_->forward(y));
    Tensor shortcut = shortcut_conv_ ? shortcut_bn_->forward(shortcut_conv_->forward(x)) : x;
    return relu(y + shortcut);
  }

  static std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
    Conv2dOptions options{.stride = {stride, stride}, .padding = {k / 2, k / 2}};
    return std::make_shared<Conv2d>(in, out, k, options, /*bias=*/false);
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, shortcut_conv_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, shortcut_bn_;
};

// images [B, 3, 32, 32] -> logits [B, 10]. depth = 6n + 2 (20: n = 3).
class CifarResNet : public Module {
 public:
  explicit CifarResNet(int64_t blocks_per_stage) : Module("CifarResNet") {
    stem_ = register_module("conv1", BasicBlock::conv(3, 16, 3, 1));
    bn_ = register_module("bn1", std::make_shared<BatchNorm2d>(16));
    stages_ = register_module("stages", std::make_shared<Sequential>());
    int64_t channels = 16;
    for (int64_t width : {16, 32, 64}) {
      for (int64_t b = 0; b < blocks_per_stage; ++b) {
        int64_t stride = (b == 0 && width != 16) ? 2 : 1;
        stages_->push_back(std::make_shared<BasicBlock>(channels, width, stride));
        channels = width;
      }
    }
    fc_ = register_module("fc", std::make_shared<Linear>(64, 10));
  }
  Tensor forward(const Tensor& images) override {
    Tensor x = relu(bn_->forward(stem_->forward(images)));  // [B, 16, 32, 32]
    x = stages_->forward(x);                                // [B, 64, 8, 8]
    x = flatten(adaptive_avg_pool2d(x, 1));                 // [B, 64]
    return fc_->forward(x);
  }

 private:
  std::shared_ptr<Conv2d> stem_;
  std::shared_ptr<BatchNorm2d> bn_;
  std::shared_ptr<Sequential> stages_;
  std::shared_ptr<Linear> fc_;
};

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
  examples::add_common_flags(app, flags);
  examples::add_checkpoint_flags(app, checkpoint_flags);
  app.add_option("--recipe", recipe, "resnet20 (the full schedule) or quick")
      ->capture_default_str()
      ->check(CLI::IsMember({"resnet20", "quick"}));
  app.add_option("--warmup-epochs", warmup_epochs, "Epochs of linear learning-rate warmup")
      ->capture_default_str();
  app.add_option("--weight-decay", weight_decay, "SGD weight decay")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // The recipe sets the number of epochs unless --epochs is given.
  if (app.count("--epochs") == 0) flags.epochs = recipe == "quick" ? 12 : 60;
  try {
    examples::apply_common_flags(flags);
    examples::Loaders data = examples::cifar10_loaders(flags);
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
