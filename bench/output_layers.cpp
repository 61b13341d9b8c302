// output_layers: one training step's forward + backward through each large-
// vocabulary output layer, bridle side.
//
// Hidden states h [B, d] (a leaf that wants its gradient, as in a model) and
// Zipfian targets [B] over V classes (class c drawn with probability proportional
// to 1 / (c + 1), the shape of word frequencies; ids sorted by frequency as a
// vocabulary is). For each layer (lib/nn) it times loss = layer.loss(h, y);
// loss.backward(), the gradients cleared (set to none) before each sample:
//   full          Linear(d, V) + fused cross_entropy
//   hierarchical  Huffman-tree hierarchical softmax built from the counts
//   class         two-level class-based softmax, sqrt(V) frequency-binned clusters
//   sampled       sampled softmax, --num-sampled log-uniform samples (unique)
//   nce           NCE with the same samples
//   adaptive      AdaptiveLogSoftmaxWithLoss, --cutoffs, div_value 4
// bench/output_layers_torch.py times PyTorch's Linear + cross_entropy,
// AdaptiveLogSoftmaxWithLoss and a sampled softmax written from torch ops on the
// same shapes; bench/run_output_layers.sh prints the comparison.
//
// Run:    ./build/bench/output_layers --threads 2
// Prints: one JSON line per layer, e.g.
//   {"bench":"output_layers","framework":"bridle","layer":"full","batch":256,
//    "hidden":512,"classes":50000,"threads":2,"median_s":...}
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
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

class FullSoftmax : public Module {
 public:
  FullSoftmax(int64_t hidden, int64_t classes) {
    linear = register_module("linear", std::make_shared<Linear>(hidden, classes));
  }
  Tensor loss(const Tensor& h, const Tensor& y) { return cross_entropy(linear->forward(h), y); }
  std::shared_ptr<Linear> linear;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Large-vocabulary output layers: forward + backward time (bridle)"};
  int threads = 1, min_samples = 10;
  int64_t batch = 256, hidden = 512, classes = 50000, num_sampled = 1024;
  std::vector<int64_t> cutoffs = {2000, 10000};
  std::vector<std::string> layers = {"full", "hierarchical", "class", "sampled", "nce", "adaptive"};
  double min_seconds = 1.0;
  app.add_option("--threads", threads, "Threads")->capture_default_str();
  app.add_option("--batch", batch, "Rows per step")->capture_default_str();
  app.add_option("--hidden", hidden, "Hidden size d")->capture_default_str();
  app.add_option("--classes", classes, "Vocabulary size V")->capture_default_str();
  app.add_option("--num-sampled", num_sampled, "Samples (sampled, nce)")->capture_default_str();
  app.add_option("--cutoffs", cutoffs, "Adaptive softmax cutoffs")->capture_default_str();
  app.add_option("--layers", layers, "Layers to time")->capture_default_str();
  app.add_option("--min-seconds", min_seconds, "Least total timed seconds per layer")
      ->capture_default_str();
  app.add_option("--min-samples", min_samples, "Least samples per layer")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);

  // Zipfian counts and targets drawn from them.
  std::vector<int64_t> counts(classes);
  std::vector<double> cumulative(classes);
  double total = 0;
  for (int64_t c = 0; c < classes; ++c) {
    counts[c] = std::max<int64_t>(1, static_cast<int64_t>(1e7 / static_cast<double>(c + 1)));
    total += static_cast<double>(counts[c]);
    cumulative[c] = total;
  }
  Generator gen(1);
  Tensor targets = Tensor::empty({batch}, kInt64);
  for (int64_t i = 0; i < batch; ++i) {
    const double u = gen.uniform(0.0f, 1.0f) * total;
    targets.data<int64_t>()[i] =
        std::lower_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
  }
  Tensor h = randn({batch, hidden}, gen).set_requires_grad(true);

  for (const std::string& name : layers) {
    std::shared_ptr<Module> module;
    std::function<Tensor()> loss;
    if (name == "full") {
      auto layer = std::make_shared<FullSoftmax>(hidden, classes);
      module = layer;
      loss = [&, layer] { return layer->loss(h, targets); };
    } else if (name == "hierarchical") {
      auto layer = std::make_shared<HierarchicalSoftmax>(hidden, counts);
      module = layer;
      loss = [&, layer] { return layer->loss(h, targets); };
    } else if (name == "class") {
      auto layer = ClassBasedSoftmax::from_counts(hidden, counts);
      module = layer;
      loss = [&, layer] { return layer->loss(h, targets); };
    } else if (name == "sampled" || name == "nce") {
      auto layer = name == "nce" ? std::make_shared<Nce>(hidden, classes, num_sampled)
                                 : std::make_shared<SampledSoftmax>(hidden, classes, num_sampled);
      module = layer;
      loss = [&, layer] { return layer->loss(h, targets); };
    } else if (name == "adaptive") {
      auto layer = std::make_shared<AdaptiveLogSoftmaxWithLoss>(hidden, classes, cutoffs);
      module = layer;
      loss = [&, layer] { return layer->loss(h, targets); };
    } else {
      fmt::print(stderr, "output_layers: unknown layer '{}'\n", name);
      return 2;
    }
    std::vector<Tensor> params = module->parameters();
    auto clear = [&] {
      h.set_grad(Tensor());
      for (Tensor& p : params) p.set_grad(Tensor());
    };
    auto step = [&] { loss().backward(); };
    for (int i = 0; i < 3; ++i) {  // warm-up: caches, first-touch of the gradients
      clear();
      step();
    }
    std::vector<double> samples;
    double seconds = 0;
    while (seconds < min_seconds || static_cast<int>(samples.size()) < min_samples) {
      clear();
      const auto start = Clock::now();
      step();
      samples.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      seconds += samples.back();
    }
    nlohmann::json line = {{"bench", "output_layers"},
                           {"framework", "bridle"},
                           {"layer", name},
                           {"batch", batch},
                           {"hidden", hidden},
                           {"classes", classes},
                           {"threads", get_num_threads()},
                           {"median_s", median(samples)},
                           {"samples", samples.size()}};
    if (name == "sampled" || name == "nce") line["num_sampled"] = num_sampled;
    if (name == "adaptive") line["cutoffs"] = cutoffs;
    fmt::print("{}\n", line.dump());
    std::fflush(stdout);
  }
  return 0;
}
