// 01_scalar_autograd: the whole idea of reverse-mode autograd, on plain numbers.
//
// What it teaches (micrograd's Value, in C++, without the bridle library):
//   1. A Value holds a number, its gradient, the Values it was computed from and a
//      small backward closure that knows the local derivative of its op.
//   2. backward() sorts the graph so every Value comes after its inputs, then runs
//      the closures in reverse: the chain rule, one node at a time. Gradients are
//      *accumulated* (+=), so a Value used twice (b = a + a) gets both shares.
//   3. Every gradient is checked against a central finite difference, and the
//      graph is drawn with Graphviz (boxes: name | data | grad; ellipses: ops).
//   4. The same 100 lines train a small tanh network (3-4-4-1, 41 parameters) by
//      plain gradient descent.
//
// Run:    ./build/examples/01_scalar_autograd   (--graph FILE: where the picture goes;
//         --smoke: 10 training steps and the picture in a temporary directory, for CI)
// Expect: the neuron o = tanh(x1*w1 + x2*w2 + b) gives o = 0.7071 and do/dx1 = -1.5,
//         do/dw1 = 1.0, do/dx2 = 0.5, do/dw2 = 0.0, do/db = 0.5; every gradient (the
//         neuron's and each op's alone) within 1e-9 of its finite difference; b = a + a
//         gives db/da = 2; the graph in scalar_autograd.svg; the network's loss falls
//         6.2229, 0.1157 (step 10), ... 0.0076 (step 99), e.g. the last line is
//         {"example":"01_scalar_autograd","final_loss":0.0075873248376253,"graph_ok":true,
//          "initial_loss":6.22289419079026,"max_grad_error":4.0081493679622326e-10,
//          "reuse_ok":true,"steps":100}
// Next:   examples/02_backprop_by_hand
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bridle.h"  // only for render_dot (the picture) and bridle::Error
#include "common/example_main.h"

namespace {

// ---- The engine -------------------------------------------------------------------------------

struct Value;
// Values are shared: a result keeps its inputs alive, so the graph is a DAG of shared_ptrs.
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  double data = 0;
  double grad = 0;  // d(final output) / d(this), filled in by backward()
  std::vector<ValuePtr> parents;
  std::string op;     // "" for a leaf
  std::string label;  // a name for the table and the picture
  // Adds this Value's share of the gradient to its parents. It gets the result as an
  // argument instead of capturing it, since a result that owned itself would never be freed.
  std::function<void(const Value& result)> backward_step = [](const Value&) {};
};

ValuePtr leaf(double data, std::string label = "") {
  auto v = std::make_shared<Value>();
  v->data = data;
  v->label = std::move(label);
  return v;
}

ValuePtr result(double data, std::string op, std::vector<ValuePtr> parents,
                std::function<void(const Value&)> backward_step) {
  ValuePtr v = leaf(data);
  v->op = std::move(op);
  v->parents = std::move(parents);
  v->backward_step = std::move(backward_step);
  return v;
}

// Each op: compute the result now, and say how to pass a gradient back later.
ValuePtr operator+(const ValuePtr& a, const ValuePtr& b) {
  return result(a->data + b->data, "+", {a, b}, [a, b](const Value& out) {
    a->grad += out.grad;  // d(a+b)/da = 1
    b->grad += out.grad;
  });
}
ValuePtr operator*(const ValuePtr& a, const ValuePtr& b) {
  return result(a->data * b->data, "*", {a, b}, [a, b](const Value& out) {
    a->grad += b->data * out.grad;  // d(ab)/da = b
    b->grad += a->data * out.grad;
  });
}
ValuePtr pow(const ValuePtr& a, double k) {
  return result(std::pow(a->data, k), fmt::format("^{:g}", k), {a}, [a, k](const Value& out) {
    a->grad += k * std::pow(a->data, k - 1) * out.grad;  // d(a^k)/da = k a^(k-1)
  });
}
ValuePtr tanh(const ValuePtr& a) {
  return result(std::tanh(a->data), "tanh", {a}, [a](const Value& out) {
    a->grad += (1 - out.data * out.data) * out.grad;  // d tanh(a)/da = 1 - tanh(a)^2
  });
}
ValuePtr exp(const ValuePtr& a) {
  return result(std::exp(a->data), "exp", {a}, [a](const Value& out) {
    a->grad += out.data * out.grad;  // d e^a/da = e^a
  });
}
ValuePtr relu(const ValuePtr& a) {
  return result(a->data > 0 ? a->data : 0, "relu", {a},
                [a](const Value& out) { a->grad += (out.data > 0 ? 1 : 0) * out.grad; });
}
// Composites need no backward of their own: the ops they are made of already have one.
ValuePtr operator-(const ValuePtr& a) { return a * leaf(-1); }
ValuePtr operator-(const ValuePtr& a, const ValuePtr& b) { return a + (-b); }
ValuePtr operator/(const ValuePtr& a, const ValuePtr& b) { return a * pow(b, -1); }

