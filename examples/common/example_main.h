// What every example shares: the standard flags and the final JSON metrics line.
//
// Flags (where they apply): --epochs, --batch-size, --lr, --seed, --data DIR,
// --threads N, --device cpu|cuda, --smoke (a few batches, for CI),
// --metrics-out FILE, --help. At the end an example prints one JSON object with
// its final figures and writes the same object to --metrics-out when given.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "bridle.h"

namespace bridle::examples {

struct CommonFlags {
  int epochs = 5;
  int batch_size = 128;
  float lr = 0.05f;
  uint64_t seed = 0;
  std::string data_dir;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";
  bool smoke = false;
  std::string metrics_out;
};

// Adds the standard flags to app, with the example's own defaults in flags.
void add_common_flags(CLI::App& app, CommonFlags& flags);

// Applies --threads and --seed and checks --device; logs the setup.
void apply_common_flags(const CommonFlags& flags);

// Prints metrics as one JSON line on stdout and writes it to --metrics-out.
void report_metrics(const CommonFlags& flags, const nlohmann::json& metrics);

}  // namespace bridle::examples
