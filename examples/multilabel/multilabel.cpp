// multilabel: sigmoid vs softmax when several labels are true at once.
//
// What it teaches: a multi-label problem (a photo can show a dog *and* a beach
// *and* a sunset) needs one independent yes/no per label: C sigmoids trained
// with binary_cross_entropy_with_logits. A softmax makes the C labels compete for
// one unit of probability: trained on multi-hot targets normalized to sum to 1
// (cross_entropy with probability targets), the best it can learn for a sample
// with k true labels is 1/k on each, so it can never say "yes" to 3 labels with
// confidence, and no fixed threshold separates "one of 3 true labels" (1/3)
// from "the only, but uncertain, label". Top-k with the *true* k rescues
// it, but a real system is not told k.
//
// Data: x ~ N(0, I) in D = 16 dims; label l (of C = 5) is true when x . w_l > t_l
// for a random unit vector w_l, with thresholds making the labels true on 50%,
// 45%, 40%, 35% and 30% of the samples: 2 true labels per sample on average,
// 3 or more on a third of them. Two identical models (16-64-5 MLP, same initial
// weights, same batches, SGD + momentum) differ only in their output and loss.
//
// Run:    ./build/examples/multilabel
// Expect: in about a second (one thread), on the 2000 held-out samples:
//           sigmoid + BCE,  p > 0.5          exact match 94.5%, micro F1 0.986
//           softmax + CE,   p > 0.5          exact match 24.3% (it picks one label at most)
//           softmax + CE,   p > 1/C = 0.2    exact match 85.0%, micro F1 0.957
//           softmax + CE,   top-k, true k    exact match 99.9% (told how many are true)
//         then per-label F1, and exact match by the number k of true labels, where
//         softmax's top probability falls as 1/k while the sigmoids' sum follows k.
//         Softmax ranks the labels well; what it cannot do is say how many are true.
//         --smoke trains a smaller version (0.1 s) and exits nonzero unless sigmoid's
//         exact-match accuracy beats softmax's at both thresholds.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <numeric>

#include "bridle.h"
#include "common/example_main.h"

using namespace bridle;

namespace {

constexpr int64_t D = 16, C = 5;  // input dims, labels
// P(label l is true) = P(N(0, 1) > t_l): 0.50, 0.45, 0.40, 0.35, 0.30.
constexpr std::array<float, C> kThresholds = {0.0f, 0.1257f, 0.2533f, 0.3853f, 0.5244f};

// The task: one unit direction per label.
std::vector<float> make_directions(Generator& gen) {
  std::vector<float> w = randn({C, D}, gen).to_vector();
  for (int64_t l = 0; l < C; ++l) {
    double norm = 0;
    for (int64_t d = 0; d < D; ++d) norm += w[l * D + d] * w[l * D + d];
    for (int64_t d = 0; d < D; ++d) w[l * D + d] /= static_cast<float>(std::sqrt(norm));
  }
  return w;
}

struct Data {
  Tensor x;            // [N, D]
  Tensor multi_hot;    // [N, C], 1 where a label is true: the sigmoid's targets
  Tensor normalized;   // [N, C], multi_hot / k (zero rows stay zero): the softmax's targets
  std::vector<int> k;  // true labels per sample
};

Data make_data(int64_t n, const std::vector<float>& w, Generator& gen) {
  Data data;
  data.x = randn({n, D}, gen);
  const std::vector<float> x = data.x.to_vector();
  std::vector<float> y(n * C, 0.0f), t(n * C, 0.0f);
  data.k.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t l = 0; l < C; ++l) {
      float dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += x[i * D + d] * w[l * D + d];
      y[i * C + l] = dot > kThresholds[l] ? 1.0f : 0.0f;
      data.k[i] += dot > kThresholds[l];
    }
    for (int64_t l = 0; l < C; ++l)
      t[i * C + l] = data.k[i] ? y[i * C + l] / static_cast<float>(data.k[i]) : 0.0f;
  }
  data.multi_hot = from_vector(y, {n, C});
  data.normalized = from_vector(t, {n, C});
  return data;
}

