// softmax_kernels_cuda: the softmax family's CUDA kernels on a [rows x n] batch
// against a device-to-device copy of the same bytes, measured in the same run.
//
// Run:    build-cuda/bench/softmax_kernels_cuda --rows 4096 --n 50000
//         (bench/gpu_check.sh runs it; softmax_kernels_torch_cuda.py is PyTorch's side)
// Prints: one JSON line per kernel: median ms over --iters launches and GB/s,
//         counting each kernel's compulsory traffic (what it must read and write):
//         softmax / log_softmax forward 2 x 4 bytes per element (read x, write y),
//         backward 3 x 4 (read y and dy, write dx), cross-entropy forward 4 (read
//         the logits), backward 2 x 4 (read the logits, write their gradient),
//         the copy 2 x 4. A kernel near the copy's GB/s is as fast as memory allows.
//         The op-level rows (softmax op, cross_entropy op) add what the ops do
//         around the kernels: the error checks that wait for the GPU.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "bridle.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"

using namespace bridle;

namespace {

// Median milliseconds of fn over iters runs (after warm-ups), each run ended by
// a stream synchronization so the GPU's time is what is measured.
double median_ms(int iters, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  cuda::synchronize();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CUDA softmax-family kernels vs a device-to-device copy"};
  int64_t rows = 4096, n = 50000;
  int iters = 20;
  app.add_option("--rows", rows, "Rows (batch)")->capture_default_str();
  app.add_option("--n", n, "Row length (classes)")->capture_default_str();
  app.add_option("--iters", iters, "Timed launches per kernel")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    BRIDLE_CHECK(cuda_is_available(), "softmax_kernels_cuda: no CUDA device (or no CUDA backend)");
    const Device gpu = Device::cuda();
    cuda::DeviceGuard guard(gpu);
    const double elements = static_cast<double>(rows) * n;
    Tensor x = (randn({rows, n}) * 3.0f).to(gpu);
    Tensor y = Tensor::empty({rows, n}, gpu), dy = randn({rows, n}).to(gpu);
    Tensor dx = Tensor::empty({rows, n}, gpu), copy = Tensor::empty({rows, n}, gpu);
    Tensor first_bad = full({}, static_cast<double>(rows), TensorOptions(kInt64).with_device(gpu));
    auto* bad = reinterpret_cast<unsigned long long*>(first_bad.data<int64_t>());
    std::vector<int64_t> labels(rows);
    for (int64_t i = 0; i < rows; ++i) labels[i] = (i * 7919) % n;
    Tensor targets = from_vector(labels).to(gpu);
    Tensor lse = Tensor::empty({rows}, gpu), row_loss = Tensor::empty({rows}, gpu);
    Tensor loss_grad = scalar(1.0f).to(gpu);

    auto report = [&](const char* kernel, double ms, double bytes_per_element, double copy_ms) {
      nlohmann::json line = {{"bench", "softmax_kernels_cuda"},
                             {"kernel", kernel},
                             {"rows", rows},
                             {"n", n},
                             {"median_ms", ms},
                             {"gb_per_s", bytes_per_element * elements / (ms * 1e6)}};
      if (copy_ms > 0) line["vs_copy"] = copy_ms / ms * (bytes_per_element / 8.0);
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    };

    const size_t bytes = static_cast<size_t>(elements) * sizeof(float);
    const double copy_ms = median_ms(
        iters, [&] { cuda::copy_bytes(copy.data<float>(), gpu, x.data<float>(), gpu, bytes); });
    report("device_to_device_copy", copy_ms, 8, 0);
    report("softmax_forward",
           median_ms(iters,
                     [&] {
                       cuda::softmax_forward(y.data<float>(), x.data<float>(), rows, n, 1, 1.0f,
                                             false, bad);
                     }),
           8, copy_ms);
    report("log_softmax_forward",
           median_ms(iters,
                     [&] {
                       cuda::softmax_forward(y.data<float>(), x.data<float>(), rows, n, 1, 1.0f,
                                             true, bad);
                     }),
           8, copy_ms);
    cuda::softmax_forward(y.data<float>(), x.data<float>(), rows, n, 1, 1.0f, false, bad);
    report("softmax_backward",
           median_ms(iters,
                     [&] {
                       cuda::softmax_backward(dx.data<float>(), y.data<float>(), dy.data<float>(),
                                              rows, n, 1, 1.0f, false, false);
                     }),
           12, copy_ms);
    report("cross_entropy_forward",
           median_ms(iters,
                     [&] {
                       cuda::cross_entropy_forward(row_loss.data<float>(), lse.data<float>(),
                                                   x.data<float>(), targets.data<int64_t>(),
                                                   nullptr, rows, n, -100, 0.0f);
                     }),
           4, copy_ms);
    report("cross_entropy_backward",
           median_ms(iters,
                     [&] {
                       cuda::cross_entropy_backward(
                           dx.data<float>(), x.data<float>(), lse.data<float>(),
                           targets.data<int64_t>(), nullptr, static_cast<float>(n),
                           loss_grad.data<float>(), 1.0f / rows, false, rows, n, -100, 0.0f, false);
                     }),
           8, copy_ms);
    // The ops as a training step calls them (their checks read results back).
    report("softmax_op_forward", median_ms(iters, [&] { softmax(x, 1); }), 8, copy_ms);
    Tensor logits = x.detach().set_requires_grad();
    report("cross_entropy_op_forward_backward",
           median_ms(iters,
                     [&] {
                       logits.zero_grad(true);
                       cross_entropy(logits, targets).backward();
                     }),
           12, copy_ms);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
