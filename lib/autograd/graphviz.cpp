// Graphviz DOT dump of the tape; see graphviz.h.
#include "autograd/graphviz.h"

#include <fstream>
#include <unordered_map>
#include <vector>

#include "autograd/node.h"

namespace bridle {

std::string to_dot(const Tensor& root) {
  std::string dot = "digraph bridle {\n  rankdir=BT;\n  node [fontname=\"Helvetica\"];\n";
  std::unordered_map<const TensorImpl*, int> ids;
  std::vector<Tensor> stack{root};
  auto id_of = [&](const Tensor& t, bool& fresh) {
    auto [it, inserted] = ids.emplace(t.impl_ptr().get(), static_cast<int>(ids.size()));
    fresh = inserted;
    return it->second;
  };
  bool fresh = false;
  id_of(root, fresh);
  while (!stack.empty()) {
    Tensor t = stack.back();
    stack.pop_back();
    int id = ids.at(t.impl_ptr().get());
    if (t.grad_fn()) {
      dot += fmt::format(
          "  t{} [shape=box, style=filled, fillcolor=\"#dbe9f6\", label=\"{}\\n{}\"];\n", id,
          t.grad_fn()->name(), shape_str(t.shape()));
      for (const Tensor& input : t.grad_fn()->inputs()) {
        if (!input.defined()) continue;  // an optional input left out (e.g. no bias)
        int input_id = id_of(input, fresh);
        dot += fmt::format("  t{} -> t{};\n", input_id, id);
        if (fresh) stack.push_back(input);
      }
    } else {
      dot += fmt::format("  t{} [shape=ellipse, label=\"{}{}\"];\n", id, shape_str(t.shape()),
                         t.requires_grad() ? "\\nrequires_grad" : "");
    }
  }
  return dot + "}\n";
}

void write_dot(const Tensor& root, const std::string& path) {
  std::ofstream out(path);
  BRIDLE_CHECK(out.good(), "write_dot: cannot open '{}' for writing", path);
  out << to_dot(root);
  BRIDLE_CHECK(out.good(), "write_dot: writing '{}' failed", path);
}

}  // namespace bridle
