// What every example shares: the standard flags and the final JSON metrics line.
//
// Flags (where they apply): --epochs, --batch-size, --lr, --seed, --data DIR,
// --threads N, --device cpu|cuda, --smoke (a few batches, for CI),
// --metrics-out FILE, --profile (a table of time per op), --detect-anomaly
// (stop at the first op that makes a NaN or an infinity), --help. At the end an example prints one
// JSON object with its final figures and writes the same object to --metrics-out when given.
// The data-parallel examples (mnist_mlp and the classifiers) add --distributed
// and its options (add_distributed_flags; common/distributed.h).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
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
  // Whether the example moves its model and batches to --device: the others
  // refuse --device cuda rather than train on the cpu while told otherwise.
  bool takes_device = false;
  bool smoke = false;
  std::string metrics_out;
  bool profile = false;
  bool detect_anomaly = false;
  // Data-parallel training under mpirun (common/distributed.h).
  bool distributed = false;
  double collective_timeout_seconds = 300;
  double bucket_mb = 25;
  bool sync_batch_norm = false;
};

// Adds the standard flags to app, with the example's own defaults in flags.
void add_common_flags(CLI::App& app, CommonFlags& flags);

// --distributed, --collective-timeout, --bucket-mb and --sync-batch-norm, for
// the examples whose training loop is data-parallel (common/distributed.h).
void add_distributed_flags(CLI::App& app, CommonFlags& flags);

// Only --profile and --detect-anomaly, for examples that pick their other flags
// themselves (add_common_flags includes these).
void add_inspection_flags(CLI::App& app, CommonFlags& flags);

// The device of a model's parameters (the cpu for a model without any): where
// its inputs must go.
Device model_device(const Module& model);

// Applies --threads and --seed and checks --device; logs the setup.
void apply_common_flags(const CommonFlags& flags);

// Prints metrics as one JSON line on stdout and writes it to --metrics-out. With
// --profile and no StepProfiler, it first prints the profile of the whole run.
void report_metrics(const CommonFlags& flags, const nlohmann::json& metrics);

// Draws the graph behind root, labelled with names (a model's named_parameters())
// and with the gradient norms a backward left (autograd/graphviz.h): a picture
// for .svg, .png or .pdf when Graphviz is installed, the DOT source for .dot.
void save_graph(const Tensor& root, const std::string& path,
                const std::vector<std::pair<std::string, Tensor>>& names = {});

// --profile for a training loop (autograd/profiler.h): each step runs inside
// `auto profiled = step_profiler.step();`, and the loop wraps its optimizer
// update in a ProfileRegion. Steps are profiled only inside step(): the
// evaluation and data loading between them are not counted. The first
// `warmup` steps are left out (first-touch allocations, cold caches); after
// `steps` more, the table is printed once. A loop that ends sooner prints what
// it has when the StepProfiler goes out of scope. Without --profile, step()
// does nothing.
class StepProfiler {
 public:
  StepProfiler(const CommonFlags& flags, std::string title, int warmup = 2, int steps = 10);
  ~StepProfiler();
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  class Step {
   public:
    explicit Step(StepProfiler* profiler);
    ~Step();
    Step(const Step&) = delete;
    Step& operator=(const Step&) = delete;

   private:
    StepProfiler* profiler_;  // null: not profiling this step
    std::optional<ProfileStep> step_;
  };
  Step step() { return Step(enabled_ && !printed_ ? this : nullptr); }

 private:
  void print();
  bool enabled_;
  std::string title_;
  int warmup_, steps_, seen_ = 0;
  bool printed_ = false;
};

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