// Every Value that root depends on, each after all of its parents.
std::vector<Value*> topological_order(const ValuePtr& root) {
  std::vector<Value*> order;
  std::unordered_set<Value*> visited;
  std::function<void(Value*)> visit = [&](Value* v) {
    if (!visited.insert(v).second) return;
    for (const ValuePtr& parent : v->parents) visit(parent.get());
    order.push_back(v);
  };
  visit(root.get());
  return order;
}

// Fills in d(root)/d(v) for every v behind root. Reverse topological order guarantees that
// a Value's gradient is complete (every use has added its share) before it is passed on.
// Like PyTorch, it adds to the grads already there: zero them between steps.
void backward(const ValuePtr& root) {
  std::vector<Value*> order = topological_order(root);
  root->grad = 1;  // d(root)/d(root)
  for (auto it = order.rbegin(); it != order.rend(); ++it) (*it)->backward_step(**it);
}

// ---- Using it ---------------------------------------------------------------------------------

// micrograd's neuron o = tanh(x1*w1 + x2*w2 + b), every Value named, o last. The Value
// labelled `nudged` gets `eps` added as soon as it is computed: that is how the finite
// differences ask "how much does o move when this one Value moves?".
std::vector<ValuePtr> build_neuron(const std::string& nudged = "", double eps = 0) {
  std::vector<ValuePtr> values;
  auto named = [&](ValuePtr v, const std::string& label) {
    v->label = label;
    if (label == nudged) v->data += eps;
    values.push_back(v);
    return v;
  };
  ValuePtr x1 = named(leaf(2.0), "x1"), x2 = named(leaf(0.0), "x2");
  ValuePtr w1 = named(leaf(-3.0), "w1"), w2 = named(leaf(1.0), "w2");
  ValuePtr b = named(leaf(6.8813735870195432), "b");  // makes n = 0.8814, so o = 1/sqrt(2)
  ValuePtr x1w1 = named(x1 * w1, "x1w1"), x2w2 = named(x2 * w2, "x2w2");
  ValuePtr x1w1x2w2 = named(x1w1 + x2w2, "x1w1x2w2");
  ValuePtr n = named(x1w1x2w2 + b, "n");
  named(tanh(n), "o");
  return values;
}

// Graphviz DOT in micrograd's style: a box per Value, an ellipse per op.
std::string to_dot(const ValuePtr& root) {
  std::string dot = "digraph scalar_autograd {\n  rankdir=LR;\n";
  std::unordered_map<Value*, size_t> id;
  for (Value* v : topological_order(root)) {
    size_t i = id[v] = id.size();
    dot += fmt::format("  v{} [shape=record, label=\"{{ {} | data {:.4f} | grad {:.4f} }}\"];\n", i,
                       v->label, v->data, v->grad);
    if (v->op.empty()) continue;
    dot += fmt::format("  op{} [label=\"{}\"];\n  op{} -> v{};\n", i, v->op, i, i);
    for (const ValuePtr& parent : v->parents)
      dot += fmt::format("  v{} -> op{};\n", id[parent.get()], i);
  }
  return dot + "}\n";
}

