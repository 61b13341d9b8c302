// A small SVG writer for the examples' figures: line plots and grouped bar charts.
//
// A Figure is a canvas of width x height pixels with an optional title; each plot
// is drawn into a rectangle of it, so one file can hold several panels:
//
//   Figure figure(960, 480, "Softmax temperature");
//   LinePlot plot{.title = "p vs tau", .x_label = "tau", .y_label = "p", .log_x = true};
//   plot.series.push_back({.label = "cat", .x = taus, .y = p_cat});
//   figure.draw({20, 50, 920, 410}, plot);
//   figure.save("out/temperature.svg");   // throws bridle::Error if it cannot write
//
// Plots get gridlines, ticks at "nice" values (1, 2, 5 x 10^k; on a log axis the
// same steps over the decades), axis labels and a legend. Colors default to the
// Tableau 10 palette. Text is escaped; UTF-8 (e.g. "τ") is fine. No dependencies.
#pragma once

#include <limits>
#include <string>
#include <vector>

namespace bridle::examples::svg {

// The Tableau 10 categorical palette; color(i) cycles through it.
const std::string& color(size_t i);

struct Rect {
  double x = 0, y = 0, width = 0, height = 0;  // pixels, y down
};

struct LineSeries {
  std::string label = {};  // in the legend; empty: not listed
  std::vector<double> x = {}, y = {};
  std::string color = {};  // empty: the palette's next color
  double width = 2.5;
  bool dashed = false;
  bool markers = false;  // a dot at each point
};

// A horizontal or vertical reference line across the plot, e.g. y = 1/C.
struct RefLine {
  double value = 0;
  bool vertical = false;
  std::string label = {};  // drawn next to the line, or listed in the legend
  std::string color = "#777777";
  bool in_legend = false;  // horizontal lines only: label it in the legend
};

struct LinePlot {
  std::string title = {}, x_label = {}, y_label = {};
  bool log_x = false;
  // Axis ranges; NaN: from the data (y padded by 5%).
  double x_min = std::numeric_limits<double>::quiet_NaN();
  double x_max = std::numeric_limits<double>::quiet_NaN();
  double y_min = std::numeric_limits<double>::quiet_NaN();
  double y_max = std::numeric_limits<double>::quiet_NaN();
  std::vector<LineSeries> series = {};
  std::vector<RefLine> ref_lines = {};
  bool legend = true;
};

// Bars grouped by category: one bar per series in each group.
struct BarSeries {
  std::string label = {};
  std::vector<double> values = {};  // one per group
  std::string color = {};           // empty: the palette's next color
};

struct BarChart {
  std::string title = {}, x_label = {}, y_label = {};
  std::vector<std::string> groups = {};  // category names along the x axis
  std::vector<BarSeries> series = {};
  double y_min = 0;
  double y_max = std::numeric_limits<double>::quiet_NaN();  // NaN: from the data
  std::vector<RefLine> ref_lines = {};                      // horizontal ones only
  bool value_labels = false;                                // print each bar's value above it
  bool legend = true;
};

class Figure {
 public:
  Figure(double width, double height, std::string title = "");
  void draw(const Rect& area, const LinePlot& plot);
  void draw(const Rect& area, const BarChart& chart);
  // Free text at (x, y); anchor is "start", "middle" or "end".
  void text(double x, double y, const std::string& text, double size = 13,
            const std::string& anchor = "start", const std::string& color = "#333333");
  std::string str() const;  // the whole SVG document
  // Writes str() to path (creating its parent directories); throws bridle::Error.
  void save(const std::string& path) const;

 private:
  double width_, height_;
  std::string title_;
  std::string body_;
  int clip_count_ = 0;  // ids for the plots' clip paths
};

}  // namespace bridle::examples::svg
