// mnist_mlp_epoch: seconds per training epoch of the MNIST MLP, bridle side.
//
// The model and loop match bench/mnist_mlp_epoch_torch.py line for line: a
// 784-512-512-10 ReLU MLP (Linear layers with bias), cross_entropy (mean), SGD
// lr 0.05 momentum 0.9, batches of 128 in order (no shuffling; the last batch is
// partial). The data is synthetic: 60000 seeded uniform [0, 1) images of MNIST's
// shape (784 floats) and uniform labels in [0, 10), so no download is needed and
// the time is the same as for the real MNIST (dense math does not look at values).
// Batches are row views of one tensor: the timing is the training step alone.
//
// Run:    ./build/bench/mnist_mlp_epoch --threads 2 --epochs 4
//         (BRIDLE_GEMM=openblas selects OpenBLAS over oneDNN for the matrix products)
//         (bench/run_mnist_mlp.sh runs this and the PyTorch twin and prints ratios)
// Prints: one JSON line, e.g.
//   {"bench":"mnist_mlp_epoch","framework":"bridle","threads":2,"batch_size":128,
//    "epoch_s":[...],"median_s":3.1,...}
// where epoch_s lists every epoch and median_s is the median without the first
// (warm-up) epoch; cpu_median_s is the same for the process's CPU time (all its
// threads), which a busy machine disturbs less than wall time.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench_util.h"
#include "bridle.h"

using namespace bridle;
using bridle::bench::median;

int main(int argc, char** argv) {
  CLI::App app{"One training epoch of the MNIST MLP on synthetic data (bridle)"};
  int threads = 1, epochs = 4, batch_size = 128;
  int64_t images = 60000;
  uint64_t seed = 0;
  app.add_option("--threads", threads, "Threads for bridle and OpenBLAS")->capture_default_str();
  app.add_option("--epochs", epochs, "Epochs to run; the first is a warm-up")
      ->capture_default_str()
      ->check(CLI::Range(2, 1000));
  app.add_option("--batch-size", batch_size, "Batch size")->capture_default_str();
  app.add_option("--images", images, "Synthetic training images")->capture_default_str();
  app.add_option("--seed", seed, "Seed for the data and the initial weights")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    set_num_threads(threads);
    manual_seed(seed);
    const int64_t kPixels = 28 * 28, kClasses = 10;
    Tensor x = rand({images, kPixels});
    Tensor y = zeros({images}, kInt64);
    int64_t* labels = y.data<int64_t>();
    for (int64_t i = 0; i < images; ++i)
      labels[i] = static_cast<int64_t>(default_generator().next_u64() % kClasses);

    Sequential model({std::make_shared<Linear>(kPixels, 512), std::make_shared<ReLU>(),
                      std::make_shared<Linear>(512, 512), std::make_shared<ReLU>(),
                      std::make_shared<Linear>(512, kClasses)});
    SGD optimizer(model.parameters(), {.lr = 0.05f, .momentum = 0.9f});

    std::vector<double> epoch_s, epoch_cpu_s;
    float last_loss = 0.0f;
    for (int epoch = 0; epoch < epochs; ++epoch) {
      auto start = std::chrono::steady_clock::now();
      std::clock_t cpu_start = std::clock();
      for (int64_t begin = 0; begin < images; begin += batch_size) {
        int64_t end = std::min(images, begin + batch_size);
        optimizer.zero_grad();
        Tensor loss = cross_entropy(model.forward(slice(x, begin, end)), slice(y, begin, end));
        loss.backward();
        optimizer.step();
        if (end == images) last_loss = loss.item();
      }
      epoch_s.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      epoch_cpu_s.push_back(static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC);
    }

    nlohmann::json record = {{"bench", "mnist_mlp_epoch"},
                             {"framework", "bridle"},
                             {"threads", threads},
                             {"batch_size", batch_size},
                             {"images", images},
                             {"epoch_s", epoch_s},
                             {"median_s", median(epoch_s, 1)},
                             {"cpu_median_s", median(epoch_cpu_s, 1)},
                             {"last_loss", last_loss},
                             {"gemm", gemm_backend_name(gemm_backend())},
                             {"threading", threading_info()}};
    std::printf("%s\n", record.dump().c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "mnist_mlp_epoch: %s\n", e.what());
    return 1;
  }
}
