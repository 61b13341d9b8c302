// 03_stable_softmax: why softmax subtracts the max, and why cross_entropy takes logits.
//
// What it teaches:
//   a. In float32, exp(z) overflows to inf above z = 88.7 and underflows to 0 below
//      about -103, so the textbook softmax exp(z) / sum exp(z) turns [1000, 1001, 1002]
//      into inf / inf = NaN and [-1000, -1001, -1002] into 0 / 0 = NaN. Softmax does
//      not change when one constant is subtracted from every logit; subtracting the
//      max makes the largest exponent exp(0) = 1, so nothing overflows and the sum
//      is at least 1. Likewise log(softmax(z)) is -inf once a probability
//      underflows, while log_softmax(z) = z - max - log sum exp(z - max) stays exact.
//   b. cross_entropy applies log_softmax itself, so it wants logits. Two pitfalls:
//      (i) giving it probabilities (a "double softmax") squashes the gradient;
//      (ii) softmax followed by squared error against the one-hot target has a
//      vanishing gradient exactly when the model is confidently wrong, while
//      cross_entropy's gradient p - onehot(y) stays large.
//   c. The same classifier trained three ways, with the same SGD settings and
//      initial weights: cross_entropy(z), cross_entropy(softmax(z)) and
//      mse(softmax(z), onehot). The correct one learns fastest.
//
// Run:    ./build/examples/03_stable_softmax [--plot FILE] [--epochs STEPS] [--lr LR]
// Expect: a. naive softmax: nan for [1000, 1001, 1002] and [-1000, -1001, -1002];
//            the stable one and bridle::softmax: 0.09003 0.2447 0.6652 (reversed for
//            the negative row). For z = [-100, 0, 100]: log(softmax(z))_0 = -inf,
//            log_softmax(z)_0 = -200.
//         b. for z = [10, 0, 0] and target 2, |dloss/dz| is 1.41 for cross_entropy,
//            3.4e-04 for softmax + mse and 1.0e-04 for the double softmax.
//         c. 5 interleaved spirals (500 points), MLP 2 -> 32 -> 5, full-batch SGD
//            lr 0.5 for 2000 steps, seed 0: final training accuracy 0.914 for
//            cross_entropy (90% from step 1900), 0.852 for softmax + mse and 0.624
//            for the double softmax, whose real cross-entropy even climbs to 2.4,
//            above ln 5 (its loss is bounded, so it does not punish confident
//            mistakes); the curves go to stable_softmax.svg.
//         The program fails if a stable result is not finite or does not sum to 1,
//         if a gradient comparison comes out the other way, or (full run only) if
//         cross_entropy does not end with the highest accuracy. --smoke trains 200
//         steps and writes the figure to a temporary directory (unless --plot).
//
// Next:   examples/04_custom_layer
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include "bridle.h"
#include "common/example_main.h"
#include "common/svg_plot.h"

using namespace bridle;
namespace svg = examples::svg;

namespace {

using Row = std::vector<float>;

// ---- a. Softmax by hand, in float32 ----

// The textbook formula: exp overflows to inf (or underflows to 0) for large |z|.
Row naive_softmax(const Row& z) {
  float sum = 0;
  for (float v : z) sum += std::exp(v);
  Row p;
  for (float v : z) p.push_back(std::exp(v) / sum);
  return p;
}

// softmax(z) = softmax(z - m) for any constant m; with m = max(z) every exponent
// is <= 0, so exp(z - m) is in (0, 1] and the sum is in [1, n].
Row stable_softmax(const Row& z) {
  const float m = *std::max_element(z.begin(), z.end());
  float sum = 0;
  for (float v : z) sum += std::exp(v - m);
  Row p;
  for (float v : z) p.push_back(std::exp(v - m) / sum);
  return p;
}

// log_softmax(z)_j = z_j - m - log sum_k exp(z_k - m): no exp of a large number,
// and no log of an underflowed probability.
Row stable_log_softmax(const Row& z) {
  const float m = *std::max_element(z.begin(), z.end());
  float sum = 0;
  for (float v : z) sum += std::exp(v - m);
  Row out;
  for (float v : z) out.push_back(v - m - std::log(sum));
  return out;
}

Row log_of(const Row& p) {
  Row out;
  for (float v : p) out.push_back(std::log(v));
  return out;
}

std::string str(const Row& v) {
  std::string out;
  for (float x : v) out += fmt::format("{}{:>9.4g}", out.empty() ? "" : " ", x);
  return out;
}

bool is_distribution(const Row& p) {
  double sum = 0;
  for (float v : p) {
    if (!std::isfinite(v) || v < 0) return false;
    sum += v;
  }
  return std::abs(sum - 1.0) <= 1e-5;
}

double max_abs_diff(const Row& a, const Row& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double{a[i]} - b[i]));
  return d;  // NaN compares false, so also check finiteness where it matters
}

