// Lesson 5, onward: where to go from the four lessons, as commands you can run.
//
// What it teaches: nothing new by itself. It prints the path from here to the
// full examples (MNIST, CIFAR-10, calibration, softmax over 24,345 words), each
// with its command, what it shows and whether its data set is on this machine
// (datasets/fetch.sh fetches them), and the tools that work on any of them:
// --profile (time per op), --detect-anomaly (the first NaN) and --graph.
//
// Run:    ./build/examples/05_onward [--data-root data]
// Expect: a numbered list like
//           6. Train an MNIST classifier (98% in 5 epochs, about 15 s)
//              build/examples/mnist_mlp --data data/mnist        [data: ready]
//         and a JSON line; --smoke also checks that every example it names was
//         built next to it, and fails if one is missing.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "bridle.h"
#include "common/example_main.h"

using namespace bridle;
namespace fs = std::filesystem;

struct NextStep {
  std::string goal;     // what you will learn or see
  std::string example;  // the program, in build/examples
  std::string args;     // its flags
  std::string data;     // the data set directory under --data-root it needs, or ""
};

// The steps after the lessons, easy to hard. The softmax article's "actionable
// next steps" are all here: naive vs stable softmax (lesson 3), an MNIST
// classifier, measuring calibration, tuning the temperature, drawing
// temperatures, sigmoid and sparsemax, the cost of softmax, attention.
std::vector<NextStep> next_steps(const std::string& data_root) {
  return {
      {"Draw what the temperature does to softmax (tau = 0.5 ... 5, and its limits)", "temperature",
       "--out .", ""},
      {"Compare softmax with sparsemax and entmax (exact zeros), and see attention as "
       "softmax over keys",
       "softmax_relatives", "", ""},
      {"Sigmoid vs softmax when several labels are true at once", "multilabel", "", ""},
      {"Train an MNIST classifier (98% in 5 epochs, about 15 s), and draw its graph", "mnist_mlp",
       "--data " + data_root + "/mnist --graph mlp_graph.svg", "mnist"},
      {"Profile a training step: which op takes the time", "mnist_mlp",
       "--data " + data_root + "/mnist --epochs 1 --profile", "mnist"},
      {"Convolutions: LeNet-5 and a CNN on MNIST (99.3%)", "mnist_cnn",
       "--data " + data_root + "/mnist", "mnist"},
      {"Measure calibration and tune the temperature: ECE, reliability diagram, "
       "temperature scaling",
       "calibrate", "--data " + data_root + "/mnist --out calibration", "mnist"},
      {"A ResNet-20 on CIFAR-10 (83% in 10 epochs with --recipe quick)", "cifar10_resnet",
       "--data " + data_root + "/cifar10 --recipe quick", "cifar10"},
      {"Softmax over 24,345 words: full, hierarchical, sampled and adaptive softmax, and "
       "the share of the step the full softmax takes",
       "word_lm", "--data " + data_root + "/brown --output full,adaptive --profile", "brown"},
  };
}

int main(int argc, char** argv) {
  CLI::App app{"Where to go after the four lessons"};
  examples::CommonFlags flags;
  std::string data_root = "data";
  examples::add_common_flags(app, flags);
  app.add_option("--data-root", data_root, "Where datasets/fetch.sh puts the data sets")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);
    const fs::path examples_dir = fs::absolute(fs::path(argv[0])).parent_path();
    std::vector<NextStep> steps = next_steps(data_root);

    std::cout << "Lessons 1-4 done: a scalar autograd engine, backprop by hand, stable softmax,\n"
                 "your own layer and function. Next (run from the repository root):\n\n";
    int missing_programs = 0, ready = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      const NextStep& step = steps[i];
      const bool built = fs::exists(examples_dir / step.example);
      missing_programs += !built;
      std::string data_state = "no data needed";
      if (!step.data.empty())
        data_state = fs::exists(fs::path(data_root) / step.data)
                         ? "data: ready"
                         : "data: run datasets/fetch.sh " + step.data + " first";
      ready += step.data.empty() || data_state == "data: ready";
      std::cout << fmt::format("{:2}. {}\n    build/examples/{}{}{}\n    [{}{}]\n\n", i + 6,
                               step.goal, step.example, step.args.empty() ? "" : " ", step.args,
                               data_state, built ? "" : "; not built");
    }
    std::cout << "Any example also takes --profile (time and bytes per op), --detect-anomaly\n"
                 "(stop at the first op that makes a NaN or an infinity) and --help.\n"
                 "To add your own op with its kernels and tests: docs/extending.md.\n";
    if (flags.smoke && missing_programs > 0)
      spdlog::error("{} of the programs above are not built next to this one", missing_programs);
    examples::report_metrics(flags, {{"example", "05_onward"},
                                     {"next_steps", steps.size()},
                                     {"ready_to_run", ready},
                                     {"missing_programs", missing_programs}});
    return flags.smoke && missing_programs > 0 ? 1 : 0;
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