class Mlp : public Module {
 public:
  Mlp(int64_t hidden, Generator& gen) : Module("Mlp") {
    fc1_ = register_module("fc1", std::make_shared<Linear>(D, hidden, true, gen));
    fc2_ = register_module("fc2", std::make_shared<Linear>(hidden, C, true, gen));
  }
  // x [B, D] -> logits [B, C]
  Tensor forward(const Tensor& x) override { return fc2_->forward(relu(fc1_->forward(x))); }

 private:
  std::shared_ptr<Linear> fc1_, fc2_;
};

enum class Head { kSigmoid, kSoftmax };

// The loss of a batch. BCE sums over the C labels and averages over the B rows,
// like cross_entropy, so both losses give gradients of the same scale.
Tensor loss_of(Head head, const Tensor& logits, const Tensor& targets) {
  if (head == Head::kSigmoid)
    return binary_cross_entropy_with_logits(logits, targets, {.reduction = Reduction::kSum}) /
           static_cast<float>(logits.size(0));
  return cross_entropy(logits, targets);
}

// Decisions, [N, C] as 0/1, and what we measure of them.
using Decisions = std::vector<uint8_t>;

Decisions threshold(const std::vector<float>& p, float t) {
  Decisions out(p.size());
  for (size_t i = 0; i < p.size(); ++i) out[i] = p[i] > t;
  return out;
}

// The k_i most probable labels of each row, k_i the true count (an oracle).
Decisions top_true_k(const std::vector<float>& p, const std::vector<int>& k) {
  Decisions out(p.size(), 0);
  for (size_t i = 0; i < k.size(); ++i) {
    std::array<int64_t, C> order;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return p[i * C + a] > p[i * C + b]; });
    for (int j = 0; j < k[i]; ++j) out[i * C + order[j]] = 1;
  }
  return out;
}

struct Scores {
  double exact = 0, label_accuracy = 0, micro_f1 = 0, macro_f1 = 0, labels_per_sample = 0;
  std::array<double, C> f1{};
  std::array<double, C + 1> exact_by_k{};  // exact match among the samples with k true labels
};

double f1(int64_t tp, int64_t fp, int64_t fn) {
  return 2 * tp + fp + fn == 0 ? 1.0 : 2.0 * tp / (2 * tp + fp + fn);
}

Scores score(const Decisions& pred, const std::vector<float>& y, const std::vector<int>& k) {
  const int64_t n = static_cast<int64_t>(k.size());
  Scores s;
  std::array<int64_t, C> tp{}, fp{}, fn{};
  std::array<int64_t, C + 1> right_by_k{}, count_by_k{};
  int64_t exact = 0, right_labels = 0, predicted = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool all = true;
    for (int64_t l = 0; l < C; ++l) {
      const bool p = pred[i * C + l], t = y[i * C + l] > 0.5f;
      tp[l] += p && t, fp[l] += p && !t, fn[l] += !p && t;
      right_labels += p == t, predicted += p;
      all = all && p == t;
    }
    exact += all;
    right_by_k[k[i]] += all, count_by_k[k[i]] += 1;
  }
  s.exact = static_cast<double>(exact) / n;
  s.label_accuracy = static_cast<double>(right_labels) / (n * C);
  s.labels_per_sample = static_cast<double>(predicted) / n;
  int64_t all_tp = 0, all_fp = 0, all_fn = 0;
  for (int64_t l = 0; l < C; ++l) {
    s.f1[l] = f1(tp[l], fp[l], fn[l]);
    s.macro_f1 += s.f1[l] / C;
    all_tp += tp[l], all_fp += fp[l], all_fn += fn[l];
  }
  s.micro_f1 = f1(all_tp, all_fp, all_fn);
  for (int64_t j = 0; j <= C; ++j)
    s.exact_by_k[j] = count_by_k[j] ? static_cast<double>(right_by_k[j]) / count_by_k[j] : NAN;
  return s;
}