// A fully connected network of Values with tanh after every layer, as in micrograd.
class Mlp {
 public:
  Mlp(const std::vector<int>& sizes, std::mt19937& rng) {
    std::uniform_real_distribution<double> uniform(-1, 1);
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
      Layer layer(sizes[l + 1]);
      for (Neuron& neuron : layer) {
        for (int i = 0; i < sizes[l]; ++i) neuron.weights.push_back(leaf(uniform(rng)));
        neuron.bias = leaf(uniform(rng));
      }
      layers_.push_back(layer);
    }
  }
  ValuePtr forward(std::vector<ValuePtr> x) const {
    for (const Layer& layer : layers_) {
      std::vector<ValuePtr> next;
      for (const Neuron& neuron : layer) {
        ValuePtr sum = neuron.bias;
        for (size_t i = 0; i < x.size(); ++i) sum = sum + neuron.weights[i] * x[i];
        next.push_back(tanh(sum));
      }
      x = next;
    }
    return x[0];  // one output
  }
  std::vector<ValuePtr> parameters() const {
    std::vector<ValuePtr> params;
    for (const Layer& layer : layers_)
      for (const Neuron& neuron : layer) {
        params.insert(params.end(), neuron.weights.begin(), neuron.weights.end());
        params.push_back(neuron.bias);
      }
    return params;
  }

 private:
  struct Neuron {
    std::vector<ValuePtr> weights;
    ValuePtr bias;
  };
  using Layer = std::vector<Neuron>;
  std::vector<Layer> layers_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Reverse-mode autograd on scalars: micrograd's Value in C++"};
  bridle::examples::CommonFlags flags;
  flags.epochs = 100;  // gradient descent steps here
  flags.lr = 0.05f;
  std::string graph_path = "scalar_autograd.svg";
  bridle::examples::add_common_flags(app, flags);
  app.add_option("--graph", graph_path, "Draw the neuron's graph here (.svg, .png or .pdf)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // No apply_common_flags(): it sets up bridle's threads and devices, which this engine never uses.
  try {
    // 1. The neuron: backward, then every gradient against a central finite difference.
    std::vector<ValuePtr> neuron = build_neuron();
    ValuePtr o = neuron.back();
    backward(o);
    const double h = 1e-5;  // central differences err by O(h^2): about 1e-10 here
    double max_grad_error = 0;
    auto check_row = [&](const std::string& name, double data, double grad, double finite_diff) {
      double error = std::abs(grad - finite_diff);
      max_grad_error = std::max(max_grad_error, error);
      spdlog::info("{:<17} {:>8.4f} {:>8.4f} {:>12.6f} {:>9.1e}", name, data, grad, finite_diff,
                   error);
    };
    spdlog::info("{:<17} {:>8} {:>8} {:>12} {:>9}", "value", "data", "do/dv", "finite diff",
                 "error");
    for (const ValuePtr& v : neuron) {
      double o_plus = build_neuron(v->label, h).back()->data;
      double o_minus = build_neuron(v->label, -h).back()->data;
      check_row(v->label, v->data, v->grad, (o_plus - o_minus) / (2 * h));
    }

    // Each op on its own, the same way: d f(x)/dx at x = 0.7 (away from relu's kink at 0).
    using UnaryFunction = std::function<ValuePtr(const ValuePtr&)>;
    const std::vector<std::pair<std::string, UnaryFunction>> functions = {
        {"x - 2", [](const ValuePtr& x) { return x - leaf(2); }},
        {"x * x", [](const ValuePtr& x) { return x * x; }},
        {"x ^ 3", [](const ValuePtr& x) { return pow(x, 3); }},
        {"1 / x", [](const ValuePtr& x) { return leaf(1) / x; }},
        {"exp(x)", [](const ValuePtr& x) { return exp(x); }},
        {"relu(x)", [](const ValuePtr& x) { return relu(x); }},
        {"relu(-x)", [](const ValuePtr& x) { return relu(-x); }},
        {"tanh(x)", [](const ValuePtr& x) { return tanh(x); }},
        // tanh again, built from exp and /: a composite gets its gradient for free.
        {"(e^2x-1)/(e^2x+1)",
         [](const ValuePtr& x) {
           ValuePtr e2x = exp(leaf(2) * x);
           return (e2x - leaf(1)) / (e2x + leaf(1));
         }},
    };
    const double x0 = 0.7;
    spdlog::info("{:<17} {:>8} {:>8} {:>12} {:>9}", "f(x), x = 0.7", "f(x)", "df/dx", "finite diff",
                 "error");
    for (const auto& [name, f] : functions) {
      ValuePtr x = leaf(x0);
      ValuePtr y = f(x);
      backward(y);
      check_row(name, y->data, x->grad, (f(leaf(x0 + h))->data - f(leaf(x0 - h))->data) / (2 * h));
    }
    bool grads_ok = max_grad_error < 1e-6;

    // 2. A Value used twice: each use adds its share (with = instead of +=, db/da would be 1).
    ValuePtr a = leaf(3.0, "a");
    ValuePtr b = a + a;
    backward(b);
    bool reuse_ok = a->grad == 2.0;
    spdlog::info("b = a + a: db/da = {} (expected 2)", a->grad);

    // 3. The picture of the neuron's graph (--smoke: in a temporary directory). render_dot
    // writes a .dot file instead when Graphviz's `dot` is not installed.
    bridle::examples::TemporaryDir temporary;
    if (flags.smoke) graph_path = temporary.make("scalar_autograd_XXXXXX") / "scalar_autograd.svg";
    bool rendered = bridle::render_dot(to_dot(o), graph_path);
    std::filesystem::path written =
        rendered ? std::filesystem::path(graph_path)
                 : std::filesystem::path(graph_path).replace_extension(".dot");
    bool graph_ok = std::filesystem::exists(written) && std::filesystem::file_size(written) > 0;
    spdlog::info("graph of the neuron: {} ({})", written.string(), graph_ok ? "ok" : "MISSING");

    // 4. Train a 3-4-4-1 network on micrograd's four samples: loss = sum (prediction - y)^2.
    const std::vector<std::vector<double>> inputs = {
        {2.0, 3.0, -1.0}, {3.0, -1.0, 0.5}, {0.5, 1.0, 1.0}, {1.0, 1.0, -1.0}};
    const std::vector<double> targets = {1.0, -1.0, -1.0, 1.0};
    std::mt19937 rng(static_cast<unsigned>(flags.seed));
    Mlp mlp({3, 4, 4, 1}, rng);
    std::vector<ValuePtr> params = mlp.parameters();
    spdlog::info("network 3-4-4-1: {} parameters", params.size());
    int steps = flags.smoke ? 10 : flags.epochs;
    double initial_loss = 0, final_loss = 0;
    std::vector<double> predictions(targets.size());
    for (int step = 0; step < steps; ++step) {
      ValuePtr loss = leaf(0);
      for (size_t i = 0; i < inputs.size(); ++i) {
        std::vector<ValuePtr> x;
        for (double xi : inputs[i]) x.push_back(leaf(xi));
        ValuePtr prediction = mlp.forward(x);
        predictions[i] = prediction->data;
        loss = loss + pow(prediction - leaf(targets[i]), 2);
      }
      for (const ValuePtr& p : params) p->grad = 0;  // backward adds: clear last step's grads
      backward(loss);
      for (const ValuePtr& p : params) p->data -= flags.lr * p->grad;  // downhill
      if (step == 0) initial_loss = loss->data;
      final_loss = loss->data;
      if (step % std::max(1, steps / 10) == 0 || step == steps - 1)
        spdlog::info("step {:>3}  loss {:.4f}", step, loss->data);
    }
    spdlog::info("predictions at the last step {:.3f} for targets {}", fmt::join(predictions, " "),
                 fmt::join(targets, " "));

    bool ok = grads_ok && reuse_ok && graph_ok && final_loss < initial_loss;
    bridle::examples::report_metrics(flags, {{"example", "01_scalar_autograd"},
                                             {"max_grad_error", max_grad_error},
                                             {"reuse_ok", reuse_ok},
                                             {"graph_ok", graph_ok},
                                             {"initial_loss", initial_loss},
                                             {"final_loss", final_loss},
                                             {"steps", steps}});
    return ok ? 0 : 1;
  } catch (const bridle::Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
