// The SVG writer for example figures; see svg_plot.h.
#include "common/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace bridle::examples::svg {
namespace {

constexpr const char* kFont = "Helvetica, Arial, sans-serif";
constexpr const char* kAxisColor = "#444444";
constexpr const char* kGridColor = "#e3e3e3";
constexpr double kTickFont = 11, kLabelFont = 13, kTitleFont = 15, kLegendFont = 12;
// A white outline under text drawn over lines and bars, so it stays readable.
constexpr const char* kHalo = "stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\"";

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Code points in a UTF-8 string: a rough text width is glyphs * 0.6 * font size.
double text_width(const std::string& text, double size) {
  size_t glyphs = 0;
  for (unsigned char c : text) glyphs += (c & 0xC0) != 0x80;
  return 0.6 * size * static_cast<double>(glyphs);
}

std::string num(double v) { return fmt::format("{:.2f}", v); }

// A tick label: the shortest text for a value that is already rounded to its step.
std::string tick_label(double v) {
  if (std::abs(v) < 1e-12) return "0";
  return fmt::format("{:g}", v);
}

// Ticks at 1, 2 or 5 x 10^k covering [lo, hi] in about `target` steps.
std::vector<double> linear_ticks(double lo, double hi, int target = 5) {
  const double raw = (hi - lo) / target;
  if (!(raw > 0) || !std::isfinite(raw)) return {lo};
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1)
    ticks.push_back(k * step);
  return ticks;
}

// 1, 2, 5 x 10^k inside [lo, hi] (only the powers of ten over many decades).
std::vector<double> log_ticks(double lo, double hi) {
  const int first = static_cast<int>(std::floor(std::log10(lo)));
  const int last = static_cast<int>(std::ceil(std::log10(hi)));
  const bool dense = last - first <= 4;
  std::vector<double> ticks;
  for (int d = first; d <= last; ++d)
    for (double m : {1.0, 2.0, 5.0}) {
      if (!dense && m != 1.0) continue;
      const double v = m * std::pow(10.0, d);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
    }
  return ticks;
}

// Maps data coordinates to pixels inside a plot's inner rectangle.
struct Scale {
  double lo, hi, px_lo, px_hi;
  bool log = false;
  double operator()(double v) const {
    const double t =
        log ? (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) : (v - lo) / (hi - lo);
    return px_lo + t * (px_hi - px_lo);
  }
};

struct LegendEntry {
  std::string label, color;
  bool line = false, dashed = false;
  double opacity = 1.0;  // of a filled swatch
};

// Horizontal reference lines labelled in the legend: a dashed swatch each.
void add_ref_entries(std::vector<LegendEntry>& legend, const std::vector<RefLine>& lines) {
  for (const auto& l : lines)
    if (l.in_legend && !l.vertical && !l.label.empty())
      legend.push_back({l.label, l.color, true, true});
}

double legend_width(const std::vector<LegendEntry>& entries) {
  double widest = 0;
  for (const auto& e : entries) widest = std::max(widest, text_width(e.label, kLegendFont));
  return entries.empty() ? 0 : widest + 42;
}

}  // namespace

const std::string& color(size_t i) {
  static const std::vector<std::string> kTableau10 = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                                      "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                                      "#9c755f", "#bab0ac"};
  return kTableau10[i % kTableau10.size()];
}

Figure::Figure(double width, double height, std::string title)
    : width_(width), height_(height), title_(std::move(title)) {
  if (!title_.empty()) text(width_ / 2, 30, title_, 19, "middle", "#222222");
}

void Figure::text(double x, double y, const std::string& text, double size,
                  const std::string& anchor, const std::string& color) {
  body_ += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{}\" fill=\"{}\"{}>{}</text>\n",
      num(x), num(y), size, anchor, color, size >= kTitleFont ? " font-weight=\"bold\"" : "",
      escape(text));
}

