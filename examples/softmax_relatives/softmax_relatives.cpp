// softmax_relatives: softmax next to its sparse relatives, and softmax inside attention.
//
// What it teaches, in two parts.
// 1. Mapping logits z to probabilities. softmax gives every class a positive
//    probability, however low its logit. sparsemax (the Euclidean projection of z
//    onto the simplex, p = [z - tau]_+) and 1.5-entmax (p = [z/2 - tau]_+^2) give
//    the low logits EXACTLY zero. alpha-entmax (entmax_bisect) joins them: alpha = 1
//    is softmax, alpha = 2 is sparsemax, 1 < alpha < 2 lies between. Scaling z
//    down (a higher temperature) lets more classes into the support; scaling it
//    up shrinks the support, down to one class for sparsemax. With two classes
//    softmax is the sigmoid of z1 - z2, while alpha-entmax is a curve that reaches
//    exactly 0 and 1 at |z1 - z2| = 1 / (alpha - 1): a straight clipped line for sparsemax.
// 2. Attention is softmax over the keys: weights = softmax(Q K^T / sqrt(d)), one
//    distribution per query, and out = weights V. A causal mask sets the scores of
//    future keys to -inf, so their weights are exactly 0; scaling the scores up (a
//    lower temperature) moves each row towards one-hot. MultiheadAttention runs
//    H such attentions on learned projections.
//
// Run:    ./build/examples/softmax_relatives [--out DIR] [--logits 2,1.5,0.8,0.1,-1] [--seed N]
// Expect: in a tenth of a second, for z = [2, 1.5, 0.8, 0.1, -1] ("0" is an exact
//         zero, "0.0000" a positive value below 5e-5):
//           softmax        0.4746  0.2879  0.1429  0.0710  0.0236   exact zeros 0
//           1.25-entmax    0.5674  0.3046  0.1040  0.0238  0.0002   exact zeros 0
//           1.5-entmax     0.6490  0.3087  0.0423       0       0   exact zeros 2
//           sparsemax      0.7500  0.2500       0       0       0   exact zeros 3
//         and the same for z x 0.5 and z x 2: sparsemax keeps 3, 2 and 1 classes at
//         x 0.5, x 1 and x 2. max |entmax_bisect(alpha = 2) - sparsemax| = 0, and
//         max |entmax_bisect(alpha) - softmax| is 3.7e-2, 3.6e-3, 3.6e-4 at
//         alpha = 1.1, 1.01, 1.001.
//         Attention (T = 5 tokens, d = 4, seed 0): the 5 x 5 weights without and with
//         the causal mask (10 exact zeros above the diagonal; scaled_dot_product_attention
//         equals weights V exactly); scaling the scores by 0.25, 1, 4, 16, 64 raises a
//         row's mean largest weight 0.24, 0.34, 0.57, 0.82, 0.93 and lowers its entropy
//         from 1.60 to 0.13 nats. MultiheadAttention(8, 2 heads): [2, 5, 8] -> [2, 5, 8].
//         Then DIR/softmax_relatives.svg (the probabilities as bars, p1 of two classes
//         against z1 - z2, the support size against the scale of z) and a JSON line.
//         Every property above is checked; the exit code is 1 if one fails.
//         --smoke writes the figure to a temporary directory (or --out) and checks it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>

#include "bridle.h"
#include "common/example_main.h"
#include "common/svg_plot.h"

using namespace bridle;
namespace svg = examples::svg;

namespace {

// A mapping from a row of logits to a probability distribution (along the last dim).
struct Mapping {
  std::string name;
  std::function<Tensor(const Tensor&)> apply;
};

const std::vector<Mapping>& mappings() {
  static const std::vector<Mapping> kMappings = {
      {"softmax", [](const Tensor& z) { return softmax(z); }},
      {"1.25-entmax", [](const Tensor& z) { return entmax_bisect(z, 1.25f); }},
      {"1.5-entmax", [](const Tensor& z) { return entmax15(z); }},
      {"sparsemax", [](const Tensor& z) { return sparsemax(z); }},
  };
  return kMappings;
}

int count_exact_zeros(const std::vector<float>& p) {
  return static_cast<int>(std::count(p.begin(), p.end(), 0.0f));
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double{a[i]} - b[i]));
  return d;
}

