// The example models (examples/models) trained on the GPU against the same
// training on the CPU: MnistCnn (conv, max pooling, dropout, linear) and a CIFAR
// ResNet (conv, batch norm, the residual add, global average pooling), a few SGD
// steps each, the recipe of their examples. Every op they call on their device
// must have a CUDA kernel for these to run at all. Each test skips (and is
// reported skipped) without a GPU.
//
// Tolerances: cuDNN and cuBLAS sum in another order than oneDNN and OpenBLAS
// (FP32, no TF32), and a few steps compound those ulps through the weights, so
// the figures are looser than the single ops' (test_cuda_cudnn.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../examples/models/cifar_resnet.h"
#include "../../examples/models/mnist_cnn.h"
#include "../test_util.h"
#include "bridle.h"
#include "cuda_test_util.h"

namespace bridle {
namespace {

using testing::expect_matches_cpu;

constexpr float kAtol = 1e-3f, kRtol = 1e-2f;

// Three SGD steps (nesterov momentum, weight decay) of model on `device` over
// fixed images and labels; returns the losses.
std::vector<float> train_steps(Module& model, Device device, const Tensor& images,
                               const Tensor& labels) {
  model.to(device);
  model.train();
  SGD sgd(model.parameters(),
          {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true});
  std::vector<float> losses;
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    Tensor loss = cross_entropy(model.forward(images.to(device)), labels.to(device));
    loss.backward();
    sgd.step();
    losses.push_back(loss.item());
  }
  return losses;
}

// Trains cpu_model on the CPU and gpu_model (built the same, same seed) on the
// GPU, then compares the losses, every parameter and every buffer (batch norm's
// running statistics), and the evaluation-mode logits.
void expect_same_training(Module& cpu_model, Module& gpu_model, const Tensor& images,
                          const Tensor& labels) {
  const std::vector<float> cpu_losses = train_steps(cpu_model, Device::cpu(), images, labels);
  const std::vector<float> gpu_losses = train_steps(gpu_model, Device::cuda(), images, labels);
  for (size_t i = 0; i < cpu_losses.size(); ++i)
    EXPECT_NEAR(gpu_losses[i], cpu_losses[i], 1e-3f) << "loss at step " << i;
  auto compare = [](const auto& gpu, const auto& cpu, const char* kind) {
    ASSERT_EQ(gpu.size(), cpu.size());
    for (size_t k = 0; k < cpu.size(); ++k) {
      if (!cpu[k].second.is_float()) continue;  // a step count
      expect_matches_cpu(gpu[k].second.detach(), cpu[k].second.detach(),
                         std::string(kind) + " " + cpu[k].first + " after 3 steps", kAtol, kRtol);
    }
  };
  compare(gpu_model.named_parameters(), cpu_model.named_parameters(), "parameter");
  compare(gpu_model.named_buffers(), cpu_model.named_buffers(), "buffer");
  NoGradGuard no_grad;
  cpu_model.eval();
  gpu_model.eval();
  expect_matches_cpu(gpu_model.forward(images.cuda()), cpu_model.forward(images),
                     "eval logits after 3 steps", kAtol, kRtol);
}

Tensor labels_for(int64_t batch) {
  std::vector<int64_t> labels(batch);
  for (int64_t i = 0; i < batch; ++i) labels[i] = i % 10;
  return from_vector(labels);
}

TEST(CudaModels, MnistCnnTrainsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(11);
  Tensor images = rand({8, 1, 28, 28}, gen);
  // The same seed: the same initial weights and the same dropout masks (drawn on
  // the host from each model's own generators) on both devices.
  manual_seed(5);
  models::MnistCnn cpu_model(5);
  manual_seed(5);
  models::MnistCnn gpu_model(5);
  expect_same_training(cpu_model, gpu_model, images, labels_for(8));
}

TEST(CudaModels, CifarResNetTrainsAsOnTheCpu) {
  BRIDLE_REQUIRE_CUDA();
  Generator gen(12);
  Tensor images = randn({8, 3, 32, 32}, gen);
  manual_seed(6);
  models::CifarResNet cpu_model(1);  // depth 8: every kind of block, shortcut convs included
  manual_seed(6);
  models::CifarResNet gpu_model(1);
  expect_same_training(cpu_model, gpu_model, images, labels_for(8));
}

}  // namespace
}  // namespace bridle
