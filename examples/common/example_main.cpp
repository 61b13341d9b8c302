// Shared example flags and metrics output; see example_main.h.
#include "common/example_main.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

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
}

void apply_common_flags(const CommonFlags& flags) {
  Device device = Device::parse(flags.device);
  BRIDLE_CHECK(device.is_cpu() || cuda_is_available(),
               "--device {}: this build has no CUDA backend (or no GPU is present)", flags.device);
  set_num_threads(flags.threads);
  manual_seed(flags.seed);
  spdlog::info("threads: {}; gemm: {}; seed {}", threading_info(),
               gemm_backend_name(gemm_backend()), flags.seed);
}

void report_metrics(const CommonFlags& flags, const nlohmann::json& metrics) {
  std::string line = metrics.dump();
  std::cout << line << std::endl;
  if (flags.metrics_out.empty()) return;
  // Write-then-rename, so a reader never sees a half-written file.
  std::string tmp = flags.metrics_out + ".tmp";
  {
    std::ofstream out(tmp);
    BRIDLE_CHECK(out.good(), "--metrics-out: cannot write '{}'", tmp);
    out << line << "\n";
    BRIDLE_CHECK(out.good(), "--metrics-out: writing '{}' failed", tmp);
  }
  std::filesystem::rename(tmp, flags.metrics_out);
}

}  // namespace bridle::examples
