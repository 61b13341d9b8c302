// What every example shares: the standard flags and the final JSON metrics line.
//
// Flags (where they apply): --epochs, --batch-size, --lr, --seed, --data DIR,
// --threads N, --device cpu|cuda, --smoke (a few batches, for CI),
// --metrics-out FILE, --help. At the end an example prints one JSON object with
// its final figures and writes the same object to --metrics-out when given.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
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

// A directory made by mkdtemp and removed, with what is in it, at the end of scope
// (for --smoke runs that write files).
class TemporaryDir {
 public:
  TemporaryDir() = default;
  TemporaryDir(const TemporaryDir&) = delete;
  TemporaryDir& operator=(const TemporaryDir&) = delete;
  ~TemporaryDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  // Makes the directory from a mkdtemp template ("name_XXXXXX") in the system's
  // temporary directory and returns its path.
  const std::filesystem::path& make(const std::string& name_template) {
    std::string path = std::filesystem::temp_directory_path() / name_template;
    BRIDLE_CHECK(mkdtemp(path.data()) != nullptr, "cannot make a temporary directory '{}'", path);
    return path_ = path;
  }
  // Empty until make().
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace bridle::examples