std::string percent(double v) { return std::isnan(v) ? "-" : fmt::format("{:.1f}%", 100 * v); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Multi-label classification: independent sigmoids vs one softmax"};
  examples::CommonFlags flags;
  flags.epochs = 100;
  flags.batch_size = 64;
  flags.lr = 0.05f;
  flags.threads = 1;  // the matrices are tiny: more threads only add overhead
  int64_t train_size = 4000, test_size = 2000, hidden = 64;
  app.add_option("--epochs", flags.epochs, "Training epochs")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  app.add_option("--batch-size", flags.batch_size, "Examples per batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--lr", flags.lr, "Learning rate (SGD, momentum 0.9)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6f, 10.0f));
  app.add_option("--seed", flags.seed, "Seed for the task, the data and the initial weights")
      ->capture_default_str();
  app.add_option("--train-size", train_size, "Training samples")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{10'000'000}));
  app.add_option("--test-size", test_size, "Held-out samples")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{10'000'000}));
  app.add_option("--hidden", hidden, "Hidden units of the 16-H-5 MLP")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  app.add_option("--threads", flags.threads, "Threads for every kernel (0: all cores)")
      ->capture_default_str();
  app.add_flag("--smoke", flags.smoke, "A smaller, quicker run that checks sigmoid wins (for CI)");
  app.add_option("--metrics-out", flags.metrics_out,
                 "Also write the final JSON metrics to this file");
  examples::add_inspection_flags(app, flags);  // --profile, --detect-anomaly
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);
    if (flags.smoke) {
      train_size = std::min<int64_t>(train_size, 1500);
      test_size = std::min<int64_t>(test_size, 1000);
      flags.epochs = std::min(flags.epochs, 15);
    }

    // The task and its data: one generator, so --seed fixes all of it.
    Generator data_gen(flags.seed);
    const std::vector<float> w = make_directions(data_gen);
    Data train = make_data(train_size, w, data_gen);
    Data test = make_data(test_size, w, data_gen);
    std::array<int64_t, C + 1> k_count{};
    double target_entropy = 0;  // softmax CE's floor on the training set: mean ln k
    for (int k : train.k) target_entropy += k > 1 ? std::log(k) / train_size : 0.0;
    for (int k : test.k) k_count[k] += 1;
    std::string k_mix;
    for (int64_t j = 0; j <= C; ++j)
      k_mix += fmt::format("{}k={}: {:.0f}%", j ? ", " : "", j, 100.0 * k_count[j] / test_size);
    spdlog::info("{} training and {} test samples, {} dims, {} labels; test set {}", train_size,
                 test_size, D, C, k_mix);

    // Two identical models: the same generator seed gives the same initial weights.
    Generator init_a(flags.seed + 1), init_b(flags.seed + 1);
    Mlp sigmoid_model(hidden, init_a), softmax_model(hidden, init_b);
    for (size_t i = 0; i < sigmoid_model.parameters().size(); ++i)
      BRIDLE_CHECK(
          sigmoid_model.parameters()[i].to_vector() == softmax_model.parameters()[i].to_vector(),
          "multilabel: the two models should start from the same weights");
    std::array<Mlp*, 2> models = {&sigmoid_model, &softmax_model};
    const std::array<Head, 2> heads = {Head::kSigmoid, Head::kSoftmax};
    // The same batches for both: loaders with the same seed visit the same order.
    DataLoaderOptions loader_options{
        .batch_size = flags.batch_size, .shuffle = true, .seed = flags.seed, .prefetch = 0};
    std::array<std::unique_ptr<DataLoader>, 2> loaders = {
        std::make_unique<DataLoader>(std::make_shared<TensorDataset>(train.x, train.multi_hot),
                                     loader_options),
        std::make_unique<DataLoader>(std::make_shared<TensorDataset>(train.x, train.normalized),
                                     loader_options)};
    std::vector<std::unique_ptr<SGD>> optimizers;
    for (Mlp* model : models)
      optimizers.push_back(
          std::make_unique<SGD>(model->parameters(), SGDOptions{.lr = flags.lr, .momentum = 0.9f}));

    const auto start = std::chrono::steady_clock::now();
    for (int epoch = 1; epoch <= flags.epochs; ++epoch) {
      std::array<double, 2> loss_sum{};
      for (size_t m = 0; m < 2; ++m) {
        for (Batch& batch : loaders[m]->epoch(epoch)) {
          optimizers[m]->zero_grad();
          Tensor loss = loss_of(heads[m], models[m]->forward(batch.inputs), batch.targets);
          loss.backward();
          optimizers[m]->step();
          loss_sum[m] += loss.item() * batch.size();
        }
      }
      if (epoch == 1 || epoch % std::max(1, flags.epochs / 4) == 0 || epoch == flags.epochs)
        spdlog::info(
            "epoch {:>2}/{}: sigmoid BCE {:.4f} (floor 0), softmax CE {:.4f} (floor {:.4f}: the "
            "targets' entropy, mean ln k)",
            epoch, flags.epochs, loss_sum[0] / train_size, loss_sum[1] / train_size,
            target_entropy);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // Held-out probabilities.
    std::vector<float> p_sigmoid, p_softmax;
    {
      NoGradGuard no_grad;
      p_sigmoid = sigmoid(sigmoid_model.forward(test.x)).to_vector();
      p_softmax = softmax(softmax_model.forward(test.x), 1).to_vector();
    }
    const std::vector<float> y = test.multi_hot.to_vector();
    struct Rule {
      std::string name;
      Scores scores;
    };
    const std::vector<Rule> rules = {
        {"sigmoid + BCE,  p > 0.5", score(threshold(p_sigmoid, 0.5f), y, test.k)},
        {"softmax + CE,   p > 0.5", score(threshold(p_softmax, 0.5f), y, test.k)},
        {fmt::format("softmax + CE,   p > 1/C = {:g}", 1.0 / C),
         score(threshold(p_softmax, 1.0f / C), y, test.k)},
        {"softmax + CE,   top-k, true k *", score(top_true_k(p_softmax, test.k), y, test.k)}};

    double true_per_sample = 0;
    for (int k : test.k) true_per_sample += static_cast<double>(k) / test_size;
    fmt::print("\nHeld-out set: {} samples, {} labels, {:.2f} true labels per sample\n\n",
               test_size, C, true_per_sample);
    fmt::print("  {:<34}{:>12}{:>11}{:>10}{:>10}{:>15}\n", "model, decision rule", "exact match",
               "label acc", "micro F1", "macro F1", "labels/sample");
    fmt::print("  {}\n", std::string(92, '-'));
    for (const Rule& r : rules)
      fmt::print("  {:<34}{:>12}{:>11}{:>10.3f}{:>10.3f}{:>15.2f}\n", r.name,
                 percent(r.scores.exact), percent(r.scores.label_accuracy), r.scores.micro_f1,
                 r.scores.macro_f1, r.scores.labels_per_sample);
    fmt::print(
        "  (true: {:.2f} labels/sample; * is told how many labels are true, which a real "
        "system is not)\n\n",
        true_per_sample);

    fmt::print("Per-label F1\n  {:<8}{:>12}", "label", "prevalence");
    for (const char* h : {"sigmoid>0.5", "softmax>0.5", "softmax>1/C", "top-k *"})
      fmt::print("{:>14}", h);
    fmt::print("\n  {}\n", std::string(76, '-'));
    for (int64_t l = 0; l < C; ++l) {
      double prevalence = 0;
      for (int64_t i = 0; i < test_size; ++i) prevalence += y[i * C + l] / test_size;
      fmt::print("  {:<8}{:>12}", l, percent(prevalence));
      for (const Rule& r : rules) fmt::print("{:>14.3f}", r.scores.f1[l]);
      fmt::print("\n");
    }

    // Why: by the number k of true labels. A sigmoid's probabilities add up to
    // about k; a softmax's always add up to 1, so its top one falls as 1/k.
    std::array<double, C + 1> sigmoid_sum{}, softmax_top{};
    for (int64_t i = 0; i < test_size; ++i) {
      double sum = 0, top = 0;
      for (int64_t l = 0; l < C; ++l)
        sum += p_sigmoid[i * C + l], top = std::max<double>(top, p_softmax[i * C + l]);
      sigmoid_sum[test.k[i]] += sum / k_count[test.k[i]];
      softmax_top[test.k[i]] += top / k_count[test.k[i]];
    }
    fmt::print(
        "\nWhy softmax struggles: exact match by the number k of true labels. Softmax's\n"
        "probabilities sum to 1, so with k true labels the best it can learn is 1/k on each\n"
        "(max softmax p follows 1/k): never above 0.5 once k >= 2; its largest is always at\n"
        "least 1/C, so it cannot say \"none\" (k = 0); it cannot put all C labels above 1/C\n"
        "(k = C). It ranks the labels well (told k, top-k is nearly perfect) but cannot tell\n"
        "you k. Independent sigmoids say yes or no to each label, and their sum estimates k.\n\n");
    fmt::print("  {:<3}{:>9}{:>13}{:>13}{:>13}{:>13}{:>15}{:>15}{:>7}\n", "k", "samples",
               "sigmoid>0.5", "softmax>0.5", "softmax>1/C", "top-k *", "sum sigmoid p",
               "max softmax p", "1/k");
    fmt::print("  {}\n", std::string(101, '-'));
    for (int64_t j = 0; j <= C; ++j) {
      if (k_count[j] == 0) continue;
      fmt::print("  {:<3}{:>9}", j, k_count[j]);
      for (const Rule& r : rules) fmt::print("{:>13}", percent(r.scores.exact_by_k[j]));
      fmt::print("{:>15.2f}{:>15.3f}{:>7}\n", sigmoid_sum[j], softmax_top[j],
                 j ? fmt::format("{:.3f}", 1.0 / j) : "-");
    }

    // One sample with three true labels, up close.
    for (int64_t i = 0; i < test_size; ++i) {
      if (test.k[i] != 3) continue;
      fmt::print("\nOne held-out sample with 3 true labels:\n  {:<16}", "label");
      for (int64_t l = 0; l < C; ++l) fmt::print("{:>8}", l);
      fmt::print("{:>8}\n  {:<16}", "sum", "true");
      for (int64_t l = 0; l < C; ++l) fmt::print("{:>8}", y[i * C + l] > 0.5f ? "yes" : "-");
      fmt::print("{:>8}\n", 3);
      const std::array<std::pair<const char*, const std::vector<float>*>, 2> probs = {
          {{"sigmoid p", &p_sigmoid}, {"softmax p", &p_softmax}}};
      for (const auto& [name, p] : probs) {
        double sum = 0;
        fmt::print("  {:<16}", name);
        for (int64_t l = 0; l < C; ++l) fmt::print("{:>8.3f}", (*p)[i * C + l]);
        for (int64_t l = 0; l < C; ++l) sum += (*p)[i * C + l];
        fmt::print("{:>8.3f}\n", sum);
      }
      break;
    }
    fmt::print("\n");

    // The check: against the rules a real system could use (not the oracle).
    const double best_softmax = std::max(rules[1].scores.exact, rules[2].scores.exact);
    const bool sigmoid_wins = rules[0].scores.exact > best_softmax;
    spdlog::info(
        "trained both models in {:.2f} s; sigmoid exact match {} vs softmax's best without the "
        "true k {}: {}",
        seconds, percent(rules[0].scores.exact), percent(best_softmax),
        sigmoid_wins ? "sigmoid wins" : "SIGMOID DOES NOT WIN");
    examples::report_metrics(flags, {{"example", "multilabel"},
                                     {"sigmoid_exact_match", rules[0].scores.exact},
                                     {"softmax_exact_match_p05", rules[1].scores.exact},
                                     {"softmax_exact_match_1_over_c", rules[2].scores.exact},
                                     {"softmax_exact_match_true_k", rules[3].scores.exact},
                                     {"sigmoid_micro_f1", rules[0].scores.micro_f1},
                                     {"softmax_micro_f1_1_over_c", rules[2].scores.micro_f1},
                                     {"epochs", flags.epochs},
                                     {"train_seconds", seconds},
                                     {"smoke", flags.smoke}});
    return sigmoid_wins ? 0 : 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
