// The tools for looking inside a run: graph pictures, the op profiler and
// anomaly detection.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A fresh directory under the system's temporary directory, removed at the end.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string name = (fs::temp_directory_path() / "bridle_inspection_XXXXXX").string();
    EXPECT_NE(mkdtemp(name.data()), nullptr);
    path = name;
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// --- Graph pictures ------------------------------------------------------------

TEST(Graphviz, LabelsLeavesWithNamesAndTensorsWithGradientNorms) {
  Generator gen(3);
  Linear layer(3, 2);
  Tensor x = randn({4, 3}, gen);
  Tensor loss = sum(relu(layer.forward(x)));
  retain_grads(loss);
  loss.backward(/*retain_graph=*/true);
  std::string dot = to_dot(loss, {.gradient_norms = true, .names = layer.named_parameters()});

  double norm = 0;
  for (float g : layer.named_parameters()[0].second.grad().to_vector()) norm += g * g;
  const std::string weight_label =
      fmt::format("weight\\n[2, 3]\\nrequires_grad\\n|grad| = {:.3g}", std::sqrt(norm));
  EXPECT_NE(dot.find(weight_label), std::string::npos) << dot;
  // The loss's own gradient is 1, and relu's output kept its gradient.
  EXPECT_NE(dot.find("sum\\n[]\\n|grad| = 1"), std::string::npos) << dot;
  EXPECT_NE(dot.find("relu\\n[4, 2]\\n|grad| = "), std::string::npos) << dot;
  // x does not require grad and has no gradient to show.
  EXPECT_NE(dot.find("label=\"[4, 3]\""), std::string::npos) << dot;
}

TEST(Graphviz, RendersAnSvgWithDot) {
  if (!graphviz_available()) GTEST_SKIP() << "Graphviz's dot is not installed";
  ScratchDir dir;
  Tensor x = from_vector({1, 2, 3}, {3}, TensorOptions().with_requires_grad());
  const fs::path picture = dir.path / "graph.svg";
  EXPECT_TRUE(render_graph(sum(exp(x)), picture.string()));
  std::string svg = read_text(picture);
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("exp"), std::string::npos);
  EXPECT_FALSE(fs::exists(picture.string() + ".in.dot"));  // the input file is cleaned up
}

TEST(Graphviz, WithoutDotWritesTheDotFileAndSaysSo) {
  ScratchDir dir;
  std::string saved_path = getenv("PATH") ? getenv("PATH") : "";
  setenv("PATH", dir.path.c_str(), 1);  // a PATH with no dot on it
  Tensor x = from_vector({1, 2}, {2}, TensorOptions().with_requires_grad());
  bool rendered = render_graph(sum(x * x), (dir.path / "graph.png").string());
  setenv("PATH", saved_path.c_str(), 1);
  EXPECT_FALSE(rendered);
  EXPECT_FALSE(fs::exists(dir.path / "graph.png"));
  EXPECT_NE(read_text(dir.path / "graph.dot").find("digraph"), std::string::npos);
}

TEST(Graphviz, UnknownPictureFormatIsAnError) {
  Tensor x = from_vector({1}, {1}, TensorOptions().with_requires_grad());
  expect_error([&] { render_graph(sum(x), "graph.jpeg"); }, {"graph.jpeg", ".png, .svg or .pdf"});
}

// --- Profiler --------------------------------------------------------------------

const OpProfile* find_op(const ProfileReport& report, const std::string& name) {
  for (const OpProfile& op : report.ops)
    if (op.name == name) return &op;
  return nullptr;
}

// The identity as a Function whose backward runs an op (a multiply).
struct ScaledIdentity : Function {
  std::string name() const override { return "ScaledIdentity"; }
  Tensor forward(const std::vector<Tensor>& inputs) override { return inputs[0].clone(); }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {grad_output * 1.0f}; }
};

