// softmax_kernels: time and memory throughput of softmax, log_softmax and the
// fused cross_entropy, forward and backward, bridle side.
//
// For each [rows x classes] float32 shape it times, one call per sample:
//   softmax / log_softmax  forward  y = f(x, 1)               reads x, writes y
//                          backward y.backward(g)             reads y and g, writes dx
//   cross_entropy          forward  loss = ce(x, targets)     reads x
//                          backward loss.backward()           reads x, writes dx
//                          fwd+bwd  both in one sample
// and reports the median, the effective bandwidth (the bytes in the right column,
// which is the least any implementation must move, divided by the median) and the
// copy bandwidth of this machine measured in the same run on a buffer of the same
// size with the same threads (dst[i] = src[i]: one read and one write per float).
// The backward samples start without a gradient on x, as after zero_grad(set_to_none),
// PyTorch's default; the forward that feeds them is not timed. Mean reduction,
// int64 targets. bench/softmax_kernels_torch.py is the PyTorch twin; the driver
// bench/run_softmax.sh runs both and prints the comparison table.
//
// Run:    ./build/bench/softmax_kernels --threads 2
// Prints: one JSON line per (shape, op, pass), e.g.
//   {"bench":"softmax_kernels","framework":"bridle","shape":[64,50000],"op":"softmax",
//    "pass":"forward","threads":2,"median_s":...,"gb_per_s":...,"copy_gb_per_s":...}
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "bridle.h"

using namespace bridle;
using bridle::bench::median;

namespace {

using Clock = std::chrono::steady_clock;

// Samples of timed(), each after an untimed setup(), until min_seconds of samples
// and at least min_samples have run (after warmup untimed rounds).
std::vector<double> sample(const std::function<void()>& setup, const std::function<void()>& timed,
                           double min_seconds, int min_samples) {
  for (int i = 0; i < 3; ++i) {
    setup();
    timed();
  }
  std::vector<double> samples;
  double total = 0.0;
  while (total < min_seconds || static_cast<int>(samples.size()) < min_samples) {
    setup();
    auto start = Clock::now();
    timed();
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    samples.push_back(s);
    total += s;
    if (samples.size() >= 20000) break;
  }
  return samples;
}

// dst = src over n floats, split across the OpenMP threads as the kernels split rows.
void copy_floats(float* dst, const float* src, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"softmax, log_softmax and cross_entropy: time and bandwidth (bridle)"};
  int threads = 1, min_samples = 30;
  double min_seconds = 0.3;
  std::vector<std::string> shapes = {"64x50000", "4096x1000", "256x10"};
  app.add_option("--threads", threads, "Threads")->capture_default_str();
  app.add_option("--shapes", shapes, "Shapes ROWSxCLASSES")->capture_default_str();
  app.add_option("--min-seconds", min_seconds, "Least total timed seconds per case")
      ->capture_default_str();
  app.add_option("--min-samples", min_samples, "Least samples per case")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    set_num_threads(threads);
    manual_seed(0);
    for (const std::string& spec : shapes) {
      const auto x_pos = spec.find('x');
      BRIDLE_CHECK(x_pos != std::string::npos, "--shapes: expected ROWSxCLASSES, got '{}'", spec);
      const int64_t B = std::stoll(spec.substr(0, x_pos)), C = std::stoll(spec.substr(x_pos + 1));
      const double n_bytes = static_cast<double>(B * C) * sizeof(float);

      Tensor src = randn({B, C}), dst = Tensor::empty({B, C});
      const double copy_s =
          median(sample([] {}, [&] { copy_floats(dst.data<float>(), src.data<float>(), B * C); },
                        min_seconds, min_samples));
      const double copy_gb_per_s = 2.0 * n_bytes / copy_s / 1e9;

      Tensor x = randn({B, C}) * 3.0f;  // a spread like trained logits
      Tensor g = randn({B, C});
      Tensor targets = Tensor::empty({B}, kInt64);
      for (int64_t b = 0; b < B; ++b)
        targets.data<int64_t>()[b] = static_cast<int64_t>(default_generator().next_u64() % C);

      auto report = [&](const char* op, const char* pass, double bytes_per_element_pass,
                        const std::vector<double>& samples) {
        const double s = median(samples);
        nlohmann::json line = {{"bench", "softmax_kernels"},
                               {"framework", "bridle"},
                               {"shape", {B, C}},
                               {"op", op},
                               {"pass", pass},
                               {"threads", threads},
                               {"median_s", s},
                               {"samples", samples.size()},
                               {"gb_per_s", bytes_per_element_pass * n_bytes / s / 1e9},
                               {"copy_gb_per_s", copy_gb_per_s}};
        std::printf("%s\n", line.dump().c_str());
        std::fflush(stdout);
      };

      Tensor x_grad = x.clone().set_requires_grad(true);
      for (bool log : {false, true}) {
        const char* op = log ? "log_softmax" : "softmax";
        auto f = [log](const Tensor& t) { return log ? log_softmax(t, 1) : softmax(t, 1); };
        Tensor y;
        report(op, "forward", 2, sample([] {}, [&] { y = f(x); }, min_seconds, min_samples));
        report(op, "backward", 3,
               sample(
                   [&] {
                     x_grad.set_grad(Tensor());
                     y = f(x_grad);
                   },
                   [&] { y.backward(g); }, min_seconds, min_samples));
      }
      Tensor loss;
      report("cross_entropy", "forward", 1,
             sample([] {}, [&] { loss = cross_entropy(x, targets); }, min_seconds, min_samples));
      report("cross_entropy", "backward", 2,
             sample(
                 [&] {
                   x_grad.set_grad(Tensor());
                   loss = cross_entropy(x_grad, targets);
                 },
                 [&] { loss.backward(); }, min_seconds, min_samples));
      report("cross_entropy", "forward+backward", 3,
             sample([&] { x_grad.set_grad(Tensor()); },
                    [&] { cross_entropy(x_grad, targets).backward(); }, min_seconds, min_samples));
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "softmax_kernels: %s\n", e.what());
    return 1;
  }
}