// The largest |sum of a row - 1| over rows of n probabilities; infinite if one is negative.
double row_sum_error(const std::vector<float>& p, size_t n) {
  double worst = 0;
  for (size_t r = 0; r < p.size() / n; ++r) {
    double sum = 0;
    for (size_t j = 0; j < n; ++j) {
      if (p[r * n + j] < 0) return std::numeric_limits<double>::infinity();
      sum += p[r * n + j];
    }
    worst = std::max(worst, std::abs(sum - 1));
  }
  return worst;
}

double entropy_nats(const float* p, size_t n) {
  double h = 0;
  for (size_t j = 0; j < n; ++j)
    if (p[j] > 0) h -= p[j] * std::log(static_cast<double>(p[j]));
  return h;
}

// Probabilities in columns of 8, an exact zero as "0" so it stands out from "0.0000".
std::string format_row(const float* p, size_t n) {
  std::string out;
  for (size_t j = 0; j < n; ++j)
    out += p[j] == 0.0f ? fmt::format("{:>8}", "0") : fmt::format("{:>8.4f}", p[j]);
  return out;
}

void print_matrix(const std::string& title, const std::vector<float>& w, size_t rows, size_t cols) {
  fmt::print("  {}\n", title);
  for (size_t i = 0; i < rows; ++i)
    fmt::print("    query {}: {}\n", i, format_row(&w[i * cols], cols));
}

std::string join(const std::vector<float>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}{:g}", i ? ", " : "", v[i]);
  return out;
}

// Each property the example claims, printed with its figure; one failure fails the run.
class Checks {
 public:
  void expect(bool ok, const std::string& what) {
    fmt::print("  check: {} ... {}\n", what, ok ? "ok" : "FAILED");
    if (!ok) ++failed_;
  }
  int failed() const { return failed_; }

 private:
  int failed_ = 0;
};