TEST(Profiler, CountsCallsBytesAndTimePerOp) {
  set_profiling(true);
  reset_profile();
  Tensor w =
      from_vector(std::vector<float>(1000, 0.5f), {1000}, TensorOptions().with_requires_grad());
  for (int step = 0; step < 3; ++step) {
    ProfileStep profile_step;
    Tensor loss = sum(Function::apply<ScaledIdentity>({exp(w)}));
    loss.backward();
    ProfileRegion region("optimizer step");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ProfileReport report = profile_report();
  set_profiling(false);

  EXPECT_EQ(report.steps, 3);
  std::set<std::string> names;
  for (const OpProfile& op : report.ops) names.insert(op.name);
  // sum(w) is a reshape to 1-D and a sum. The multiply inside ScaledIdentity's
  // backward is part of that node's time, not a row of its own.
  EXPECT_EQ(names,
            (std::set<std::string>{"exp", "ScaledIdentity", "reshape", "sum", "optimizer step"}));

  const OpProfile* exp_row = find_op(report, "exp");
  ASSERT_NE(exp_row, nullptr);
  EXPECT_EQ(exp_row->shape, "[1000]");
  EXPECT_EQ(exp_row->forward_calls, 3);
  EXPECT_EQ(exp_row->backward_calls, 3);
  // forward: 1000 floats in, 1000 out; backward: the gradient in, the input, its gradient out.
  EXPECT_DOUBLE_EQ(exp_row->forward_bytes, 3 * 8000.0);
  EXPECT_DOUBLE_EQ(exp_row->backward_bytes, 3 * 12000.0);

  const OpProfile* region_row = find_op(report, "optimizer step");
  ASSERT_NE(region_row, nullptr);
  EXPECT_TRUE(region_row->is_region);
  EXPECT_GE(region_row->seconds(), 3 * 0.005);
  // The rows are disjoint stretches of the steps: together no more than the steps.
  double accounted = 0;
  for (const OpProfile& op : report.ops) accounted += op.seconds();
  EXPECT_LE(accounted, report.step_seconds);

  std::string table = report.table();
  EXPECT_NE(table.find("3 steps"), std::string::npos) << table;
  EXPECT_NE(table.find("exp [1000]"), std::string::npos) << table;
  EXPECT_NE(table.find("(not in any op)"), std::string::npos) << table;
}

TEST(Profiler, OffByDefaultPausableAndBlindToOtherThreads) {
  EXPECT_FALSE(profiling());
  Tensor x = from_vector({1, 2}, {2});
  exp(x);
  set_profiling(true);
  reset_profile();
  std::thread worker([&] { exp(x); });
  worker.join();
  EXPECT_TRUE(profile_report().ops.empty());
  // Paused, then resumed: only the op run while on is counted.
  set_profiling(false);
  exp(x);
  set_profiling(true);
  sqrt(x);
  ProfileReport report = profile_report();
  set_profiling(false);
  ASSERT_EQ(report.ops.size(), 1u);
  EXPECT_EQ(report.ops[0].name, "sqrt");
}

TEST(Profiler, OneRowPerOpAndOutputShape) {
  set_profiling(true);
  reset_profile();
  relu(from_vector({1, 2}, {2}));
  relu(from_vector({1, 2, 3}, {3}));
  relu(from_vector({4, 5, 6}, {3}));
  ProfileReport report = profile_report();
  set_profiling(false);
  ASSERT_EQ(report.ops.size(), 2u);
  std::map<std::string, int64_t> calls_by_shape;
  for (const OpProfile& op : report.ops) calls_by_shape[op.shape] = op.forward_calls;
  EXPECT_EQ(calls_by_shape, (std::map<std::string, int64_t>{{"[2]", 1}, {"[3]", 2}}));
}

// --- Anomaly detection -----------------------------------------------------------

TEST(Anomaly, NamesTheForwardOpThatMadeTheFirstNaN) {
  Tensor x = from_vector({1, -1, 2}, {3}, TensorOptions().with_requires_grad());
  EXPECT_TRUE(std::isnan(log(x).to_vector()[1]));  // off: no error
  DetectAnomalyGuard guard;
  expect_error([&] { sum(log(x) * 2.0f); },
               {"forward of 'log'", "NaN at element 1", "output [3]", "inputs: [3] (finite)"});
}

TEST(Anomaly, SaysWhenTheInputsWereAlreadyNonFinite) {
  DetectAnomalyGuard guard;
  Tensor x = from_vector({1, INFINITY}, {2});
  expect_error([&] { x * 0.0f; }, {"forward of 'mul_scalar'", "NaN", "(already non-finite)"});
}

TEST(Anomaly, InfinitiesMadeFromFiniteInputsAreReportedPassedOnOnesAreNot) {
  DetectAnomalyGuard guard;
  expect_error(
      [] {
        log(from_vector({1, 0}, {2}));
      },
      {"forward of 'log'", "an infinity at element 1", "inputs: [2] (finite)"});
  // An additive mask: -inf in, -inf out, by design; and softmax then masks it to 0.
  Tensor scores = from_vector({1, 2}, {2}, TensorOptions().with_requires_grad());
  Tensor masked = scores + from_vector({0, -INFINITY}, {2});
  Tensor loss = sum(softmax(masked, 0) * from_vector({1, 2}, {2}));
  loss.backward();
  expect_close(scores.grad(), {0, 0});
}

TEST(Anomaly, NamesTheBackwardNodeThatMadeTheFirstInfinity) {
  DetectAnomalyGuard guard;
  // sqrt(0) is fine, its gradient 1 / (2 sqrt(0)) is not.
  Tensor x = from_vector({4, 0}, {2}, TensorOptions().with_requires_grad());
  Tensor loss = sum(sqrt(x));
  expect_error([&] { loss.backward(); },
               {"backward of 'sqrt'", "an infinity at element 1", "gradient of its input 0 [2]",
                "received [2] was finite"});
}

TEST(Anomaly, GuardRestoresTheModeAndFiniteRunsPass) {
  EXPECT_FALSE(detect_anomaly());
  {
    DetectAnomalyGuard guard;
    EXPECT_TRUE(detect_anomaly());
    Tensor x = from_vector({1, 2}, {2}, TensorOptions().with_requires_grad());
    Tensor loss = sum(log_softmax(x, 0));
    loss.backward();
    EXPECT_TRUE(std::isfinite(x.grad().to_vector()[0]));
  }
  EXPECT_FALSE(detect_anomaly());
}

}  // namespace
}  // namespace bridle
