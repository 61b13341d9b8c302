// Graphviz pictures of the tape; see graphviz.h.
#include "autograd/graphviz.h"

#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "autograd/node.h"

extern char** environ;

namespace bridle {
namespace {

// Every tensor reachable from root (root first), each once. The walk follows
// grad_fn inputs, as backward does.
std::vector<Tensor> reachable_tensors(const Tensor& root) {
  std::vector<Tensor> order{root}, stack{root};
  std::unordered_set<const TensorImpl*> seen{root.impl_ptr().get()};
  while (!stack.empty()) {
    Tensor t = stack.back();
    stack.pop_back();
    if (!t.grad_fn()) continue;
    for (const Tensor& input : t.grad_fn()->inputs()) {
      if (!input.defined()) continue;  // an optional input left out (e.g. no bias)
      if (seen.insert(input.impl_ptr().get()).second) {
        order.push_back(input);
        stack.push_back(input);
      }
    }
  }
  return order;
}

double l2_norm(const Tensor& t) {
  double sum = 0;
  for (float v : t.to_vector()) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

// Quotes a label for DOT: backslashes and quotes escaped.
std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string to_dot(const Tensor& root, const DotOptions& options) {
  std::unordered_map<const TensorImpl*, std::string> names;
  for (const auto& [name, tensor] : options.names)
    if (tensor.defined()) names.emplace(tensor.impl_ptr().get(), name);

  std::vector<Tensor> tensors = reachable_tensors(root);
  std::unordered_map<const TensorImpl*, size_t> ids;
  for (size_t i = 0; i < tensors.size(); ++i) ids.emplace(tensors[i].impl_ptr().get(), i);

  std::string dot = "digraph bridle {\n  rankdir=BT;\n  node [fontname=\"Helvetica\"];\n";
  for (size_t id = 0; id < tensors.size(); ++id) {
    const Tensor& t = tensors[id];
    std::vector<std::string> lines;
    auto name = names.find(t.impl_ptr().get());
    if (t.grad_fn()) lines.push_back(t.grad_fn()->name());
    if (name != names.end()) lines.push_back(name->second);
    lines.push_back(shape_str(t.shape()));
    if (!t.grad_fn() && t.requires_grad()) lines.push_back("requires_grad");
    if (options.gradient_norms && t.impl().grad)
      lines.push_back(fmt::format("|grad| = {:.3g}", l2_norm(Tensor(t.impl().grad))));
    std::string label;
    for (const std::string& line : lines) label += (label.empty() ? "" : "\\n") + escape(line);
    if (t.grad_fn())
      dot += fmt::format("  t{} [shape=box, style=filled, fillcolor=\"#dbe9f6\", label=\"{}\"];\n",
                         id, label);
    else
      dot += fmt::format("  t{} [shape=ellipse, label=\"{}\"];\n", id, label);
    if (!t.grad_fn()) continue;
    for (const Tensor& input : t.grad_fn()->inputs())
      if (input.defined())
        dot += fmt::format("  t{} -> t{};\n", ids.at(input.impl_ptr().get()), id);
  }
  return dot + "}\n";
}

void write_dot(const Tensor& root, const std::string& path, const DotOptions& options) {
  std::ofstream out(path);
  BRIDLE_CHECK(out.good(), "write_dot: cannot open '{}' for writing", path);
  out << to_dot(root, options);
  BRIDLE_CHECK(out.good(), "write_dot: writing '{}' failed", path);
}

void retain_grads(const Tensor& root) {
  for (const Tensor& t : reachable_tensors(root))
    if (t.grad_fn()) t.impl().retains_grad = true;
}

bool graphviz_available() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/dot";
    if (access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool render_dot(const std::string& dot_text, const std::string& path) {
  namespace fs = std::filesystem;
  std::string format = fs::path(path).extension().string();
  if (!format.empty()) format.erase(0, 1);  // ".svg" -> "svg"
  BRIDLE_CHECK(format == "png" || format == "svg" || format == "pdf",
               "render_dot: cannot tell the picture format of '{}': end it in .png, .svg or .pdf",
               path);
  if (!graphviz_available()) {
    std::string dot_path = fs::path(path).replace_extension(".dot").string();
    std::ofstream out(dot_path);
    out << dot_text;
    BRIDLE_CHECK(out.good(), "render_dot: cannot write '{}'", dot_path);
    spdlog::warn(
        "Graphviz's dot is not installed (Debian: apt install graphviz); wrote {} "
        "instead: render it with dot -T{} {} -o {}",
        dot_path, format, dot_path, path);
    return false;
  }

  // dot reads the graph from a file beside the picture and writes the picture.
  std::string input_path = path + ".in.dot";
  {
    std::ofstream out(input_path);
    out << dot_text;
    BRIDLE_CHECK(out.good(), "render_dot: cannot write '{}'", input_path);
  }
  std::string format_flag = "-T" + format;
  std::vector<std::string> args{"dot", format_flag, "-o", path, input_path};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int spawn_error = posix_spawnp(&pid, "dot", nullptr, nullptr, argv.data(), environ);
  int status = 0;
  if (spawn_error == 0) waitpid(pid, &status, 0);
  std::error_code ignored;
  fs::remove(input_path, ignored);
  BRIDLE_CHECK(spawn_error == 0, "render_dot: cannot run dot: {}", std::strerror(spawn_error));
  BRIDLE_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "render_dot: dot -T{} failed writing '{}' (exit status {})", format, path,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return true;
}

bool render_graph(const Tensor& root, const std::string& path, const DotOptions& options) {
  return render_dot(to_dot(root, options), path);
}

}  // namespace bridle