bool all_finite(const Row& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// ---- b and c. The three training losses ----

enum class Objective { kCrossEntropy, kDoubleSoftmax, kSoftmaxMse };
constexpr Objective kObjectives[] = {Objective::kCrossEntropy, Objective::kDoubleSoftmax,
                                     Objective::kSoftmaxMse};

const char* formula(Objective objective) {
  switch (objective) {
    case Objective::kCrossEntropy:
      return "cross_entropy(z)";
    case Objective::kDoubleSoftmax:
      return "cross_entropy(softmax(z))";
    case Objective::kSoftmaxMse:
      return "mse(softmax(z), onehot)";
  }
  return "";
}

// The name in the JSON metrics.
const char* key(Objective objective) {
  switch (objective) {
    case Objective::kCrossEntropy:
      return "cross_entropy";
    case Objective::kDoubleSoftmax:
      return "double_softmax";
    case Objective::kSoftmaxMse:
      return "softmax_mse";
  }
  return "";
}

// logits [N, C], labels [N] int64, onehot [N, C] float32.
Tensor training_loss(Objective objective, const Tensor& logits, const Tensor& labels,
                     const Tensor& onehot) {
  switch (objective) {
    case Objective::kCrossEntropy:  // right: cross_entropy applies log_softmax itself
      return cross_entropy(logits, labels);
    case Objective::kDoubleSoftmax:  // the bug: probabilities go in as if they were logits
      return cross_entropy(softmax(logits, 1), labels);
    case Objective::kSoftmaxMse: {  // squared error summed over classes (the Brier score)
      Tensor diff = softmax(logits, 1) - onehot;
      return mean(sum(diff * diff, 1));
    }
  }
  BRIDLE_FAIL("training_loss: unknown objective {}", static_cast<int>(objective));
}

Tensor one_hot(const std::vector<int64_t>& labels, int64_t classes) {
  Tensor out = zeros({static_cast<int64_t>(labels.size()), classes});
  for (size_t i = 0; i < labels.size(); ++i) out.set({static_cast<int64_t>(i), labels[i]}, 1.0);
  return out;
}

double norm(const Row& v) {
  double sum = 0;
  for (float x : v) sum += double{x} * x;
  return std::sqrt(sum);
}

// ---- c. Data: interleaved spirals in 2-D, one arm per class ----

struct Data {
  Tensor x;  // [N, 2]
  std::vector<int64_t> labels;
};

Data make_spirals(int64_t per_class, int64_t classes, Generator& gen) {
  const float jitter = 0.2f;  // radians of noise on each point's angle
  std::vector<float> x;
  Data data;
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t i = 0; i < per_class; ++i) {
      const float r = static_cast<float>(i) / (per_class - 1);  // radius 0 to 1
      // Arm c starts at angle 2 pi c / C and turns 4 radians on the way out.
      const float angle =
          2 * std::numbers::pi_v<float> * c / classes + 4 * r + gen.normal(0.0f, jitter);
      x.push_back(r * std::sin(angle));
      x.push_back(r * std::cos(angle));
      data.labels.push_back(c);
    }
  data.x = from_vector(x, {per_class * classes, 2});
  return data;
}

struct Curve {
  std::vector<double> steps, loss, accuracy, nll;
};

