// temperature: what the temperature tau does to softmax(x / tau).
//
// What it teaches: dividing the logits by tau before the softmax keeps their
// order but changes how sure the distribution is, since
//   p_i / p_j = exp((x_i - x_j) / tau).
// tau < 1 sharpens it, and as tau -> 0 it becomes the one-hot of the argmax
// (hardmax); tau > 1 flattens it, and as tau -> infinity it becomes uniform, 1/C
// for each of the C classes. The entropy goes from 0 nats (one-hot) to ln C
// (uniform). This is the knob of sampling from a language model, of knowledge
// distillation (soft targets at tau > 1) and of Gumbel-softmax (tau -> 0).
// bridle::softmax(x, dim, temperature) computes it in one pass (ops/softmax.h).
//
// Run:    ./build/examples/temperature [--out DIR] [--logits 2,1,0.5,-1] [--taus 0.5,1,2,5]
// Expect: a table of the probabilities, the largest one and the entropy for each
//         tau, e.g. for the default logits [2, 1, 0.5, -1]:
//           tau = 1:  p = 0.6095 0.2242 0.1360 0.0303, entropy 1.0144 nats
//           tau = 5:  p = 0.3217 0.2634 0.2383 0.1766, entropy 1.3642 nats (ln 4 = 1.3863)
//         two checks of the limits (tau = 0.01 is hardmax within 1e-6, tau = 1000
//         uniform within 1e-3; the program fails if not), and DIR/temperature.svg:
//         a bar chart of the probabilities per class for each tau, each class's
//         probability against tau (log axis, 0.05 to 50) and the entropy against tau.
//         --smoke writes the figure to a temporary directory (or --out), checks it
//         and the limits, and exits nonzero if anything is off.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "bridle.h"
#include "common/example_main.h"
#include "common/svg_plot.h"

using namespace bridle;
namespace svg = examples::svg;

namespace {

// The probabilities of softmax(x / tau) for a 1-D x, and their summaries.
struct Row {
  std::string name;  // "0.5", "-> 0 (hardmax)", ...
  std::vector<float> p;
  double max_p = 0, entropy = 0;
};

// H(p) = -sum_j p_j ln p_j in nats, with 0 ln 0 = 0.
double entropy_nats(const std::vector<float>& p) {
  double h = 0;
  for (float v : p)
    if (v > 0) h -= v * std::log(static_cast<double>(v));
  return h;
}

Row make_row(std::string name, const Tensor& probs) {
  Row row{std::move(name), probs.to_vector()};
  row.max_p = *std::max_element(row.p.begin(), row.p.end());
  row.entropy = entropy_nats(row.p);
  return row;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double{a[i]} - b[i]));
  return d;
}

std::string join(const std::vector<float>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}{:g}", i ? ", " : "", v[i]);
  return out;
}

