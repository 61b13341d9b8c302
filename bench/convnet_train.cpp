// convnet_train: training images per second of the convolutional examples'
// networks, bridle side.
//
// The models are the examples' own (examples/models/): LeNet-5 and the MNIST CNN
// on 1x28x28 images, ResNet-20 on 3x32x32. The loop matches
// bench/convnet_train_torch.py line for line: zero_grad, forward in training mode,
// cross_entropy (mean), backward, SGD step (momentum 0.9; ResNet-20 also nesterov
// and weight decay 5e-4, as in its example). The data is synthetic, seeded normal
// images and uniform labels: the time of dense math does not depend on values, so
// no download is needed. One batch is reused, so the timing is the step alone.
//
// Run:    ./build/bench/convnet_train --model resnet20 --threads 2
//         (bench/run_convnets.sh runs this and the PyTorch twin side by side)
// Prints: one JSON line with step_s (every timed step), median_step_s,
//   images_per_s = batch / median_step_s and gflops = the achieved rate, counting
//   a training step as 3 forward passes (forward, backward data, backward weights)
//   of 2 flops per multiply-add of the convolutions and linear layers.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench_util.h"
#include "bridle.h"
#include "models/cifar_resnet.h"
#include "models/lenet5.h"
#include "models/mnist_cnn.h"

using namespace bridle;
using bridle::bench::median;

namespace {

// Multiply-adds of one forward pass for one image: per layer, output elements x
// the length of each dot product (C_in/groups x KH x KW for a convolution).
int64_t conv_macs(int64_t in, int64_t out, int64_t k, int64_t out_hw) {
  return out * out_hw * out_hw * in * k * k;
}

int64_t forward_macs(const std::string& model) {
  if (model == "lenet5")
    return conv_macs(1, 6, 5, 28) + conv_macs(6, 16, 5, 10) + 400 * 120 + 120 * 84 + 84 * 10;
  if (model == "mnist_cnn")
    return conv_macs(1, 32, 3, 26) + conv_macs(32, 64, 3, 24) + 9216 * 128 + 128 * 10;
  // ResNet-20: stem, then per stage 6 3x3 convs (the first strided in stages
  // 2 and 3, which also have a 1x1 shortcut), then fc.
  int64_t macs = conv_macs(3, 16, 3, 32) + 64 * 10;
  int64_t in = 16, hw = 32;
  for (int64_t width : {16, 32, 64}) {
    if (width != in) {
      hw /= 2;
      macs += conv_macs(in, width, 1, hw);
    }
    macs += conv_macs(in, width, 3, hw) + 5 * conv_macs(width, width, 3, hw);
    in = width;
  }
  return macs;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Training throughput of LeNet-5, the MNIST CNN and ResNet-20 (bridle)"};
  std::string model_name = "resnet20";
  int threads = 1, batch_size = 0, steps = 0, warmup = 5;
  uint64_t seed = 0;
  app.add_option("--model", model_name, "lenet5, mnist_cnn or resnet20")
      ->capture_default_str()
      ->check(CLI::IsMember({"lenet5", "mnist_cnn", "resnet20"}));
  app.add_option("--threads", threads, "Threads")->capture_default_str();
  app.add_option("--batch-size", batch_size, "Batch size (default: 64 for the MNIST models, 128)");
  app.add_option("--steps", steps, "Timed steps (default: about 10 s of work)");
  app.add_option("--warmup", warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--seed", seed, "Seed for the data and the initial weights")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    set_num_threads(threads);
    manual_seed(seed);
    const bool cifar = model_name == "resnet20";
    if (batch_size == 0) batch_size = cifar ? 128 : 64;
    if (steps == 0) steps = model_name == "lenet5" ? 300 : cifar ? 30 : 60;
    std::shared_ptr<Module> model;
    SGDOptions options{.lr = 0.05f, .momentum = 0.9f};
    if (model_name == "lenet5") model = std::make_shared<models::LeNet5>();
    if (model_name == "mnist_cnn") model = std::make_shared<models::MnistCnn>(seed);
    if (cifar) {
      model = std::make_shared<models::CifarResNet>(3);
      options = {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true};
    }
    model->train();
    SGD optimizer(model->parameters(), options);
    Tensor images = cifar ? randn({batch_size, 3, 32, 32}) : randn({batch_size, 1, 28, 28});
    Tensor labels = zeros({batch_size}, kInt64);
    for (int64_t i = 0; i < batch_size; ++i)
      labels.data<int64_t>()[i] = static_cast<int64_t>(default_generator().next_u64() % 10);

    std::vector<double> step_s;
    float last_loss = 0.0f;
    for (int step = 0; step < warmup + steps; ++step) {
      auto start = std::chrono::steady_clock::now();
      optimizer.zero_grad();
      Tensor loss = cross_entropy(model->forward(images), labels);
      loss.backward();
      optimizer.step();
      last_loss = loss.item();
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (step >= warmup) step_s.push_back(seconds);
    }
    const double median_s = median(step_s);
    const double train_flops = 3.0 * 2.0 * static_cast<double>(forward_macs(model_name));
    nlohmann::json record = {{"bench", "convnet_train"},
                             {"framework", "bridle"},
                             {"model", model_name},
                             {"threads", threads},
                             {"batch_size", batch_size},
                             {"step_s", step_s},
                             {"median_step_s", median_s},
                             {"images_per_s", batch_size / median_s},
                             {"gflops", train_flops * batch_size / median_s / 1e9},
                             {"last_loss", last_loss},
                             {"threading", threading_info()}};
    std::printf("%s\n", record.dump().c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "convnet_train: %s\n", e.what());
    return 1;
  }
}
