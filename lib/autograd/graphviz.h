// Dumps the graph behind a tensor as Graphviz DOT, for teaching and debugging.
//
// One node per recorded op (name and output shape) and per leaf (shape, and
// whether it requires grad); edges point from inputs to the op that used them.
// Render with: dot -Tpng graph.dot -o graph.png
#pragma once

#include <string>

#include "core/tensor.h"

namespace bridle {

std::string to_dot(const Tensor& root);
void write_dot(const Tensor& root, const std::string& path);

}  // namespace bridle