// The three panels: bars of p per class; p1 of two classes against z1 - z2;
// the support size against the scale of z.
svg::Figure make_figure(const std::vector<float>& logits, const std::vector<Tensor>& probs,
                        const std::vector<double>& gaps, const std::vector<Tensor>& two_class,
                        const std::vector<double>& scales,
                        const std::vector<std::vector<double>>& support) {
  const auto& maps = mappings();
  svg::Figure figure(1100, 860,
                     fmt::format("softmax and its sparse relatives on z = [{}]", join(logits)));
  figure.text(550, 52,
              "softmax never gives exactly 0; sparsemax and entmax give the low logits exactly 0, "
              "fewer of them as z is scaled down",
              13, "middle", "#666666");

  svg::BarChart bars{.title = "Probability of each class",
                     .x_label = "class (logit)",
                     .y_label = "probability",
                     .y_max = 1.0};
  for (size_t j = 0; j < logits.size(); ++j)
    bars.groups.push_back(fmt::format("z{} = {:g}", j + 1, logits[j]));
  for (size_t m = 0; m < maps.size(); ++m) {
    const std::vector<float> p = probs[m].to_vector();
    bars.series.push_back({.label = maps[m].name, .values = {p.begin(), p.end()}});
  }
  figure.draw({20, 70, 1060, 390}, bars);

  svg::LinePlot curve{.title = "Two classes: p1 against z1 - z2",
                      .x_label = "z1 - z2  (α-entmax: exactly 0 or 1 beyond ±1/(α - 1))",
                      .y_label = "p1",
                      .y_min = 0,
                      .y_max = 1.02};
  for (size_t m = 0; m < maps.size(); ++m) {
    const std::vector<float> p = two_class[m].to_vector();  // [N, 2]
    svg::LineSeries series{.label = maps[m].name, .x = gaps};
    for (size_t i = 0; i < gaps.size(); ++i) series.y.push_back(p[2 * i]);
    curve.series.push_back(std::move(series));
  }
  figure.draw({20, 480, 530, 370}, curve);

  svg::LinePlot sizes{.title = "Support: classes with p > 0",
                      .x_label = "scale s of the logits, s·z (log scale)",
                      .y_label = "classes with p > 0",
                      .log_x = true,
                      .y_min = 0,
                      .y_max = logits.size() + 0.5};
  for (size_t m = 0; m < maps.size(); ++m)
    sizes.series.push_back({.label = maps[m].name, .x = scales, .y = support[m]});
  sizes.ref_lines = {{.value = 1.0, .vertical = true, .label = "s = 1"}};
  figure.draw({570, 480, 510, 370}, sizes);
  return figure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"softmax vs sparsemax vs entmax, and softmax inside attention"};
  examples::CommonFlags flags;
  std::vector<float> logits = {2.0f, 1.5f, 0.8f, 0.1f, -1.0f};
  std::string out_dir = ".";
  auto* logits_opt = app.add_option("--logits", logits, "The logits, comma-separated")
                         ->delimiter(',')
                         ->capture_default_str();
  auto* out_opt = app.add_option("--out", out_dir, "Directory for softmax_relatives.svg")
                      ->capture_default_str();
  app.add_option("--seed", flags.seed, "Seed for the attention example's Q, K, V and weights")
      ->capture_default_str();
  app.add_option("--threads", flags.threads, "Threads for every kernel (0: all cores)")
      ->capture_default_str();
  app.add_flag("--smoke", flags.smoke,
               "Write the figure to a temporary directory (or --out) and check it (for CI)");
  app.add_option("--metrics-out", flags.metrics_out,
                 "Also write the final JSON metrics to this file");
  examples::add_inspection_flags(app, flags);  // --profile, --detect-anomaly
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);
    const size_t C = logits.size();
    BRIDLE_CHECK(C >= 2 && C <= 10, "--logits: give 2 to 10 values, not {}", C);
    for (float v : logits) BRIDLE_CHECK(std::isfinite(v), "--logits: {} is not a finite number", v);
    const auto [lowest, highest] = std::minmax_element(logits.begin(), logits.end());
    // Past exp(-87) float32 underflows towards 0, and softmax's zeros would be rounding, not
    // sparsity.
    BRIDLE_CHECK(*highest - *lowest <= 8,
                 "--logits: keep max - min <= 8, not {:g} (the figure scales z by up to 10, "
                 "and float32's exp underflows below about -87)",
                 *highest - *lowest);
    const bool default_logits = logits_opt->count() == 0;
    const auto& maps = mappings();
    const int64_t n = static_cast<int64_t>(C);
    Checks checks;

    // Part 1: the same logits through each mapping, at three scales.
    fmt::print("\nPart 1: softmax and its sparse relatives on z = [{}]\n", join(logits));
    fmt::print("  (\"0\" is an exact zero, \"0.0000\" a positive value below 5e-5)\n");
    const std::vector<float> scale_list = {0.5f, 1.0f, 2.0f};
    std::vector<std::vector<int>> support_by_scale(maps.size());  // [mapping][scale]
    std::vector<Tensor> probs_at_1;                               // for the bar chart
    double worst_sum_error = 0;
    int softmax_zeros = 0;
    nlohmann::json zeros_json = nlohmann::json::object();
    for (float s : scale_list) {
      const Tensor z = from_vector(logits, {n}) * s;
      fmt::print("\n  z x {:g} = [{}]\n", s, join(z.to_vector()));
      for (size_t m = 0; m < maps.size(); ++m) {
        const Tensor p = maps[m].apply(z);
        const std::vector<float> pv = p.to_vector();
        const int zeros = count_exact_zeros(pv);
        worst_sum_error = std::max(worst_sum_error, row_sum_error(pv, C));
        support_by_scale[m].push_back(static_cast<int>(C) - zeros);
        if (m == 0) softmax_zeros += zeros;
        if (s == 1.0f) {
          probs_at_1.push_back(p);
          zeros_json[maps[m].name] = zeros;
        }
        fmt::print("    {:<13}{}   exact zeros {}\n", maps[m].name, format_row(pv.data(), C),
                   zeros);
      }
    }
    fmt::print("\n");
    checks.expect(worst_sum_error <= 1e-5,
                  fmt::format("every distribution is >= 0 and sums to 1 (worst |sum - 1| {:.1e})",
                              worst_sum_error));
    checks.expect(softmax_zeros == 0, "softmax gives no class exactly 0, at any scale");
    const int sparsemax_zeros = zeros_json["sparsemax"].get<int>();
    if (default_logits)
      checks.expect(
          sparsemax_zeros > 0,
          fmt::format("sparsemax gives {} of the {} classes exactly 0", sparsemax_zeros, C));
    bool support_grows = true;  // as the scale goes 2 -> 1 -> 0.5
    for (const auto& sizes : support_by_scale)
      support_grows = support_grows && sizes[0] >= sizes[1] && sizes[1] >= sizes[2];
    const std::vector<int>& sparse_support = support_by_scale.back();
    checks.expect(support_grows,
                  fmt::format("scaling z down never shrinks a support (sparsemax: {}, {}, {} "
                              "classes at x 0.5, x 1, x 2)",
                              sparse_support[0], sparse_support[1], sparse_support[2]));

    // alpha-entmax by bisection: alpha = 2 and 1.5 are the exact ones, alpha -> 1 is softmax.
    const Tensor z = from_vector(logits, {n});
    const std::vector<float> softmax_p = softmax(z).to_vector();
    const double alpha2_error =
        max_abs_diff(entmax_bisect(z, 2.0f).to_vector(), sparsemax(z).to_vector());
    const double alpha15_error =
        max_abs_diff(entmax_bisect(z, 1.5f).to_vector(), entmax15(z).to_vector());
    checks.expect(
        alpha2_error <= 1e-5,
        fmt::format("max |entmax_bisect(alpha = 2) - sparsemax| = {:.1e} <= 1e-5", alpha2_error));
    checks.expect(
        alpha15_error <= 1e-5,
        fmt::format("max |entmax_bisect(alpha = 1.5) - entmax15| = {:.1e} <= 1e-5", alpha15_error));
    std::vector<double> near_softmax;  // the distance to softmax as alpha -> 1
    std::string near_text;
    for (float alpha : {1.1f, 1.01f, 1.001f}) {
      near_softmax.push_back(max_abs_diff(entmax_bisect(z, alpha).to_vector(), softmax_p));
      near_text += fmt::format("{}{:.1e} at alpha = {:g}", near_text.empty() ? "" : ", ",
                               near_softmax.back(), alpha);
    }
    checks.expect(
        near_softmax[0] > near_softmax[1] && near_softmax[1] > near_softmax[2] &&
            near_softmax[2] <= 1e-3,
        "max |entmax_bisect(alpha) - softmax| shrinks to <= 1e-3 as alpha -> 1: " + near_text);

    // Two classes, z = [t, 0]: softmax is sigmoid(t); sparsemax is clip((t + 1) / 2, 0, 1).
    const int points = flags.smoke ? 41 : 201;
    std::vector<double> gaps;
    std::vector<float> pairs;
    for (int i = 0; i < points; ++i) {
      gaps.push_back(-5.0 + 10.0 * i / (points - 1));
      pairs.insert(pairs.end(), {static_cast<float>(gaps.back()), 0.0f});
    }
    const Tensor pair_logits = from_vector(pairs, {points, 2});
    std::vector<Tensor> two_class;
    for (const Mapping& mapping : maps) two_class.push_back(mapping.apply(pair_logits));
    const std::vector<float> two_softmax = two_class.front().to_vector();
    const std::vector<float> two_sparsemax = two_class.back().to_vector();
    double sigmoid_error = 0, clip_error = 0;
    for (int i = 0; i < points; ++i) {
      const double t = gaps[i];
      sigmoid_error =
          std::max(sigmoid_error, std::abs(two_softmax[2 * i] - 1 / (1 + std::exp(-t))));
      clip_error =
          std::max(clip_error, std::abs(two_sparsemax[2 * i] - std::clamp((t + 1) / 2, 0.0, 1.0)));
    }
    checks.expect(sigmoid_error <= 1e-6 && clip_error <= 1e-6,
                  fmt::format("two classes: softmax = sigmoid(z1 - z2) ({:.1e}), sparsemax = "
                              "clip((z1 - z2 + 1) / 2, 0, 1) ({:.1e})",
                              sigmoid_error, clip_error));

    // The support size against the scale s of s z, s from 0.1 to 10 on a log scale.
    std::vector<double> scales;
    std::vector<float> scaled_rows;
    for (int i = 0; i < points; ++i) {
      scales.push_back(0.1 * std::pow(100.0, static_cast<double>(i) / (points - 1)));
      for (float v : logits) scaled_rows.push_back(static_cast<float>(scales.back() * v));
    }
    const Tensor scaled = from_vector(scaled_rows, {points, n});
    std::vector<std::vector<double>> support(maps.size());
    for (size_t m = 0; m < maps.size(); ++m) {
      const std::vector<float> p = maps[m].apply(scaled).to_vector();
      for (int i = 0; i < points; ++i)
        support[m].push_back(static_cast<double>(std::count_if(
            p.begin() + i * n, p.begin() + (i + 1) * n, [](float v) { return v > 0; })));
    }

    // Part 2: attention. One distribution over the keys for each query.
    constexpr int64_t T = 5, d = 4;  // tokens, features per token
    fmt::print("\nPart 2: attention, weights = softmax(Q K^T / sqrt(d)), T = {} tokens, d = {}\n\n",
               T, d);
    Generator gen(flags.seed);
    const Tensor q = randn({T, d}, gen), k = randn({T, d}, gen), v = randn({T, d}, gen);
    const Tensor weights = attention_weights(q, k);
    const Tensor by_hand = softmax(matmul(q, transpose(k, 0, 1)) / std::sqrt(float{d}));
    const Tensor causal_weights = attention_weights(q, k, {.causal = true});
    const Tensor causal_out = scaled_dot_product_attention(q, k, v, {.causal = true});
    const std::vector<float> w = weights.to_vector(), cw = causal_weights.to_vector();
    print_matrix(fmt::format("no mask (each row: one query's weights over the {} keys):", T), w, T,
                 T);
    print_matrix("causal mask (query i sees keys 0..i):", cw, T, T);
    fmt::print("\n");
    int above_diagonal_zeros = 0;
    bool above_diagonal_all_zero = true;
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = i + 1; j < T; ++j) {
        above_diagonal_zeros += cw[i * T + j] == 0.0f;
        above_diagonal_all_zero = above_diagonal_all_zero && cw[i * T + j] == 0.0f;
      }
    const double attention_sum_error = std::max(row_sum_error(w, T), row_sum_error(cw, T));
    const double by_hand_error = max_abs_diff(w, by_hand.to_vector());
    const double output_error =
        max_abs_diff(causal_out.to_vector(), matmul(causal_weights, v).to_vector());
    checks.expect(attention_sum_error <= 1e-5,
                  fmt::format("every row of weights is >= 0 and sums to 1 (worst {:.1e})",
                              attention_sum_error));
    checks.expect(above_diagonal_all_zero,
                  fmt::format("causal: the {} weights above the diagonal are exactly 0",
                              above_diagonal_zeros));
    checks.expect(by_hand_error <= 1e-6,
                  fmt::format("attention_weights = softmax(Q K^T / sqrt(d)) by hand ({:.1e})",
                              by_hand_error));
    checks.expect(output_error <= 1e-6,
                  fmt::format("scaled_dot_product_attention = weights V ({:.1e})", output_error));

    // Sharpening: scores x beta is softmax at temperature 1 / beta.
    fmt::print("\n  {:<15}{:<{}}   {:>15}   {:>19}\n", "scores x beta", "  last query's weights",
               8 * T, "mean max weight", "mean entropy (nats)");
    std::vector<double> mean_max, mean_entropy;
    for (float beta : {0.25f, 1.0f, 4.0f, 16.0f, 64.0f}) {
      const std::vector<float> sharp =
          attention_weights(q, k, {.scale = beta / std::sqrt(float{d})}).to_vector();
      double max_sum = 0, entropy_sum = 0;
      for (int64_t i = 0; i < T; ++i) {
        max_sum += *std::max_element(&sharp[i * T], &sharp[i * T] + T);
        entropy_sum += entropy_nats(&sharp[i * T], T);
      }
      mean_max.push_back(max_sum / T);
      mean_entropy.push_back(entropy_sum / T);
      fmt::print("  {:<15g}{}   {:>15.4f}   {:>19.4f}\n", beta, format_row(&sharp[(T - 1) * T], T),
                 mean_max.back(), mean_entropy.back());
    }
    fmt::print("  (one-hot: max weight 1, entropy 0; uniform: 1/{} = {:.2f}, ln {} = {:.4f})\n\n",
               T, 1.0 / T, T, std::log(static_cast<double>(T)));
    bool sharper = true;
    for (size_t i = 1; i < mean_max.size(); ++i)
      sharper = sharper && mean_max[i] > mean_max[i - 1] && mean_entropy[i] < mean_entropy[i - 1];
    checks.expect(sharper,
                  fmt::format("larger beta, sharper rows: mean max weight {:.2f} -> {:.2f}",
                              mean_max.front(), mean_max.back()));

    // MultiheadAttention: 2 heads of d = 4 on learned projections of E = 8 features.
    // Its attn_mask marks what is masked OUT (nonzero), as nn.MultiheadAttention's does.
    constexpr int64_t B = 2, E = 8, H = 2;
    MultiheadAttention mha(E, H, true, gen);
    const Tensor x = randn({B, T, E}, gen);
    std::vector<int64_t> future(T * T);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) future[i * T + j] = j > i;
    const MultiheadAttentionOutput result =
        mha.forward(x, x, x, Tensor(), from_vector(future, {T, T}));
    const std::vector<float> mha_w = result.weights.to_vector();
    bool mha_causal = true;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = i + 1; j < T; ++j)
          mha_causal = mha_causal && mha_w[(b * T + i) * T + j] == 0;
    fmt::print("  MultiheadAttention(E = {}, {} heads): x {} -> output {}, weights {}\n", E, H,
               shape_str(x.shape()), shape_str(result.output.shape()),
               shape_str(result.weights.shape()));
    checks.expect(
        result.output.shape() == x.shape() && mha_causal && row_sum_error(mha_w, T) <= 1e-5,
        "MultiheadAttention keeps x's shape; its causal weights sum to 1 with 0 above "
        "the diagonal");

    // The figure: into --out, or a temporary directory for a smoke run without one.
    std::filesystem::path dir = out_dir;
    examples::TemporaryDir temporary;
    if (flags.smoke && out_opt->count() == 0) dir = temporary.make("bridle_relatives_XXXXXX");
    const std::string svg_path = (dir / "softmax_relatives.svg").string();
    make_figure(logits, probs_at_1, gaps, two_class, scales, support).save(svg_path);
    checks.expect(svg::is_complete_svg(svg_path), "the figure " + svg_path + " was written");
    fmt::print("\nfigure: {} ({} bytes)\n", svg_path, std::filesystem::file_size(svg_path));

    if (checks.failed() > 0) spdlog::error("{} check(s) failed", checks.failed());
    examples::report_metrics(flags, {{"example", "softmax_relatives"},
                                     {"exact_zeros", zeros_json},
                                     {"sparsemax_support_x0.5_x1_x2", sparse_support},
                                     {"bisect_alpha2_vs_sparsemax", alpha2_error},
                                     {"bisect_alpha1.001_vs_softmax", near_softmax.back()},
                                     {"causal_zeros", above_diagonal_zeros},
                                     {"sdpa_vs_weights_v", output_error},
                                     {"mean_max_weight_by_beta", mean_max},
                                     {"checks_failed", checks.failed()},
                                     {"svg", temporary.path().empty() ? svg_path : ""},
                                     {"smoke", flags.smoke}});
    return checks.failed() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