namespace {

// The parts every plot shares: frame, grid, ticks, labels, title and legend.
// Returns the inner rectangle, where the data goes.
struct Axes {
  Rect inner;
  Scale x, y;
};

Rect inner_rect(const Rect& area, const std::vector<LegendEntry>& legend, bool has_title) {
  const double left = 62, right = 12 + legend_width(legend), top = has_title ? 34 : 12, bottom = 48;
  return {area.x + left, area.y + top, area.width - left - right, area.height - top - bottom};
}

void draw_legend(std::string& out, const Rect& inner, const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return;
  const double x = inner.x + inner.width + 14, row = 20;
  const double w = legend_width(entries) - 4, h = row * entries.size() + 8;
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"#ffffff\" "
      "stroke=\"#d0d0d0\"/>\n",
      num(x), num(inner.y), num(w), num(h));
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const double cy = inner.y + 4 + row * (i + 0.5);
    if (e.line)
      out += fmt::format(
          "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"{}/>\n",
          num(x + 8), num(cy), num(x + 30), num(cy), e.color,
          e.dashed ? " stroke-dasharray=\"6 4\"" : "");
    else
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"14\" rx=\"2\" fill=\"{}\"{}/>\n",
          num(x + 12), num(cy - 7), e.color,
          e.opacity < 1 ? fmt::format(" fill-opacity=\"{}\"", e.opacity) : "");
    out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"#333333\">{}</text>\n",
                       num(x + 36), num(cy + 4), kLegendFont, escape(e.label));
  }
}

void draw_frame(std::string& out, const Rect& area, const Axes& axes, const std::string& title,
                const std::string& x_label, const std::string& y_label) {
  const Rect& r = axes.inner;
  if (!title.empty())
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" font-weight=\"bold\" text-anchor=\"middle\" "
        "fill=\"#222222\">{}</text>\n",
        num(r.x + r.width / 2), num(area.y + 20), kTitleFont, escape(title));
  if (!x_label.empty())
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n",
        num(r.x + r.width / 2), num(r.y + r.height + 40), kLabelFont, kAxisColor, escape(x_label));
  if (!y_label.empty()) {
    const double x = area.x + 16, y = r.y + r.height / 2;
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"middle\" fill=\"{}\" "
        "transform=\"rotate(-90 {} {})\">{}</text>\n",
        num(x), num(y), kLabelFont, kAxisColor, num(x), num(y), escape(y_label));
  }
}

void draw_y_grid(std::string& out, const Axes& axes, const std::vector<double>& ticks) {
  const Rect& r = axes.inner;
  for (double t : ticks) {
    const double y = axes.y(t);
    out += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1\"/>\n",
        num(r.x), num(y), num(r.x + r.width), num(y), kGridColor);
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"end\" fill=\"{}\">{}</text>\n",
        num(r.x - 6), num(y + 4), kTickFont, kAxisColor, tick_label(t));
  }
}

void draw_ref_lines(std::string& out, const Axes& axes, const std::vector<RefLine>& lines) {
  const Rect& r = axes.inner;
  for (const auto& l : lines) {
    if (l.vertical) {
      const double x = axes.x(l.value);
      if (x < r.x - 0.5 || x > r.x + r.width + 0.5) continue;
      out += fmt::format(
          "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1.2\" "
          "stroke-dasharray=\"3 4\"/>\n",
          num(x), num(r.y), num(x), num(r.y + r.height), l.color);
      if (!l.label.empty())
        out += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{}\" {}>{}</text>\n",
                           num(x + 5), num(r.y + 14), kTickFont, l.color, kHalo, escape(l.label));
    } else {
      const double y = axes.y(l.value);
      if (y < r.y - 0.5 || y > r.y + r.height + 0.5) continue;
      out += fmt::format(
          "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1.5\" "
          "stroke-dasharray=\"7 5\"/>\n",
          num(r.x), num(y), num(r.x + r.width), num(y), l.color);
      if (!l.label.empty() && !l.in_legend)
        out += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"end\" fill=\"{}\" {}>{}"
            "</text>\n",
            num(r.x + r.width - 4), num(y - 5), kTickFont, l.color, kHalo, escape(l.label));
    }
  }
}

void draw_axis_lines(std::string& out, const Rect& r) {
  out +=
      fmt::format("<path d=\"M{} {} V{} H{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\"/>\n",
                  num(r.x), num(r.y), num(r.y + r.height), num(r.x + r.width), kAxisColor);
}

}  // namespace