// Cold (small tau: blue) to hot (large tau: red), t in [0, 1].
std::string temperature_color(double t) {
  static const int kStops[][3] = {{37, 52, 148},  {44, 127, 184}, {65, 182, 196},
                                  {253, 174, 97}, {244, 109, 67}, {215, 48, 39}};
  const int n = static_cast<int>(std::size(kStops)) - 1;
  const double s = std::clamp(t, 0.0, 1.0) * n;
  const int i = std::min(static_cast<int>(s), n - 1);
  const double f = s - i;
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<int>(std::lround(kStops[i][c] + f * (kStops[i + 1][c] - kStops[i][c])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

// The three panels: bars per class for each tau; p_j against tau; entropy against tau.
svg::Figure make_figure(const std::vector<float>& logits, const std::vector<std::string>& names,
                        const std::vector<Row>& bars, const std::vector<double>& sweep_taus,
                        const std::vector<Row>& sweep) {
  const size_t C = logits.size();
  svg::Figure figure(
      1100, 860,
      fmt::format("Softmax with temperature: softmax(x / τ) for x = [{}]", join(logits)));
  figure.text(550, 52,
              "small τ sharpens towards the argmax (hardmax); large τ flattens towards uniform "
              "1/C; the order of the classes never changes",
              13, "middle", "#666666");

  svg::BarChart chart{.title = "Probability of each class",
                      .x_label = "class (logit)",
                      .y_label = "probability",
                      .y_max = 1.05,
                      .value_labels = C <= 8};
  for (size_t j = 0; j < C; ++j)
    chart.groups.push_back(fmt::format("{} ({:g})", names[j], logits[j]));
  for (size_t i = 0; i < bars.size(); ++i) {
    svg::BarSeries series{.label = bars[i].name,
                          .color = temperature_color(static_cast<double>(i) / (bars.size() - 1))};
    series.values.assign(bars[i].p.begin(), bars[i].p.end());
    chart.series.push_back(std::move(series));
  }
  chart.ref_lines.push_back(
      {.value = 1.0 / C, .label = fmt::format("1/C = {:.3g}", 1.0 / C), .in_legend = true});
  figure.draw({20, 70, 1060, 390}, chart);

  svg::LinePlot lines{.title = "Each class's probability as τ sweeps",
                      .x_label = "temperature τ (log scale)",
                      .y_label = "probability",
                      .log_x = true,
                      .y_min = 0,
                      .y_max = 1.02};
  for (size_t j = 0; j < C; ++j) {
    svg::LineSeries series{.label = fmt::format("{} ({:g})", names[j], logits[j]), .x = sweep_taus};
    for (const Row& row : sweep) series.y.push_back(row.p[j]);
    lines.series.push_back(std::move(series));
  }
  lines.ref_lines = {{.value = 1.0 / C, .label = "1/C", .in_legend = true},
                     {.value = 1.0, .vertical = true, .label = "τ = 1"}};
  figure.draw({20, 480, 620, 370}, lines);

  svg::LinePlot entropy{.title = "Entropy of the distribution",
                        .x_label = "temperature τ (log scale)",
                        .y_label = "entropy (nats)",
                        .log_x = true,
                        .y_min = 0,
                        .y_max = std::log(static_cast<double>(C)) * 1.1,
                        .legend = false};
  svg::LineSeries h{.label = "entropy", .x = sweep_taus, .color = "#59a14f"};
  for (const Row& row : sweep) h.y.push_back(row.entropy);
  entropy.series.push_back(std::move(h));
  entropy.ref_lines = {
      {.value = std::log(static_cast<double>(C)),
       .label = fmt::format("ln {} = {:.3f} (uniform)", C, std::log(static_cast<double>(C)))},
      {.value = 1.0, .vertical = true, .label = "τ = 1"}};
  figure.draw({660, 480, 420, 370}, entropy);
  return figure;
}

// A written figure: a whole SVG document of a plausible size.
void check_svg(const std::string& path) {
  BRIDLE_CHECK(svg::is_complete_svg(path),
               "temperature: the figure '{}' was not written, or is not a complete SVG document",
               path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Softmax temperature: from hardmax (tau -> 0) to uniform (tau -> infinity)"};
  examples::CommonFlags flags;
  std::vector<float> logits = {2.0f, 1.0f, 0.5f, -1.0f};
  std::vector<float> taus = {0.5f, 1.0f, 2.0f, 5.0f};
  std::string out_dir = ".";
  auto* logits_opt = app.add_option("--logits", logits, "The logits, comma-separated")
                         ->delimiter(',')
                         ->capture_default_str();
  app.add_option("--taus", taus, "Temperatures for the table and the bars, comma-separated")
      ->delimiter(',')
      ->check(CLI::Validator(
          [](std::string& text) {
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            return !text.empty() && *end == '\0' && v > 0 && std::isfinite(v)
                       ? std::string()
                       : "a temperature must be a positive number, not '" + text + "'";
          },
          "TAU > 0"))
      ->capture_default_str();
  auto* out_opt =
      app.add_option("--out", out_dir, "Directory for temperature.svg")->capture_default_str();
  app.add_flag("--smoke", flags.smoke,
               "Write the figure to a temporary directory (or --out) and check it (for CI)");
  app.add_option("--metrics-out", flags.metrics_out,
                 "Also write the final JSON metrics to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    const size_t C = logits.size();
    BRIDLE_CHECK(C >= 2 && C <= 64, "--logits: give 2 to 64 values, not {}", C);
    for (float v : logits) BRIDLE_CHECK(std::isfinite(v), "--logits: {} is not a finite number", v);
    std::vector<std::string> names = {"cat", "dog", "bird", "fish"};
    if (logits_opt->count() > 0) {
      names.clear();
      for (size_t j = 0; j < C; ++j) names.push_back(fmt::format("class {}", j));
    }
    std::sort(taus.begin(), taus.end());
    const Tensor x = from_vector(logits, {static_cast<int64_t>(C)});
    const std::vector<float> uniform(C, 1.0f / C);
    const std::vector<float> onehot = hardmax(x).to_vector();

    // The table: the two limits around softmax at each tau.
    std::vector<Row> rows;
    rows.push_back(make_row("-> 0 (hardmax)", hardmax(x)));
    rows.push_back(make_row("0.01", softmax(x, 0, 0.01f)));
    for (float tau : taus) rows.push_back(make_row(fmt::format("{:g}", tau), softmax(x, 0, tau)));
    rows.push_back(make_row("1000", softmax(x, 0, 1000.0f)));
    rows.push_back(make_row("-> inf (1/C)", from_vector(uniform, {static_cast<int64_t>(C)})));

    fmt::print("\nsoftmax(x / tau)_j = exp(x_j / tau) / sum_k exp(x_k / tau),  x = [{}]\n\n",
               join(logits));
    size_t width = 9;  // "p(name)" and a gap
    for (const auto& name : names) width = std::max(width, name.size() + 5);
    std::string header = fmt::format("  {:<16}", "tau");
    for (size_t j = 0; j < C && j < 8; ++j)
      header += fmt::format("{:>{}}", "p(" + names[j] + ")", width);
    if (C > 8) header += fmt::format("{:>{}}", "...", width);
    header += fmt::format("{:>10}{:>17}", "max p", "entropy (nats)");
    fmt::print("{}\n  {}\n", header, std::string(header.size() - 2, '-'));
    for (const Row& row : rows) {
      std::string line = fmt::format("  {:<16}", row.name);
      for (size_t j = 0; j < C && j < 8; ++j) line += fmt::format("{:>{}.4f}", row.p[j], width);
      if (C > 8) line += fmt::format("{:>{}}", "", width);
      fmt::print("{}{:>10.4f}{:>17.4f}\n", line, row.max_p, row.entropy);
    }
    fmt::print(
        "  (ln C = ln {} = {:.4f} nats is the most any distribution over {} classes has)\n\n", C,
        std::log(static_cast<double>(C)), C);

    // Why: only differences of logits matter, and tau divides them.
    std::vector<size_t> order(C);
    for (size_t j = 0; j < C; ++j) order[j] = j;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return logits[a] > logits[b]; });
    const size_t a = order[0], b = order[1];
    const double gap = double{logits[a]} - logits[b];
    std::string ratios;
    for (float tau : taus)
      ratios += fmt::format("  {:.3g} at tau = {:g};", std::exp(gap / tau), tau);
    ratios.pop_back();
    fmt::print("p({}) / p({}) = exp(({:g} - {:g}) / tau):{}\n\n", names[a], names[b], logits[a],
               logits[b], ratios);

    // The limits, checked.
    const double hardmax_error = max_abs_diff(rows[1].p, onehot);
    const double uniform_error = max_abs_diff(rows[rows.size() - 2].p, uniform);
    const bool hardmax_ok = hardmax_error <= 1e-6, uniform_ok = uniform_error <= 1e-3;
    const float range = *std::max_element(logits.begin(), logits.end()) -
                        *std::min_element(logits.begin(), logits.end());
    fmt::print("check tau -> 0:   max |softmax(x, 0.01) - hardmax(x)| = {:.2e} (<= 1e-6: {})\n",
               hardmax_error, hardmax_ok ? "ok" : "FAILED");
    fmt::print("check tau -> inf: max |softmax(x, 1000) - 1/C|        = {:.2e} (<= 1e-3: {})\n",
               uniform_error, uniform_ok ? "ok" : "FAILED");
    if (!hardmax_ok)
      spdlog::error(
          "the top two logits differ by only {:g}: softmax is within exp(-gap / tau) of hardmax, "
          "so tau = 0.01 is one-hot only for a unique maximum and a gap above about 0.15",
          gap);
    if (!uniform_ok)
      spdlog::error(
          "the logits span {:g}: softmax at tau = 1000 is uniform only to about span / (1000 C)",
          range);

    // The sweep for the line plots: tau from 0.05 to 50, evenly on a log scale.
    std::vector<double> sweep_taus;
    std::vector<Row> sweep;
    const int points = 161;
    for (int i = 0; i < points; ++i) {
      const double tau = 0.05 * std::pow(1000.0, static_cast<double>(i) / (points - 1));
      sweep_taus.push_back(tau);
      sweep.push_back(make_row("", softmax(x, 0, static_cast<float>(tau))));
    }
    std::vector<Row> bars = {rows.front()};
    for (size_t i = 2; i < rows.size() - 2; ++i) bars.push_back(rows[i]);
    bars.push_back(rows.back());
    bars.front().name = "τ → 0 (hardmax)";
    for (size_t i = 1; i + 1 < bars.size(); ++i) bars[i].name = "τ = " + bars[i].name;
    bars.back().name = "τ → ∞ (uniform)";

    // The figure: into --out, or a temporary directory for a smoke run without one.
    std::filesystem::path dir = out_dir;
    examples::TemporaryDir temporary;
    if (flags.smoke && out_opt->count() == 0) dir = temporary.make("bridle_temperature_XXXXXX");
    const std::string svg_path = (dir / "temperature.svg").string();
    make_figure(logits, names, bars, sweep_taus, sweep).save(svg_path);
    check_svg(svg_path);
    fmt::print("figure: {} ({} bytes)\n", svg_path, std::filesystem::file_size(svg_path));

    nlohmann::json entropies = nlohmann::json::object();
    for (size_t i = 1; i + 1 < rows.size(); ++i) entropies[rows[i].name] = rows[i].entropy;
    examples::report_metrics(flags, {{"example", "temperature"},
                                     {"hardmax_error", hardmax_error},
                                     {"uniform_error", uniform_error},
                                     {"entropy_nats", entropies},
                                     {"svg", temporary.path().empty() ? svg_path : ""},
                                     {"smoke", flags.smoke}});
    return hardmax_ok && uniform_ok ? 0 : 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
