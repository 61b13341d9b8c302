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
// A line plot can also hold boxes (filled rectangles in data coordinates, drawn
// under the lines): histogram bars, shaded gaps or bands.
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

// Filled rectangles [x0[i], x1[i]] x [y0[i], y1[i]] in data coordinates, one
// legend entry for all of them.
struct BoxSeries {
  std::string label = {};  // in the legend (a filled swatch); empty: not listed
  std::vector<double> x0 = {}, x1 = {}, y0 = {}, y1 = {};
  std::string color = {};   // the fill; empty: the palette's next color
  double opacity = 1.0;     // of the fill
  std::string stroke = {};  // an outline color; empty: none
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
  std::vector<BoxSeries> boxes = {};  // drawn under the series; a plot needs series or boxes
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

// True when path holds a whole SVG document of a plausible size (a figure that
// was written out, not cut short): for the examples' --smoke checks.
bool is_complete_svg(const std::string& path);

}  // namespace bridle::examples::svg