// Trains a fresh 2 -> 32 -> C MLP (the same initial weights for every objective)
// with full-batch SGD and records the curves every eval_every steps.
Curve train(Objective objective, const Data& data, int64_t classes, int steps, int eval_every,
            float lr, uint64_t seed) {
  Generator gen(seed);
  Sequential model{std::make_shared<Linear>(2, 32, true, gen), std::make_shared<ReLU>(),
                   std::make_shared<Linear>(32, classes, true, gen)};
  SGD sgd(model.parameters(), {.lr = lr});
  const Tensor labels = from_vector(data.labels);
  const Tensor onehot = one_hot(data.labels, classes);
  Curve curve;
  for (int step = 0; step <= steps; ++step) {
    sgd.zero_grad();
    Tensor logits = model.forward(data.x);
    Tensor loss = training_loss(objective, logits, labels, onehot);
    if (step % eval_every == 0 || step == steps) {
      NoGradGuard no_grad;
      const std::vector<int64_t> predicted = argmax(logits, 1).to_int_vector();
      int64_t correct = 0;
      for (size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == data.labels[i];
      curve.steps.push_back(step);
      curve.loss.push_back(loss.item());
      curve.accuracy.push_back(static_cast<double>(correct) / predicted.size());
      // One yardstick for all three: the mean of -log softmax(z)_y.
      curve.nll.push_back(cross_entropy(logits, labels).item());
    }
    if (step == steps) break;
    loss.backward();
    sgd.step();
  }
  return curve;
}

// The first recorded step with accuracy >= level, or -1 if it never gets there.
double first_step_reaching(const Curve& curve, double level) {
  for (size_t i = 0; i < curve.steps.size(); ++i)
    if (curve.accuracy[i] >= level) return curve.steps[i];
  return -1;
}

svg::Figure make_figure(const std::vector<Curve>& curves, int64_t classes,
                        const std::string& subtitle) {
  svg::Figure figure(1300, 480, "Same model, same SGD, three losses");
  figure.text(650, 52, subtitle, 13, "middle", "#666666");
  svg::LinePlot accuracy{.title = "Training accuracy",
                         .x_label = "SGD step",
                         .y_label = "accuracy",
                         .y_min = 0,
                         .y_max = 1.02};
  svg::LinePlot nll{.title = "Cross-entropy of softmax(z), the same yardstick for all",
                    .x_label = "SGD step",
                    .y_label = "mean -log p(true class)",
                    .y_min = 0};
  for (size_t i = 0; i < curves.size(); ++i) {
    const char* label = formula(kObjectives[i]);
    accuracy.series.push_back({.label = label, .x = curves[i].steps, .y = curves[i].accuracy});
    nll.series.push_back({.label = label, .x = curves[i].steps, .y = curves[i].nll});
  }
  accuracy.ref_lines.push_back({.value = 1.0 / classes, .label = "chance"});
  nll.ref_lines.push_back(
      {.value = std::log(static_cast<double>(classes)), .label = "ln C (uniform guess)"});
  figure.draw({20, 70, 620, 390}, accuracy);
  figure.draw({660, 70, 620, 390}, nll);
  return figure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Stable softmax, and why cross_entropy takes logits"};
  examples::CommonFlags flags;
  flags.epochs = 2000;  // full-batch SGD steps here
  flags.lr = 0.5f;
  flags.threads = 1;  // the tensors are tiny: more threads cost more than they save
  std::string plot_path = "stable_softmax.svg";
  examples::add_common_flags(app, flags);
  auto* plot_opt = app.add_option("--plot", plot_path, "Where to write the training curves (SVG)")
                       ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);
    bool ok = true;
    auto check = [&ok](bool condition, const std::string& what) {
      if (!condition) spdlog::error("check failed: {}", what);
      ok = ok && condition;
    };

    // ---- a. Naive vs stable, in float32 ----
    fmt::print("\na. softmax in float32: exp(z) / sum exp(z) vs exp(z - max) / sum exp(z - max)\n");
    fmt::print("{:<24} {:<30} {:<30} {}\n", "logits z", "naive", "stable (subtract max)",
               "bridle::softmax");
    bool naive_failed = false;
    for (const Row& z : {Row{1, 2, 3}, Row{1000, 1001, 1002}, Row{-1000, -1001, -1002}}) {
      const Row naive = naive_softmax(z), stable = stable_softmax(z);
      const Row library = softmax(from_vector(z, {3})).to_vector();
      fmt::print("{:<24} {:<30} {:<30} {}\n", fmt::format("[{}]", fmt::join(z, ", ")), str(naive),
                 str(stable), str(library));
      naive_failed = naive_failed || !all_finite(naive);
      check(is_distribution(stable) && is_distribution(library),
            fmt::format("stable softmax of [{}] is finite and sums to 1", fmt::join(z, ", ")));
      check(max_abs_diff(stable, library) <= 1e-6, "the stable softmax matches bridle::softmax");
    }

    const Row wide = {-100, 0, 100};
    const Row log_naive = log_of(naive_softmax(wide)), log_stable_p = log_of(stable_softmax(wide));
    const Row log_stable = stable_log_softmax(wide);
    const Row log_library = log_softmax(from_vector(wide, {3})).to_vector();
    fmt::print("\nlog-softmax of z = [{}]:\n", fmt::join(wide, ", "));
    fmt::print("  log(naive softmax)              {}\n", str(log_naive));
    fmt::print("  log(stable softmax)             {}   (exp(-200) underflows to 0)\n",
               str(log_stable_p));
    fmt::print("  z - max - log sum exp(z - max)  {}\n", str(log_stable));
    fmt::print("  bridle::log_softmax             {}\n", str(log_library));
    check(all_finite(log_stable) && all_finite(log_library) &&
              max_abs_diff(log_stable, log_library) <= 1e-4,
          "the stable log-softmax is finite and matches bridle::log_softmax");
    check(std::abs(log_stable[0] + 200.0f) <= 1e-3, "log_softmax([-100, 0, 100])_0 = -200");

    // ---- b. Gradients of the three losses with respect to the logits ----
    fmt::print("\nb. dloss/dlogits for one example (bridle autograd)\n");
    struct Case {
      const char* what;
      Row logits;
      int64_t target;
      bool confident;
    };
    const Case cases[] = {{"unsure and wrong", {2, 0, -1}, 2, false},
                          {"confidently wrong", {10, 0, 0}, 2, true}};
    std::map<std::string, double> confident_norms;  // for z = [10, 0, 0]
    for (const Case& c : cases) {
      fmt::print("logits z = [{}], target {} ({})\n", fmt::join(c.logits, ", "), c.target, c.what);
      fmt::print("  {:<26} {:>9}   {:<30} {:>10}\n", "loss", "value", "dloss/dz", "|dloss/dz|");
      const Tensor labels = from_vector(std::vector<int64_t>{c.target});
      for (Objective objective : kObjectives) {
        Tensor z = from_vector(c.logits, {1, 3}, TensorOptions().with_requires_grad());
        Tensor loss = training_loss(objective, z, labels, one_hot({c.target}, 3));
        loss.backward();
        const Row grad = z.grad().to_vector();
        fmt::print("  {:<26} {:>9.4f}   {:<30} {:>10.2e}\n", formula(objective), loss.item(),
                   str(grad), norm(grad));
        if (c.confident) confident_norms[key(objective)] = norm(grad);
      }
    }
    fmt::print(
        "cross_entropy's gradient is p - onehot(y): large while the model is wrong.\n"
        "The other two pass their gradient through softmax's Jacobian J = diag(p) - p p^T,\n"
        "which is ~0 once p is near one-hot, right or wrong. Even at a uniform p,\n"
        "J = I/C - 1 1^T/C^2 turns mse's 2 (p - y) into 2 (p - y) / C: 2/C times\n"
        "cross_entropy's gradient. And cross_entropy(softmax(z)) never falls below\n"
        "log(1 + (C-1)/e) = {:.4f} for C = 3: the 'logits' it sees are stuck in [0, 1].\n",
        std::log(1 + 2 / std::numbers::e));
    const double ce_norm = confident_norms.at("cross_entropy");
    check(confident_norms.at("double_softmax") < 0.01 * ce_norm &&
              confident_norms.at("softmax_mse") < 0.01 * ce_norm,
          "confidently wrong: the double-softmax and mse gradients are < 1% of cross_entropy's");

    // ---- c. Training curves ----
    const int steps = flags.smoke ? 200 : flags.epochs;
    const int eval_every = std::max(1, steps / 100);
    const int64_t classes = 5, per_class = 100;
    Generator data_gen(flags.seed);
    const Data data = make_spirals(per_class, classes, data_gen);
    const std::string setup =
        fmt::format("{} spirals, {} points, MLP 2 -> 32 -> {}, full-batch SGD lr {:g}, {} steps",
                    classes, per_class * classes, classes, flags.lr, steps);
    fmt::print("\nc. training: {}\n", setup);
    std::vector<Curve> curves;  // the model's initial weights come from seed + 1
    for (Objective objective : kObjectives)
      curves.push_back(
          train(objective, data, classes, steps, eval_every, flags.lr, flags.seed + 1));

    fmt::print("{:>6}", "");
    for (Objective objective : kObjectives) fmt::print("  {:>26}", formula(objective));
    fmt::print("\n{:>6}", "step");
    for (size_t i = 0; i < curves.size(); ++i) fmt::print("  {:>18}{:>8}", "loss", "acc");
    fmt::print("\n");
    const size_t points = curves[0].steps.size();
    for (size_t i = 0; i < points; i += (i + 5 < points ? 5 : 1)) {
      fmt::print("{:>6}", curves[0].steps[i]);
      for (const Curve& curve : curves)
        fmt::print("  {:>18.4f}{:>8.3f}", curve.loss[i], curve.accuracy[i]);
      fmt::print("\n");
    }

    nlohmann::json final_accuracy, steps_to_90;
    for (size_t i = 0; i < curves.size(); ++i) {
      const double first = first_step_reaching(curves[i], 0.9);
      fmt::print("{:<26} final accuracy {:.3f}, cross-entropy {:.3f}; 90% accuracy {}\n",
                 formula(kObjectives[i]), curves[i].accuracy.back(), curves[i].nll.back(),
                 first < 0 ? "never reached" : fmt::format("from step {}", first));
      final_accuracy[key(kObjectives[i])] = curves[i].accuracy.back();
      steps_to_90[key(kObjectives[i])] = first < 0 ? nlohmann::json() : nlohmann::json(first);
      check(std::all_of(curves[i].loss.begin(), curves[i].loss.end(),
                        [](double v) { return std::isfinite(v); }),
            fmt::format("every training loss of {} is finite", formula(kObjectives[i])));
    }
    const double acc_ce = curves[0].accuracy.back(), acc_double = curves[1].accuracy.back(),
                 acc_mse = curves[2].accuracy.back();
    if (!flags.smoke)  // a short run proves nothing about which learns faster
      check(acc_ce > acc_mse && acc_ce > acc_double,
            "cross_entropy(logits) ends with the highest training accuracy");

    // The figure: --plot, or a temporary directory for a smoke run without it.
    examples::TemporaryDir temporary;
    if (flags.smoke && plot_opt->count() == 0)
      plot_path = (temporary.make("bridle_stable_softmax_XXXXXX") / "stable_softmax.svg").string();
    make_figure(curves, classes, setup).save(plot_path);
    check(svg::is_complete_svg(plot_path), "the figure was written");
    fmt::print("figure: {} ({} bytes)\n", plot_path, std::filesystem::file_size(plot_path));

    examples::report_metrics(flags, {{"example", "03_stable_softmax"},
                                     {"naive_softmax_failed", naive_failed},
                                     {"grad_norm_confidently_wrong", confident_norms},
                                     {"steps", steps},
                                     {"final_accuracy", final_accuracy},
                                     {"steps_to_90_percent", steps_to_90},
                                     {"checks_ok", ok},
                                     {"smoke", flags.smoke}});
    return ok ? 0 : 1;
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
