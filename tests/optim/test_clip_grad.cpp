// Gradient clipping (lib/optim/clip_grad.h): clip_grad_norm / clip_grad_value
// against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ in
// fixtures/clip_grad.json (scripts/make_clip_grad_fixtures.py), non-finite
// gradients, a large gradient through the threaded path, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using json = nlohmann::json;

constexpr double kInf = std::numeric_limits<double>::infinity();

const json& fixture() {
  static const json doc = [] {
    std::string path = std::string(BRIDLE_FIXTURES_DIR) + "/clip_grad.json";
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("cannot open " + path + " (see scripts/make_clip_grad_fixtures.py)");
    return json::parse(in);
  }();
  return doc;
}

// The fixture's three parameters with their gradients, and a fourth without one.
std::vector<Tensor> fixture_params() {
  std::vector<Tensor> params;
  const json& doc = fixture();
  for (size_t i = 0; i < doc["shapes"].size(); ++i) {
    Shape shape = doc["shapes"][i].get<Shape>();
    Tensor p = zeros(shape, TensorOptions().with_requires_grad());
    p.set_grad(from_vector(doc["grads"][i].get<std::vector<float>>(), shape));
    params.push_back(p);
  }
  params.push_back(zeros({3}, TensorOptions().with_requires_grad()));
  return params;
}

void expect_grads(const std::vector<Tensor>& params, const json& expected,
                  const std::string& what) {
  ASSERT_EQ(expected.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(what + ", parameter " + std::to_string(i));
    expect_close(params[i].grad(), expected[i].get<std::vector<float>>(), 1e-7f, 1e-6f);
  }
  EXPECT_FALSE(params[3].grad().defined());  // skipped, not given a gradient
}

TEST(ClipGradNorm, MatchesPyTorch) {
  for (const json& c : fixture()["norm"]) {
    const double max_norm = c["max_norm"].get<double>();
    const double norm_type = c["norm_type"].is_string() ? kInf : c["norm_type"].get<double>();
    const std::string what =
        "max_norm " + std::to_string(max_norm) + " norm_type " + std::to_string(norm_type);
    std::vector<Tensor> params = fixture_params();
    const double total = clip_grad_norm(params, max_norm, norm_type);
    // PyTorch sums in float32, we in double: agreement to float rounding.
    const double want = c["total_norm"].get<double>();
    EXPECT_NEAR(total, want, 1e-6 * want) << what;
    expect_grads(params, c["grads"], what);
  }
}

TEST(ClipGradValue, MatchesPyTorch) {
  for (const json& c : fixture()["value"]) {
    std::vector<Tensor> params = fixture_params();
    const double clip_value = c["clip_value"].get<double>();
    clip_grad_value(params, clip_value);
    expect_grads(params, c["grads"], "clip_value " + std::to_string(clip_value));
  }
}

TEST(ClipGradNorm, HandComputed) {
  // grads (3, 4) and (0, 12): 2-norm 13, 1-norm 19, inf-norm 12.
  auto make = [] {
    Tensor a = zeros({2}, TensorOptions().with_requires_grad());
    Tensor b = zeros({2}, TensorOptions().with_requires_grad());
    a.set_grad(from_vector({3.0f, 4.0f}));
    b.set_grad(from_vector({0.0f, 12.0f}));
    return std::vector<Tensor>{a, b};
  };
  std::vector<Tensor> p = make();
  EXPECT_NEAR(clip_grad_norm(p, 6.5), 13.0, 1e-12);
  const double coef = 6.5 / (13.0 + 1e-6);
  expect_close(p[0].grad(), {static_cast<float>(3 * coef), static_cast<float>(4 * coef)}, 0, 2e-7f);
  p = make();
  EXPECT_NEAR(clip_grad_norm(p, 100.0, 1.0), 19.0, 1e-12);
  expect_close(p[1].grad(), {0.0f, 12.0f}, 0, 0);  // below max_norm: unchanged
  p = make();
  EXPECT_NEAR(clip_grad_norm(p, 1.0, kInf), 12.0, 1e-12);
  EXPECT_NEAR(p[1].grad().to_vector()[1], 12.0 / (12.0 + 1e-6), 1e-6);
  // No gradients at all: 0, nothing to do.
  EXPECT_EQ(clip_grad_norm({zeros({2}, TensorOptions().with_requires_grad())}, 1.0), 0.0);
}

