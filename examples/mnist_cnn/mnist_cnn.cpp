// mnist_cnn: the CNN of PyTorch's MNIST example (conv32 - conv64 - max-pool -
// dropout - fc128 - dropout - fc10), trained with SGD + momentum.
//
// What it teaches: dropout (on in training, off in evaluation: Module::train()
// and eval() switch it), and a network where the convolutions dominate the cost.
//
// Run:    datasets/fetch.sh mnist && ./build/examples/mnist_cnn --data data/mnist
// Expect: test accuracy >= 99.2% after 12 epochs; see README.md for the
//         measured figure and time.
#include <spdlog/spdlog.h>

#include "bridle.h"
#include "common/classifier.h"
#include "common/datasets.h"

using namespace bridle;

// images [B, 1, 28, 28] -> logits [B, 10]
class MnistCnn : public Module {
 public:
  explicit MnistCnn(uint64_t seed) : Module("MnistCnn") {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(1, 32, 3));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(32, 64, 3));
    dropout1_ = register_module("dropout1", std::make_shared<Dropout>(0.25f, seed + 1));
    fc1_ = register_module("fc1", std::make_shared<Linear>(64 * 12 * 12, 128));
    dropout2_ = register_module("dropout2", std::make_shared<Dropout>(0.5f, seed + 2));
    fc2_ = register_module("fc2", std::make_shared<Linear>(128, 10));
  }
  // The dropout layers' random generators, for checkpoints.
  std::map<std::string, Generator*> generators() {
    return {{"dropout1", &dropout1_->generator()}, {"dropout2", &dropout2_->generator()}};
  }
  Tensor forward(const Tensor& images) override {
    Tensor x = relu(conv1_->forward(images));     // [B, 32, 26, 26]
    x = max_pool2d(relu(conv2_->forward(x)), 2);  // [B, 64, 12, 12]
    x = dropout1_->forward(x);
    x = relu(fc1_->forward(flatten(x)));
    return fc2_->forward(dropout2_->forward(x));
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<Dropout> dropout1_, dropout2_;
  std::shared_ptr<Linear> fc1_, fc2_;
};

int main(int argc, char** argv) {
  CLI::App app{"Train the PyTorch-example CNN on MNIST"};
  examples::CommonFlags flags;
  flags.data_dir = "data/mnist";
  flags.epochs = 12;
  flags.batch_size = 64;
  flags.lr = 0.05f;
  examples::CheckpointFlags checkpoint_flags;
  examples::add_common_flags(app, flags);
  examples::add_checkpoint_flags(app, checkpoint_flags);
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);
    examples::Loaders data = examples::mnist_loaders(flags);
    MnistCnn model(flags.seed);
    spdlog::info("model: {} parameters\n{}", model.num_parameters(), model.str());
    SGD optimizer(model.parameters(), {.lr = flags.lr, .momentum = 0.9f});
    examples::ClassifierRun run{
        .example = "mnist_cnn",
        .model = &model,
        .optimizer = &optimizer,
        .train_loader = data.train.get(),
        .test_loader = data.test.get(),
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
