// Parity with PyTorch: every case in fixtures/torch_reference.json is rerun with
// bridle and its outputs and gradients compared with PyTorch's.
//
// The fixture is written by scripts/make_fixtures.py (PyTorch 1.13, float32, CPU)
// and committed, so this test needs no Python. Each case stores its inputs, the
// output, loss weights w and the gradients of loss = sum(w * output); we rebuild
// the op with bridle, call output.backward(w) and compare element by element:
//   |bridle - torch| <= atol + rtol * |torch|,   inf must match inf, NaN must match NaN.
// The tolerances are float32-sized (rtol 1e-5, atol 1e-6) for every case: bridle's
// fast_exp, its double accumulators and OpenBLAS's summation order all stay well
// inside them (BRIDLE_PARITY_VERBOSE=1 prints the headroom of every comparison).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bridle.h"

namespace {

using bridle::Shape;
using bridle::Tensor;
using json = nlohmann::json;

constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-6;

const json& fixture() {
  static const json doc = [] {
    std::string path = std::string(BRIDLE_FIXTURES_DIR) + "/torch_reference.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path + " (see scripts/make_fixtures.py)");
    return json::parse(in);
  }();
  return doc;
}

// JSON has no inf/nan: the fixture writes them as strings.
double decode(const json& v) {
  if (v.is_number()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  throw std::runtime_error("fixture: unexpected value " + s);
}

Shape shape_of(const json& t) { return t.at("shape").get<Shape>(); }

std::vector<double> values_of(const json& t) {
  std::vector<double> out;
  for (const json& v : t.at("data")) out.push_back(decode(v));
  return out;
}

// A float32 tensor from a fixture entry; the stored decimals round back to PyTorch's floats.
Tensor float_tensor(const json& t, bool requires_grad = false) {
  std::vector<float> data;
  for (double v : values_of(t)) data.push_back(static_cast<float>(v));
  Shape shape = shape_of(t);
  Tensor out = shape.empty() ? bridle::scalar(data.at(0)) : bridle::from_vector(data, shape);
  if (requires_grad) out.set_requires_grad();
  return out;
}

Tensor int_tensor(const json& t) {
  return bridle::from_vector(t.at("data").get<std::vector<int64_t>>(), shape_of(t));
}

// Compares every element; reports the first few mismatches with their flat index.
void expect_close(const Tensor& actual, const json& expected, const std::string& what,
                  double rtol = kRtol, double atol = kAtol) {
  ASSERT_TRUE(actual.defined()) << what << ": bridle produced no tensor (no gradient?)";
  ASSERT_EQ(actual.shape(), shape_of(expected)) << what << ": shape";
  std::vector<float> a = actual.to_vector();
  std::vector<double> e = values_of(expected);
  int reported = 0;
  double worst = 0.0;
  for (size_t i = 0; i < e.size(); ++i) {
    bool ok;
    if (std::isnan(e[i]))
      ok = std::isnan(a[i]);
    else if (std::isinf(e[i]))
      ok = a[i] == e[i];
    else {
      double err = std::abs(a[i] - e[i]);
      worst = std::max(worst, err / (atol + rtol * std::abs(e[i])));
      ok = err <= atol + rtol * std::abs(e[i]);
    }
    if (!ok && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: bridle " << a[i] << " vs torch " << e[i] << " (diff "
                    << std::abs(a[i] - e[i]) << ", atol " << atol << ", rtol " << rtol << ")";
  }
  if (reported > 5) ADD_FAILURE() << what << ": " << reported << " mismatches in all";
  // BRIDLE_PARITY_VERBOSE=1 prints each comparison's headroom (1.0 = exactly at the
  // tolerance), for whoever tunes a tolerance or a kernel.
  if (std::getenv("BRIDLE_PARITY_VERBOSE")) std::printf("%-60s worst %.3f\n", what.c_str(), worst);
}

// Runs out.backward(weights), the gradient of loss = sum(weights * out).
void backward_weighted(const Tensor& out, const json& c) {
  out.backward(float_tensor(c.at("weights")));
}

// Runs check on every case of a fixture section. An exception fails that case
// only (naming it), so one bad case does not hide the rest. Returns the count.
int for_each_case(const json& cases, const std::function<void(const json&)>& check) {
  int count = 0;
  for (const json& c : cases) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    try {
      check(c);
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": unexpected exception: " << e.what();
    }
    ++count;
  }
  return count;
}

// --- softmax, log_softmax, logsumexp -------------------------------------------------

TEST(TorchParity, SoftmaxFamily) {
  int checked = for_each_case(fixture().at("softmax"), [&](const json& c) {
    const std::string name = c.at("name");
    const std::string op = c.at("op");
    const int64_t dim = c.at("dim");
    Tensor x = float_tensor(c.at("input"), true);
    Tensor out;
    if (op == "logsumexp") {
      out = bridle::logsumexp(x, dim, c.at("keepdim").get<bool>());
    } else {
      auto f = op == "softmax" ? bridle::softmax : bridle::log_softmax;
      const float temperature = c.at("temperature").get<float>();
      if (c.value("bridle_throws", false)) {
        // PyTorch gives NaN for a row with no finite maximum; bridle refuses, naming the row.
        try {
          f(x, dim, temperature);
          ADD_FAILURE() << op << " of an all -inf row did not throw";
        } catch (const bridle::Error& e) {
          EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
        }
        return;
      }
      out = f(x, dim, temperature);
    }
    expect_close(out, c.at("output"), name + " output");
    backward_weighted(out, c);
    if (name == "logsumexp_all_neg_inf_row") {
      // PyTorch's gradient for the all -inf row is NaN (exp(-inf - -inf)); bridle
      // deliberately gives zero there (softmax.h). The finite row must still match.
      std::vector<float> g = x.grad().to_vector();
      std::vector<double> e = values_of(c.at("grad_input"));
      for (size_t i = 0; i < e.size(); ++i) {
        if (std::isnan(e[i]))
          EXPECT_EQ(g[i], 0.0f) << "element " << i;
        else
          EXPECT_NEAR(g[i], e[i], kAtol + kRtol * std::abs(e[i])) << "element " << i;
      }
    } else {
      expect_close(x.grad(), c.at("grad_input"), name + " grad_input");
    }
  });
  EXPECT_GT(checked, 50);
}

// --- cross_entropy ---------------------------------------------------------------

TEST(TorchParity, CrossEntropy) {
  const std::map<std::string, bridle::Reduction> reductions = {{"none", bridle::Reduction::kNone},
                                                               {"mean", bridle::Reduction::kMean},
                                                               {"sum", bridle::Reduction::kSum}};
  int checked = for_each_case(fixture().at("cross_entropy"), [&](const json& c) {
    const std::string name = c.at("name");
    Tensor logits = float_tensor(c.at("logits"), true);
    const json& t = c.at("targets");
    Tensor targets = t.contains("dtype") ? int_tensor(t) : float_tensor(t);
    bridle::CrossEntropyOptions options;
    options.reduction = reductions.at(c.at("reduction"));
    options.ignore_index = c.at("ignore_index");
    if (c.contains("class_weight")) options.weight = float_tensor(c.at("class_weight"));
    options.label_smoothing = c.value("label_smoothing", 0.0f);
    Tensor loss = bridle::cross_entropy(logits, targets, options);
    expect_close(loss, c.at("output"), name + " loss");
    backward_weighted(loss, c);
    expect_close(logits.grad(), c.at("grad_logits"), name + " grad_logits");
  });
  EXPECT_EQ(checked, 32);
}

TEST(TorchParity, NllLoss) {
  const std::map<std::string, bridle::Reduction> reductions = {{"none", bridle::Reduction::kNone},
                                                               {"mean", bridle::Reduction::kMean},
                                                               {"sum", bridle::Reduction::kSum}};
  int checked = for_each_case(fixture().at("nll_loss"), [&](const json& c) {
    const std::string name = c.at("name");
    Tensor log_probs = float_tensor(c.at("input"), true);
    bridle::NllLossOptions options;
    options.reduction = reductions.at(c.at("reduction"));
    options.ignore_index = c.at("ignore_index");
    if (c.contains("class_weight")) options.weight = float_tensor(c.at("class_weight"));
    Tensor loss = bridle::nll_loss(log_probs, int_tensor(c.at("targets")), options);
    expect_close(loss, c.at("output"), name + " loss");
    backward_weighted(loss, c);
    expect_close(log_probs.grad(), c.at("grad_input"), name + " grad_input");
  });
  EXPECT_EQ(checked, 6);
}

TEST(TorchParity, SigmoidAndFocalLosses) {
  const std::map<std::string, bridle::Reduction> reductions = {{"none", bridle::Reduction::kNone},
                                                               {"mean", bridle::Reduction::kMean},
                                                               {"sum", bridle::Reduction::kSum}};
  int checked = for_each_case(fixture().at("sigmoid_losses"), [&](const json& c) {
    const std::string name = c.at("name"), op = c.at("op");
    const bridle::Reduction reduction = reductions.at(c.at("reduction"));
    Tensor x = float_tensor(c.at("input"), true);
    const json& t = c.at("targets");
    Tensor targets = t.contains("dtype") ? int_tensor(t) : float_tensor(t);
    auto optional = [&](const char* key) {
      return c.contains(key) ? float_tensor(c.at(key)) : Tensor();
    };
    Tensor loss;
    if (op == "bce")
      loss = bridle::binary_cross_entropy_with_logits(x, targets,
                                                      {.reduction = reduction,
                                                       .weight = optional("weight"),
                                                       .pos_weight = optional("pos_weight")});
    else if (op == "sigmoid_focal")
      loss = bridle::sigmoid_focal_loss(
          x, targets, {.alpha = c.at("alpha"), .gamma = c.at("gamma"), .reduction = reduction});
    else
      loss = bridle::focal_loss(x, targets,
                                {.alpha = c.value("alpha", 0.25f),
                                 .class_alpha = optional("class_alpha"),
                                 .gamma = c.at("gamma"),
                                 .reduction = reduction});
    expect_close(loss, c.at("output"), name + " loss");
    backward_weighted(loss, c);
    expect_close(x.grad(), c.at("grad_input"), name + " grad_input");
  });
  EXPECT_EQ(checked, 12 + 4 + 12);
}

TEST(TorchParity, Entmax) {
  int checked = for_each_case(fixture().at("entmax"), [&](const json& c) {
    const std::string name = c.at("name"), op = c.at("op");
    const float alpha = c.at("alpha");
    Tensor x = float_tensor(c.at("input"), true);
    Tensor out;
    if (op == "sparsemax") out = bridle::sparsemax(x);
    if (op == "entmax15") out = bridle::entmax15(x);
    if (op == "entmax_bisect") out = bridle::entmax_bisect(x, alpha);
    if (op == "sparsemax_loss") out = bridle::sparsemax_loss(x, int_tensor(c.at("targets")));
    if (op == "entmax15_loss") out = bridle::entmax15_loss(x, int_tensor(c.at("targets")));
    if (op == "entmax_bisect_loss")
      out = bridle::entmax_bisect_loss(x, int_tensor(c.at("targets")), alpha);
    ASSERT_TRUE(out.defined()) << "unknown op " << op;
    expect_close(out, c.at("output"), name + " output");
    backward_weighted(out, c);
    expect_close(x.grad(), c.at("grad_input"), name + " grad_input");
  });
  EXPECT_EQ(checked, 8);
}

TEST(TorchParity, Attention) {
  int checked = for_each_case(fixture().at("attention"), [&](const json& c) {
    const std::string name = c.at("name");
    if (c.at("op") == "sdpa") {
      Tensor q = float_tensor(c.at("q"), true), k = float_tensor(c.at("k"), true);
      Tensor v = float_tensor(c.at("v"), true);
      bridle::AttentionOptions options;
      if (c.contains("mask")) {
        const json& m = c.at("mask");
        options.mask = m.contains("dtype") ? int_tensor(m) : float_tensor(m);
      }
      options.causal = c.value("causal", false);
      Tensor out = bridle::scaled_dot_product_attention(q, k, v, options);
      expect_close(out, c.at("output"), name + " output");
      backward_weighted(out, c);
      expect_close(q.grad(), c.at("grad_q"), name + " grad_q");
      expect_close(k.grad(), c.at("grad_k"), name + " grad_k");
      expect_close(v.grad(), c.at("grad_v"), name + " grad_v");
      return;
    }
    bridle::MultiheadAttention mha(c.at("embed_dim"), c.at("num_heads"));
    mha.in_proj_weight.copy_(float_tensor(c.at("in_proj_weight")));
    mha.in_proj_bias.copy_(float_tensor(c.at("in_proj_bias")));
    mha.out_proj->weight.copy_(float_tensor(c.at("out_proj_weight")));
    mha.out_proj->bias.copy_(float_tensor(c.at("out_proj_bias")));
    Tensor query = float_tensor(c.at("query"), true), key = float_tensor(c.at("key"), true);
    Tensor value = float_tensor(c.at("value"), true);
    bridle::MultiheadAttentionOutput out = mha.forward(
        query, key, value, int_tensor(c.at("key_padding_mask")), float_tensor(c.at("attn_mask")));
    expect_close(out.output, c.at("output"), name + " output");
    expect_close(out.weights, c.at("attn_weights"), name + " attention weights");
    backward_weighted(out.output, c);
    expect_close(query.grad(), c.at("grad_query"), name + " grad_query");
    expect_close(key.grad(), c.at("grad_key"), name + " grad_key");
    expect_close(value.grad(), c.at("grad_value"), name + " grad_value");
    expect_close(mha.in_proj_weight.grad(), c.at("grad_in_proj_weight"),
                 name + " grad_in_proj_weight");
  });
  EXPECT_EQ(checked, 5);
}

// --- elementwise -----------------------------------------------------------------

TEST(TorchParity, Elementwise) {
  using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
  using Unary = std::function<Tensor(const Tensor&)>;
  const std::map<std::string, Binary> binary = {
      {"add", [](const Tensor& a, const Tensor& b) { return bridle::add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return bridle::sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return bridle::mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return bridle::div(a, b); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return bridle::pow(a, b); }}};
  const std::map<std::string, Unary> unary = {
      {"neg", [](const Tensor& x) { return bridle::neg(x); }},
      {"exp", [](const Tensor& x) { return bridle::exp(x); }},
      {"log", [](const Tensor& x) { return bridle::log(x); }},
      {"sqrt", [](const Tensor& x) { return bridle::sqrt(x); }},
      {"relu", [](const Tensor& x) { return bridle::relu(x); }},
      {"sigmoid", [](const Tensor& x) { return bridle::sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return bridle::tanh(x); }}};
  int checked = for_each_case(fixture().at("elementwise"), [&](const json& c) {
    const std::string name = c.at("name");
    const std::string op = c.at("op");
    std::vector<Tensor> in;
    for (const json& t : c.at("inputs")) in.push_back(float_tensor(t, true));
    Tensor out;
    if (binary.count(op))
      out = binary.at(op)(in.at(0), in.at(1));
    else if (unary.count(op))
      out = unary.at(op)(in.at(0));
    else if (op == "pow_scalar")
      out = bridle::pow(in.at(0), c.at("exponent").get<float>());
    else
      FAIL() << "unknown op " << op;
    expect_close(out, c.at("output"), name + " output");
    backward_weighted(out, c);
    for (size_t i = 0; i < in.size(); ++i)
      expect_close(in[i].grad(), c.at("grads").at(i), name + " grad " + std::to_string(i));
  });
  EXPECT_GT(checked, 30);
}

// --- matmul and linear -----------------------------------------------------------

TEST(TorchParity, MatmulLinear) {
  int checked = for_each_case(fixture().at("matmul"), [&](const json& c) {
    const std::string name = c.at("name");
    std::vector<Tensor> in;
    for (const json& t : c.at("inputs")) in.push_back(float_tensor(t, true));
    // Dot products of up to K = 33 unit-normal terms: oneDNN or OpenBLAS and PyTorch
    // sum them in different orders, yet stay within the default tolerances (a third
    // of them at most, measured), so no looser tolerance is needed.
    Tensor out;
    if (c.at("op") == "matmul")
      out = bridle::matmul(in.at(0), in.at(1));
    else
      out = bridle::linear(in.at(0), in.at(1), in.size() > 2 ? in.at(2) : Tensor());
    expect_close(out, c.at("output"), name + " output");
    backward_weighted(out, c);
    for (size_t i = 0; i < in.size(); ++i)
      expect_close(in[i].grad(), c.at("grads").at(i), name + " grad " + std::to_string(i));
  });
  EXPECT_GT(checked, 6);
}

// --- reductions ------------------------------------------------------------------

TEST(TorchParity, Reductions) {
  int checked = for_each_case(fixture().at("reduce"), [&](const json& c) {
    const std::string name = c.at("name");
    const std::string op = c.at("op");
    Tensor x = float_tensor(c.at("input"), op != "argmax");
    const bool keepdim = c.at("keepdim");
    if (op == "argmax") {
      Tensor index = bridle::argmax(x, c.at("dim").get<int64_t>(), keepdim);
      EXPECT_EQ(index.dtype(), bridle::kInt64);
      EXPECT_EQ(index.shape(), shape_of(c.at("output")));
      EXPECT_EQ(index.to_int_vector(), c.at("output").at("data").get<std::vector<int64_t>>());
      return;
    }
    Tensor out;
    if (c.at("dim").is_null())
      out = op == "sum" ? bridle::sum(x) : bridle::mean(x);
    else if (op == "sum")
      out = bridle::sum(x, c.at("dim").get<int64_t>(), keepdim);
    else if (op == "mean")
      out = bridle::mean(x, c.at("dim").get<int64_t>(), keepdim);
    else
      out = bridle::max(x, c.at("dim").get<int64_t>(), keepdim);
    expect_close(out, c.at("output"), name + " output");
    backward_weighted(out, c);
    expect_close(x.grad(), c.at("grad_input"), name + " grad_input");
  });
  EXPECT_GT(checked, 30);
}

// --- SGD -------------------------------------------------------------------------

// 25 steps on loss = 0.5 sum(a (p - c)^2) with the gradient a (p - c) set by hand,
// as the script does, so the optimizer alone is compared, step by step.
TEST(TorchParity, SgdTrajectories) {
  int checked = for_each_case(fixture().at("sgd").at("cases"), [&](const json& c) {
    const std::string name = c.at("name");
    const json& o = c.at("options");
    bridle::SGDOptions options;
    options.lr = o.at("lr");
    options.momentum = o.at("momentum");
    options.dampening = o.at("dampening");
    options.weight_decay = o.at("weight_decay");
    options.nesterov = o.at("nesterov");
    std::vector<Tensor> params, curvature, center;
    for (const json& t : c.at("init")) params.push_back(float_tensor(t, true));
    for (const json& t : c.at("curvature")) curvature.push_back(float_tensor(t));
    for (const json& t : c.at("center")) center.push_back(float_tensor(t));
    bridle::SGD sgd(params, options);
    const int steps = c.at("steps");
    for (int step = 0; step < steps; ++step) {
      {
        bridle::NoGradGuard no_grad;
        for (size_t i = 0; i < params.size(); ++i)
          params[i].set_grad(curvature[i] * (params[i] - center[i]));
      }
      sgd.step();
      for (size_t i = 0; i < params.size(); ++i)
        expect_close(params[i], c.at("trajectory").at(step).at(i),
                     fmt::format("{} step {} param {}", name, step + 1, i));
    }
  });
  EXPECT_EQ(checked, 6);
}

}  // namespace