void Figure::draw(const Rect& area, const LinePlot& plot) {
  BRIDLE_CHECK(!plot.series.empty() || !plot.boxes.empty(),
               "svg::Figure: the line plot '{}' has no series", plot.title);
  double x_lo = plot.x_min, x_hi = plot.x_max, y_lo = plot.y_min, y_hi = plot.y_max;
  double dx_lo = INFINITY, dx_hi = -INFINITY, dy_lo = INFINITY, dy_hi = -INFINITY;
  for (const auto& b : plot.boxes) {
    const size_t n = b.x0.size();
    BRIDLE_CHECK(b.x1.size() == n && b.y0.size() == n && b.y1.size() == n,
                 "svg::Figure: box series '{}' has {} x0, {} x1, {} y0 and {} y1 values", b.label,
                 n, b.x1.size(), b.y0.size(), b.y1.size());
    for (size_t i = 0; i < n; ++i) {
      dx_lo = std::min({dx_lo, b.x0[i], b.x1[i]}), dx_hi = std::max({dx_hi, b.x0[i], b.x1[i]});
      dy_lo = std::min({dy_lo, b.y0[i], b.y1[i]}), dy_hi = std::max({dy_hi, b.y0[i], b.y1[i]});
    }
  }
  for (const auto& s : plot.series) {
    BRIDLE_CHECK(s.x.size() == s.y.size(), "svg::Figure: series '{}' has {} x but {} y values",
                 s.label, s.x.size(), s.y.size());
    for (size_t i = 0; i < s.x.size(); ++i) {
      dx_lo = std::min(dx_lo, s.x[i]), dx_hi = std::max(dx_hi, s.x[i]);
      dy_lo = std::min(dy_lo, s.y[i]), dy_hi = std::max(dy_hi, s.y[i]);
    }
  }
  if (std::isnan(x_lo)) x_lo = dx_lo;
  if (std::isnan(x_hi)) x_hi = dx_hi;
  const double pad = 0.05 * std::max(dy_hi - dy_lo, 1e-9);
  if (std::isnan(y_lo)) y_lo = dy_lo - pad;
  if (std::isnan(y_hi)) y_hi = dy_hi + pad;
  BRIDLE_CHECK(x_hi > x_lo && y_hi > y_lo && (!plot.log_x || x_lo > 0),
               "svg::Figure: the line plot '{}' has an empty or invalid range x [{}, {}], "
               "y [{}, {}]{}",
               plot.title, x_lo, x_hi, y_lo, y_hi, plot.log_x ? " (log x needs x > 0)" : "");

  std::vector<LegendEntry> legend;
  std::vector<std::string> colors, box_colors;
  for (size_t i = 0; i < plot.boxes.size(); ++i) {
    const auto& b = plot.boxes[i];
    box_colors.push_back(b.color.empty() ? color(i) : b.color);
    if (plot.legend && !b.label.empty())
      legend.push_back({b.label, box_colors.back(), false, false, b.opacity});
  }
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const auto& s = plot.series[i];
    colors.push_back(s.color.empty() ? color(plot.boxes.size() + i) : s.color);
    if (plot.legend && !s.label.empty()) legend.push_back({s.label, colors.back(), true, s.dashed});
  }
  if (plot.legend) add_ref_entries(legend, plot.ref_lines);
  Axes axes;
  axes.inner = inner_rect(area, legend, !plot.title.empty());
  const Rect& r = axes.inner;
  axes.x = {x_lo, x_hi, r.x, r.x + r.width, plot.log_x};
  axes.y = {y_lo, y_hi, r.y + r.height, r.y};

  std::string& out = body_;
  out += "<g>\n";
  draw_y_grid(out, axes, linear_ticks(y_lo, y_hi));
  for (double t : plot.log_x ? log_ticks(x_lo, x_hi) : linear_ticks(x_lo, x_hi)) {
    const double x = axes.x(t);
    out += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1\"/>\n",
        num(x), num(r.y), num(x), num(r.y + r.height), kGridColor);
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n",
        num(x), num(r.y + r.height + 17), kTickFont, kAxisColor, tick_label(t));
  }
  draw_ref_lines(out, axes, plot.ref_lines);

  // The data, clipped to the inner rectangle.
  const std::string clip = fmt::format("clip{}", clip_count_++);
  out += fmt::format(
      "<clipPath id=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath>\n", clip,
      num(r.x), num(r.y), num(r.width), num(r.height));
  out += fmt::format("<g clip-path=\"url(#{})\">\n", clip);
  for (size_t i = 0; i < plot.boxes.size(); ++i) {
    const auto& b = plot.boxes[i];
    const std::string style = fmt::format(
        "fill=\"{}\"{}{}", box_colors[i],
        b.opacity < 1 ? fmt::format(" fill-opacity=\"{}\"", b.opacity) : "",
        b.stroke.empty() ? "" : fmt::format(" stroke=\"{}\" stroke-width=\"1\"", b.stroke));
    for (size_t k = 0; k < b.x0.size(); ++k) {
      const double xa = axes.x(b.x0[k]), xb = axes.x(b.x1[k]);
      const double ya = axes.y(b.y0[k]), yb = axes.y(b.y1[k]);
      out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" {}/>\n",
                         num(std::min(xa, xb)), num(std::min(ya, yb)), num(std::abs(xb - xa)),
                         num(std::abs(yb - ya)), style);
    }
  }
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const auto& s = plot.series[i];
    std::string points;
    for (size_t k = 0; k < s.x.size(); ++k)
      points += fmt::format("{}{},{}", k ? " " : "", num(axes.x(s.x[k])), num(axes.y(s.y[k])));
    out += fmt::format(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
        "stroke-linejoin=\"round\" stroke-linecap=\"round\"{}/>\n",
        points, colors[i], s.width, s.dashed ? " stroke-dasharray=\"7 5\"" : "");
    if (s.markers)
      for (size_t k = 0; k < s.x.size(); ++k)
        out += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{}\"/>\n",
                           num(axes.x(s.x[k])), num(axes.y(s.y[k])), colors[i]);
  }
  out += "</g>\n";
  draw_axis_lines(out, r);
  draw_frame(out, area, axes, plot.title, plot.x_label, plot.y_label);
  draw_legend(out, r, legend);
  out += "</g>\n";
}