// A gradient larger than one thread block: the threaded, blocked sum agrees with
// a plain double sum.
TEST(ClipGradNorm, LargeGradient) {
  const int64_t n = 300001;
  Generator gen(5);
  Tensor p = zeros({n}, TensorOptions().with_requires_grad());
  p.set_grad(randn({n}, gen));
  std::vector<float> g = p.grad().to_vector();
  double sum = 0, sum3 = 0;
  for (float v : g) {
    sum += static_cast<double>(v) * v;
    sum3 += std::pow(std::abs(static_cast<double>(v)), 3.0);
  }
  EXPECT_NEAR(clip_grad_norm({p}, 1e9), std::sqrt(sum), 1e-9 * std::sqrt(sum));
  EXPECT_NEAR(clip_grad_norm({p}, 1e9, 3.0), std::cbrt(sum3), 1e-9 * std::cbrt(sum3));
  const double total = clip_grad_norm({p}, 1.0);
  std::vector<float> clipped = p.grad().to_vector();
  for (int64_t i = 0; i < n; i += 9973)
    EXPECT_FLOAT_EQ(clipped[i],
                    static_cast<float>(g[i] * static_cast<float>(1.0 / (total + 1e-6))));
  EXPECT_NEAR(clip_grad_norm({p}, 1e9), 1.0, 1e-5);
}

// As PyTorch: a NaN or inf gradient makes the total non-finite. With
// error_if_nonfinite that throws and leaves the gradients alone; without, the
// scaling turns the gradients NaN (NaN total) or zero / NaN (inf total).
TEST(ClipGradNorm, NonfiniteGradients) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (double norm_type : {2.0, 1.0, 3.0, kInf}) {
    Tensor a = zeros({3}, TensorOptions().with_requires_grad());
    Tensor b = zeros({2}, TensorOptions().with_requires_grad());
    a.set_grad(from_vector({1.0f, nan, 2.0f}));
    b.set_grad(from_vector({inf, 3.0f}));
    expect_error(
        [&] {
          clip_grad_norm({a, b}, 1.0, norm_type, true);
        },
        {"clip_grad_norm", "is nan", "error_if_nonfinite"});
    EXPECT_EQ(a.grad().to_vector()[0], 1.0f);  // untouched
    EXPECT_TRUE(std::isnan(clip_grad_norm({a, b}, 1.0, norm_type))) << norm_type;
    for (float v : a.grad().to_vector()) EXPECT_TRUE(std::isnan(v));

    b.set_grad(from_vector({inf, 3.0f}));
    expect_error([&] { clip_grad_norm({b}, 1.0, norm_type, true); }, {"is inf"});
    EXPECT_EQ(clip_grad_norm({b}, 1.0, norm_type), kInf) << norm_type;
    std::vector<float> g = b.grad().to_vector();
    EXPECT_TRUE(std::isnan(g[0]));  // inf * 0
    EXPECT_EQ(g[1], 0.0f);
  }
  // clip_grad_value keeps NaN and clamps inf.
  Tensor c = zeros({3}, TensorOptions().with_requires_grad());
  c.set_grad(from_vector({nan, -inf, inf}));
  clip_grad_value({c}, 0.5);
  std::vector<float> g = c.grad().to_vector();
  EXPECT_TRUE(std::isnan(g[0]));
  EXPECT_EQ(g[1], -0.5f);
  EXPECT_EQ(g[2], 0.5f);
}

TEST(ClipGrad, InvalidArgumentsAreErrors) {
  std::vector<Tensor> params = fixture_params();
  expect_error([&] { clip_grad_norm(params, -1.0); }, {"clip_grad_norm", "max_norm", "-1"});
  expect_error([&] { clip_grad_norm(params, std::nan("")); }, {"max_norm", "nan"});
  expect_error([&] { clip_grad_norm(params, 1.0, 0.0); }, {"norm_type", "0"});
  expect_error([&] { clip_grad_norm(params, 1.0, -kInf); }, {"norm_type", "-inf"});
  expect_error([&] { clip_grad_value(params, -0.5); }, {"clip_grad_value", "-0.5"});
  expect_error([&] { clip_grad_norm({Tensor()}, 1.0); }, {"parameter 0", "undefined"});
  Tensor labels = zeros({2}, TensorOptions().with_requires_grad());
  labels.set_grad(from_vector(std::vector<int64_t>{1, 2}));
  expect_error([&] { clip_grad_value({labels}, 1.0); }, {"parameter 0", "int64", "float32"});
}

}  // namespace
}  // namespace bridle
