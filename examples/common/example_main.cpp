// Shared example flags and metrics output; see example_main.h.
#include "common/example_main.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "common/distributed.h"
#include "io/atomic_file.h"

namespace bridle::examples {

void add_common_flags(CLI::App& app, CommonFlags& flags) {
  app.add_option("--epochs", flags.epochs, "Training epochs")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", flags.batch_size, "Examples per batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", flags.lr, "Learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", flags.seed, "Seed for initialization, shuffling and augmentation")
      ->capture_default_str();
  app.add_option("--data", flags.data_dir, "Data directory")->capture_default_str();
  app.add_option("--threads", flags.threads, "Threads for every kernel (0: all cores)")
      ->capture_default_str();
  app.add_option("--device", flags.device, "cpu or cuda")->capture_default_str();
  app.add_flag("--smoke", flags.smoke, "Run a few batches only (for CI)");
  app.add_option("--metrics-out", flags.metrics_out,
                 "Also write the final JSON metrics to this file");
  add_inspection_flags(app, flags);
}

void add_distributed_flags(CLI::App& app, CommonFlags& flags) {
  app.add_flag(
      "--distributed", flags.distributed,
      "Data-parallel training over MPI: launch with mpirun -np N (--batch-size is per rank)");
  app.add_option("--collective-timeout", flags.collective_timeout_seconds,
                 "With --distributed: seconds a rank waits for the others before the job ends")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--bucket-mb", flags.bucket_mb,
                 "With --distributed: megabytes of gradients per all-reduce")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--sync-batch-norm", flags.sync_batch_norm,
               "With --distributed: batch norm statistics over the global batch, not each rank's");
}

void add_inspection_flags(CLI::App& app, CommonFlags& flags) {
  app.add_flag("--profile", flags.profile,
               "Print a table of wall time and bytes moved per op (forward and backward)");
  app.add_flag("--detect-anomaly", flags.detect_anomaly,
               "Stop at the first op whose output or gradient has a NaN or an infinity");
}

Device model_device(const Module& model) {
  std::vector<Tensor> params = model.parameters();
  return params.empty() ? Device::cpu() : params.front().device();
}

void apply_common_flags(const CommonFlags& flags) {
  init_distributed(flags);  // first: ranks other than 0 log warnings only
  Device device = Device::parse(flags.device);
  BRIDLE_CHECK(device.is_cpu() || flags.takes_device,
               "--device {}: this example runs on the cpu only (mnist_mlp, mnist_lenet, "
               "mnist_cnn, cifar10_resnet and word_lm take --device cuda)",
               flags.device);
  BRIDLE_CHECK(device.is_cpu() || cuda_is_available(),
               "--device {}: this build has no CUDA backend (or no GPU is present)", flags.device);
  set_num_threads(flags.threads);
  manual_seed(flags.seed);
  if (flags.profile) {
    set_profiling(true);
    reset_profile();
  }
  if (flags.detect_anomaly) {
    set_detect_anomaly(true);
    spdlog::info("anomaly detection on: every op's output and gradient is checked (slow)");
  }
  spdlog::info("threads: {}; gemm: {}; seed {}", threading_info(),
               gemm_backend_name(gemm_backend()), flags.seed);
}

void report_metrics(const CommonFlags& flags, const nlohmann::json& metrics) {
  if (!is_main_rank()) return;         // rank 0 speaks for the job
  if (flags.profile && profiling()) {  // no StepProfiler printed it: the whole run
    set_profiling(false);
    spdlog::info("profile of the whole run:\n{}", profile_report().table());
  }
  std::string line = metrics.dump();
  std::cout << line << std::endl;
  if (flags.metrics_out.empty()) return;
  write_file_atomically(flags.metrics_out, [&](const std::string& temp) {
    std::ofstream out(temp);
    out << line << "\n";
    BRIDLE_CHECK(out.good(), "--metrics-out: writing '{}' failed", temp);
  });
}

void save_graph(const Tensor& root, const std::string& path,
                const std::vector<std::pair<std::string, Tensor>>& names) {
  DotOptions options{.gradient_norms = true, .names = names};
  if (std::filesystem::path(path).extension() == ".dot") {
    write_dot(root, path, options);
    spdlog::info("graph: {} (render it with: dot -Tsvg {} -o graph.svg)", path, path);
  } else if (render_graph(root, path, options)) {
    spdlog::info("graph: {}", path);
  }
}

StepProfiler::StepProfiler(const CommonFlags& flags, std::string title, int warmup, int steps)
    : enabled_(flags.profile), title_(std::move(title)), warmup_(warmup), steps_(steps) {
  if (enabled_) set_profiling(false);  // from now on, only inside steps
}

StepProfiler::~StepProfiler() {
  if (enabled_ && !printed_ && seen_ > 0) print();
}

void StepProfiler::print() {
  printed_ = true;
  const int counted = seen_ > warmup_ ? seen_ - warmup_ : seen_;
  spdlog::info("profile of {}: {} training steps{}\n{}", title_, counted,
               seen_ > warmup_ ? fmt::format(" after {} of warm-up", warmup_) : "",
               profile_report().table());
}

StepProfiler::Step::Step(StepProfiler* profiler) : profiler_(profiler) {
  if (profiler_ == nullptr) return;
  if (profiler_->seen_ == 0 || profiler_->seen_ == profiler_->warmup_) reset_profile();
  set_profiling(true);
  step_.emplace();
}

StepProfiler::Step::~Step() {
  if (profiler_ == nullptr) return;
  step_.reset();  // ends the step before profiling stops
  set_profiling(false);
  if (++profiler_->seen_ == profiler_->warmup_ + profiler_->steps_) profiler_->print();
}

}  // namespace bridle::examples