void Figure::draw(const Rect& area, const BarChart& chart) {
  const size_t groups = chart.groups.size(), n_series = chart.series.size();
  BRIDLE_CHECK(groups > 0 && n_series > 0, "svg::Figure: the bar chart '{}' has no bars",
               chart.title);
  double top = -INFINITY;
  for (const auto& s : chart.series) {
    BRIDLE_CHECK(s.values.size() == groups,
                 "svg::Figure: bar series '{}' has {} values for {} groups", s.label,
                 s.values.size(), groups);
    for (double v : s.values) top = std::max(top, v);
  }
  const double y_lo = chart.y_min, y_hi = std::isnan(chart.y_max) ? top * 1.1 : chart.y_max;
  BRIDLE_CHECK(y_hi > y_lo, "svg::Figure: the bar chart '{}' has an empty range [{}, {}]",
               chart.title, y_lo, y_hi);

  std::vector<LegendEntry> legend;
  std::vector<std::string> colors;
  for (size_t i = 0; i < n_series; ++i) {
    colors.push_back(chart.series[i].color.empty() ? color(i) : chart.series[i].color);
    if (chart.legend) legend.push_back({chart.series[i].label, colors.back()});
  }
  if (chart.legend) add_ref_entries(legend, chart.ref_lines);
  Axes axes;
  axes.inner = inner_rect(area, legend, !chart.title.empty());
  const Rect& r = axes.inner;
  axes.x = {0, static_cast<double>(groups), r.x, r.x + r.width};
  axes.y = {y_lo, y_hi, r.y + r.height, r.y};

  std::string& out = body_;
  out += "<g>\n";
  draw_y_grid(out, axes, linear_ticks(y_lo, y_hi));
  const double group_w = r.width / groups, bar_w = group_w * 0.82 / n_series;
  for (size_t g = 0; g < groups; ++g) {
    const double x0 = r.x + g * group_w + group_w * 0.09;
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n",
        num(r.x + (g + 0.5) * group_w), num(r.y + r.height + 18), kLabelFont, kAxisColor,
        escape(chart.groups[g]));
    for (size_t s = 0; s < n_series; ++s) {
      const double v = std::clamp(chart.series[s].values[g], y_lo, y_hi);
      const double y = axes.y(v), base = axes.y(y_lo), x = x0 + s * bar_w;
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}: {:.4f}"
          "</title></rect>\n",
          num(x + 0.75), num(y), num(bar_w - 1.5), num(base - y), colors[s],
          escape(chart.series[s].label), chart.series[s].values[g]);
      if (chart.value_labels)
        out += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#555555\" "
            "{}>{:.2f}</text>\n",
            num(x + bar_w / 2), num(y - 3), kHalo, chart.series[s].values[g]);
    }
  }
  draw_ref_lines(out, axes, chart.ref_lines);
  draw_axis_lines(out, r);
  draw_frame(out, area, axes, chart.title, chart.x_label, chart.y_label);
  draw_legend(out, r, legend);
  out += "</g>\n";
}

std::string Figure::str() const {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"{2}\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
      "{3}</svg>\n",
      num(width_), num(height_), kFont, body_);
}

void Figure::save(const std::string& path) const {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  std::ofstream out(p);
  BRIDLE_CHECK(out.good(), "svg::Figure::save: cannot write '{}'", path);
  out << str();
  out.close();
  BRIDLE_CHECK(out.good(), "svg::Figure::save: writing '{}' failed", path);
}

bool is_complete_svg(const std::string& path) {
  std::ifstream in(path);
  if (!in.good()) return false;
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  return s.size() > 2000 && s.rfind("<?xml", 0) == 0 && s.find("<svg") != std::string::npos &&
         s.find("</svg>") != std::string::npos;
}

}  // namespace bridle::examples::svg
