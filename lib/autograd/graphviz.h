// Pictures of the graph behind a tensor, for teaching and debugging.
//
// to_dot() writes Graphviz DOT: one box per recorded op (its name and output
// shape) and one ellipse per leaf (its shape, its name when you pass one, and
// whether it requires grad); edges point from inputs to the op that used them.
// render_graph() turns that into a PNG, SVG or PDF with Graphviz's `dot`
// program when it is installed (Debian: graphviz).
//
// To label tensors with their gradient norms, run the backward first with
// retain_graph = true (a backward frees the graph otherwise) and, for the
// intermediate tensors, call retain_grads(root) before it:
//
//   Tensor loss = model.forward(x) ...;
//   retain_grads(loss);
//   loss.backward(/*retain_graph=*/true);
//   render_graph(loss, "graph.svg",
//                {.gradient_norms = true, .names = model.named_parameters()});
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace bridle {

struct DotOptions {
  // Adds "|grad| = ..." (the L2 norm) to every tensor that has a gradient.
  bool gradient_norms = false;
  // Names for leaves, e.g. a module's named_parameters() or {{"x", x}}.
  std::vector<std::pair<std::string, Tensor>> names = {};
};

std::string to_dot(const Tensor& root, const DotOptions& options = {});
void write_dot(const Tensor& root, const std::string& path, const DotOptions& options = {});

// Marks every intermediate tensor in the graph behind root with retain_grad(),
// so that a backward leaves their gradients in place for gradient_norms.
void retain_grads(const Tensor& root);

// Whether Graphviz's `dot` program is on the PATH.
bool graphviz_available();

// Renders DOT text to path; the format follows path's extension (.png, .svg or
// .pdf; anything else is an error). When `dot` is not installed it writes the
// DOT text to path with its extension replaced by .dot instead, logs how to
// render it, and returns false. Throws bridle::Error when dot fails.
bool render_dot(const std::string& dot_text, const std::string& path);

// render_dot(to_dot(root, options), path).
bool render_graph(const Tensor& root, const std::string& path, const DotOptions& options = {});

}  // namespace bridle
