// L-BFGS (lib/optim/lbfgs.h). minimize_lbfgs: the 2-D Rosenbrock function from
// (-1.2, 1) to 1e-6; 10-D convex quadratics to their exact minimizer (to the
// resolution of f) in at most 2n iterations; both strong-Wolfe conditions at
// every accepted step (re-evaluating the objective where the observer says it
// stepped, and counting evaluations); never a result worse than x0 on nasty
// functions (a wrong gradient, NaN beyond a wall, NaN gradients and kinks, a
// noisy gradient); the stopping rules; bad options named with their value.
// LBFGS: every case of tests/fixtures/lbfgs_trajectories.json
// (scripts/make_lbfgs_fixtures.py) replays torch.optim.LBFGS on a logistic and
// a least-squares regression, with line_search_fn None and "strong_wolfe", and
// must follow the loss, the parameters and torch's iteration and closure-call
// counts after each of 5 step(closure) calls; plus Rosenbrock in float32, the
// early return, missing gradients, the closure contract, one group only, and
// bad options.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../test_util.h"

namespace bridle {
namespace {

using json = nlohmann::json;
using testing::expect_error;

// ---------------------------------------------------------------------------
// minimize_lbfgs

// f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1).
double rosenbrock(const std::vector<double>& x, std::vector<double>& grad) {
  const double a = 1.0 - x[0], b = x[1] - x[0] * x[0];
  grad[0] = -2.0 * a - 400.0 * x[0] * b;
  grad[1] = 200.0 * b;
  return a * a + 100.0 * b * b;
}

// f(x) = 1/2 x^T A x - b^T x with A = Q diag(lambda) Q^T symmetric positive
// definite (Q orthonormal from Gram-Schmidt of random vectors): x* = Q diag(1/lambda) Q^T b.
struct Quadratic {
  int64_t n;
  std::vector<double> A, b, x_star;

  explicit Quadratic(int64_t n_, double max_eigenvalue, unsigned seed) : n(n_) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<std::vector<double>> Q;
    while (static_cast<int64_t>(Q.size()) < n) {
      std::vector<double> v(n);
      for (double& e : v) e = normal(rng);
      for (const auto& q : Q) {
        double p = 0.0;
        for (int64_t i = 0; i < n; ++i) p += q[i] * v[i];
        for (int64_t i = 0; i < n; ++i) v[i] -= p * q[i];
      }
      double norm = 0.0;
      for (double e : v) norm += e * e;
      for (double& e : v) e /= std::sqrt(norm);
      Q.push_back(v);
    }
    std::vector<double> lambda(n);
    for (int64_t k = 0; k < n; ++k)
      lambda[k] =
          1.0 + (max_eigenvalue - 1.0) * static_cast<double>(k) / static_cast<double>(n - 1);
    A.assign(n * n, 0.0);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) A[i * n + j] += lambda[k] * Q[k][i] * Q[k][j];
    b.resize(n);
    for (double& e : b) e = normal(rng);
    x_star.assign(n, 0.0);
    for (int64_t k = 0; k < n; ++k) {
      double qb = 0.0;
      for (int64_t i = 0; i < n; ++i) qb += Q[k][i] * b[i];
      for (int64_t i = 0; i < n; ++i) x_star[i] += qb / lambda[k] * Q[k][i];
    }
  }

  double operator()(const std::vector<double>& x, std::vector<double>& grad) const {
    double f = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      double ax = 0.0;
      for (int64_t j = 0; j < n; ++j) ax += A[i * n + j] * x[j];
      grad[i] = ax - b[i];
      f += 0.5 * x[i] * ax - b[i] * x[i];
    }
    return f;
  }
};

double distance(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(sum);
}

TEST(LbfgsMinimize, RosenbrockFromTheClassicStart) {
  LbfgsResult result = minimize_lbfgs(rosenbrock, {-1.2, 1.0});
  EXPECT_TRUE(result.converged) << lbfgs_stop_name(result.stop);
  EXPECT_NEAR(result.x[0], 1.0, 1e-6);
  EXPECT_NEAR(result.x[1], 1.0, 1e-6);
  EXPECT_LT(result.f, 1e-12);
  EXPECT_LT(result.iterations, 60);  // ~35 for L-BFGS with a strong-Wolfe search
  EXPECT_GE(result.evaluations, result.iterations + 1);
  std::cout << "[ rosen  ] " << lbfgs_stop_name(result.stop) << " after " << result.iterations
            << " iterations, " << result.evaluations << " evaluations, f = " << result.f << "\n";
}

TEST(LbfgsMinimize, QuadraticIn10DReachesTheExactMinimizer) {
  // Condition number 10, history = n. With exact line searches L-BFGS would
  // end in n = 10 steps on a quadratic (it is conjugate gradients then); the
  // strong-Wolfe search accepts inexact steps (mostly t = 1), which costs
  // more: torch.optim.LBFGS (float64, strong_wolfe) takes 18-21 iterations on
  // such problems. The limit is f's resolution: the line search compares f
  // values, and f - f* = (x - x*)^T A (x - x*) / 2 drops below a double's
  // rounding of f once |x - x*| ~ 1e-8; the value tolerance ends it there.
  for (unsigned seed : {7u, 8u, 9u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Quadratic q(10, 10.0, seed);
    std::vector<double> grad(10);
    const double f_star = q(q.x_star, grad);
    LbfgsResult result = minimize_lbfgs(q, std::vector<double>(10, 0.0));
    EXPECT_TRUE(result.converged) << lbfgs_stop_name(result.stop);
    EXPECT_LT(distance(result.x, q.x_star), 1e-7);
    EXPECT_LE(result.f - f_star, 1e-14 * std::max(1.0, std::abs(f_star)));
    EXPECT_LE(result.iterations, 20);
    std::cout << "[ quad   ] seed " << seed << ": " << lbfgs_stop_name(result.stop) << " after "
              << result.iterations << " iterations, " << result.evaluations
              << " evaluations, |x - x*| = " << distance(result.x, q.x_star) << "\n";
  }
}

TEST(LbfgsMinimize, StrongWolfeConditionsHoldAtEveryAcceptedStep) {
  struct Problem {
    const char* name;
    LbfgsObjective f;
    std::vector<double> x0;
  };
  Quadratic q(10, 100.0, 3);
  const std::vector<Problem> problems = {
      {"rosenbrock", rosenbrock, {-1.2, 1.0}},
      {"rosenbrock far", rosenbrock, {3.0, -2.0}},
      {"quadratic cond 100", q, std::vector<double>(10, 1.0)},
  };
  for (const Problem& p : problems) {
    SCOPED_TRACE(p.name);
    int steps = 0, evaluations = 0;
    auto counted = [&](const std::vector<double>& x, std::vector<double>& grad) {
      ++evaluations;
      return p.f(x, grad);
    };
    auto check = [&](const LbfgsStep& step) {
      ++steps;
      EXPECT_EQ(step.iteration, steps);
      EXPECT_TRUE(step.wolfe) << "step " << step.iteration;
      EXPECT_LT(step.slope_before, 0.0) << "a descent direction";
      EXPECT_GT(step.t, 0.0);
      // Sufficient decrease and the strong curvature condition, c1 = 1e-4, c2 = 0.9.
      EXPECT_LE(step.f, step.f_before + 1e-4 * step.t * step.slope_before)
          << "step " << step.iteration;
      EXPECT_LE(std::abs(step.slope), 0.9 * std::abs(step.slope_before))
          << "step " << step.iteration;
      // The reported values are the objective's at the reported point.
      std::vector<double> x(step.x.begin(), step.x.end()), grad(x.size());
      EXPECT_EQ(p.f(x, grad), step.f);
      double slope = 0.0;
      for (size_t i = 0; i < x.size(); ++i) slope += grad[i] * step.direction[i];
      EXPECT_NEAR(slope, step.slope, 1e-12 * (1.0 + std::abs(slope)));
    };
    LbfgsResult result = minimize_lbfgs(counted, p.x0, {}, check);
    EXPECT_TRUE(result.converged) << lbfgs_stop_name(result.stop);
    EXPECT_EQ(steps, result.iterations);
    EXPECT_EQ(evaluations, result.evaluations);
    EXPECT_GT(steps, 3);
  }
}

// The result is never worse than x0 and is the objective's value at result.x.
void expect_not_worse(const LbfgsObjective& f, const std::vector<double>& x0,
                      const LbfgsResult& result) {
  std::vector<double> grad(x0.size());
  const double f0 = f(x0, grad);
  ASSERT_EQ(result.x.size(), x0.size());
  EXPECT_LE(result.f, f0);
  EXPECT_EQ(f(result.x, grad), result.f);
  EXPECT_TRUE(std::isfinite(result.f));
}

TEST(LbfgsMinimize, NeverWorseThanX0OnNastyFunctions) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  {
    SCOPED_TRACE("a gradient of the wrong sign: no step lowers f");
    auto liar = [](const std::vector<double>& x, std::vector<double>& grad) {
      double f = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        f += x[i] * x[i];
        grad[i] = -2.0 * x[i];
      }
      return f;
    };
    const std::vector<double> x0 = {1.0, -2.0, 0.5};
    LbfgsResult result = minimize_lbfgs(liar, x0);
    expect_not_worse(liar, x0, result);
    EXPECT_EQ(result.x, x0);
    EXPECT_FALSE(result.converged);
    EXPECT_EQ(result.stop, LbfgsStop::kLineSearch);
  }
  {
    SCOPED_TRACE("NaN beyond a wall; the minimum (x = 3) lies behind it");
    auto walled = [nan](const std::vector<double>& x, std::vector<double>& grad) {
      double f = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        if (x[i] > 1.0) return nan;
        f += (x[i] - 3.0) * (x[i] - 3.0);
        grad[i] = 2.0 * (x[i] - 3.0);
      }
      return f;
    };
    const std::vector<double> x0 = {0.0, -1.0};
    LbfgsResult result = minimize_lbfgs(walled, x0);
    expect_not_worse(walled, x0, result);
    EXPECT_LT(result.f, 12.0);  // it got close to the wall
  }
  {
    SCOPED_TRACE("infinite and NaN gradients in places, a kink, ripples");
    auto rough = [nan](const std::vector<double>& x, std::vector<double>& grad) {
      double f = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        f += std::abs(x[i]) + 0.05 * std::sin(40.0 * x[i]);
        grad[i] = (x[i] >= 0 ? 1.0 : -1.0) + 2.0 * std::cos(40.0 * x[i]);
        if (std::abs(x[i] - 0.3) < 1e-3) grad[i] = nan;
      }
      return f;
    };
    const std::vector<double> x0 = {1.7, -0.9, 2.3, 0.4};
    LbfgsResult result = minimize_lbfgs(rough, x0);
    expect_not_worse(rough, x0, result);
  }
  {
    SCOPED_TRACE("a noisy objective at the edge of its resolution");
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> noise(-1e-6, 1e-6);
    auto noisy = [&](const std::vector<double>& x, std::vector<double>& grad) {
      double f = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        f += (x[i] - 1.0) * (x[i] - 1.0);
        grad[i] = 2.0 * (x[i] - 1.0) + noise(rng);
      }
      return f;
    };
    const std::vector<double> x0 = {5.0, -3.0};
    LbfgsResult result = minimize_lbfgs(noisy, x0);
    std::vector<double> grad(2);
    EXPECT_LE(result.f, noisy(x0, grad));
    EXPECT_EQ(noisy(result.x, grad), result.f);  // f itself is deterministic
    EXPECT_LT(result.f, 1e-8);
  }
}

TEST(LbfgsMinimize, StoppingRules) {
  {
    SCOPED_TRACE("max_iterations");
    LbfgsOptions options;
    options.max_iterations = 3;
    LbfgsResult result = minimize_lbfgs(rosenbrock, {-1.2, 1.0}, options);
    EXPECT_EQ(result.iterations, 3);
    EXPECT_FALSE(result.converged);
    EXPECT_EQ(result.stop, LbfgsStop::kMaxIterations);
    EXPECT_LT(result.f, 24.2);  // f(x0) = 24.2
    options.max_iterations = 0;
    result = minimize_lbfgs(rosenbrock, {-1.2, 1.0}, options);
    EXPECT_EQ(result.iterations, 0);
    EXPECT_EQ(result.evaluations, 1);
    EXPECT_EQ(result.x, (std::vector<double>{-1.2, 1.0}));
    EXPECT_NEAR(result.f, 24.2, 1e-12);
  }
  {
    SCOPED_TRACE("already at the minimum");
    LbfgsResult result = minimize_lbfgs(rosenbrock, {1.0, 1.0});
    EXPECT_TRUE(result.converged);
    EXPECT_EQ(result.stop, LbfgsStop::kGradient);
    EXPECT_EQ(result.iterations, 0);
    EXPECT_EQ(result.f, 0.0);
  }
  {
    SCOPED_TRACE("value_tolerance: a loose ftol stops early, converged");
    LbfgsOptions options;
    options.value_tolerance = 1e-3;
    LbfgsResult result = minimize_lbfgs(rosenbrock, {-1.2, 1.0}, options);
    EXPECT_TRUE(result.converged);
    EXPECT_EQ(result.stop, LbfgsStop::kValueChange);
    EXPECT_LT(result.iterations, 35);
  }
  {
    SCOPED_TRACE("gradient_tolerance: a loose one stops early, converged");
    LbfgsOptions options;
    options.gradient_tolerance = 1e-2;
    options.value_tolerance = 0.0;
    Quadratic q(10, 10.0, 1);
    LbfgsResult result = minimize_lbfgs(q, std::vector<double>(10, 0.0), options);
    EXPECT_TRUE(result.converged);
    EXPECT_EQ(result.stop, LbfgsStop::kGradient);
    std::vector<double> grad(10);
    q(result.x, grad);
    for (double v : grad) EXPECT_LT(std::abs(v), 1e-2);
  }
}

TEST(LbfgsMinimize, BadArgumentsAreErrors) {
  LbfgsOptions o;
  o.gradient_tolerance = 0.0;
  expect_error(
      [&] {
        minimize_lbfgs(rosenbrock, {0.0, 0.0}, o);
      },
      {"minimize_lbfgs", "gradient_tolerance", "0"});
  o = {};
  o.value_tolerance = -1.0;
  expect_error([&] { minimize_lbfgs(rosenbrock, {0.0, 0.0}, o); }, {"value_tolerance", "-1"});
  o = {};
  o.max_iterations = -5;
  expect_error([&] { minimize_lbfgs(rosenbrock, {0.0, 0.0}, o); }, {"max_iterations", "-5"});
  o = {};
  o.history = 0;
  expect_error([&] { minimize_lbfgs(rosenbrock, {0.0, 0.0}, o); }, {"history", "0"});
  expect_error([&] { minimize_lbfgs(rosenbrock, {}); }, {"x0 is empty"});
  auto nan_at_start = [](const std::vector<double>&, std::vector<double>&) {
    return std::numeric_limits<double>::quiet_NaN();
  };
  expect_error([&] { minimize_lbfgs(nan_at_start, {1.0}); }, {"not finite at x0", "nan"});
}

// ---------------------------------------------------------------------------
// LBFGS against torch.optim.LBFGS

const json& fixtures() {
  static const json doc = [] {
    std::string path = std::string(BRIDLE_FIXTURES_DIR) + "/lbfgs_trajectories.json";
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("cannot open " + path + " (see scripts/make_lbfgs_fixtures.py)");
    return json::parse(in);
  }();
  return doc;
}

LBFGSOptions options_from(const json& o) {
  LBFGSOptions options;
  options.lr = o.at("lr").get<float>();
  options.max_iter = o.at("max_iter").get<int>();
  if (o.contains("max_eval")) options.max_eval = o.at("max_eval").get<int>();
  options.tolerance_grad = o.at("tolerance_grad").get<float>();
  options.tolerance_change = o.at("tolerance_change").get<float>();
  options.history_size = o.at("history_size").get<int>();
  options.line_search =
      o.contains("line_search_fn") ? LBFGSLineSearch::kStrongWolfe : LBFGSLineSearch::kNone;
  if (o.contains("line_search_fn")) {
    EXPECT_EQ(o.at("line_search_fn"), "strong_wolfe");
  }
  return options;
}

// Relative agreement with torch: |bridle - torch| <= kAtol + kRtol |torch|.
// Both compute in float32 with the same operations; they differ in rounding
// (dot products' summation order, the matmul and the loss's reductions), which
// the iterations carry along. The fixture's cases are ones where torch itself
// moves by at most a quarter of this tolerance under such rounding changes
// (the script checks it), and the iteration and evaluation counts must match
// exactly: the same branches of the algorithm, step after step.
constexpr double kRtol = 1e-5, kAtol = 1e-6;

TEST(LBFGSTrajectories, MatchTorchOptimLBFGS) {
  int with_wolfe = 0, without = 0;
  double worst = 0.0;
  std::string worst_case;
  for (const json& c : fixtures().at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const std::string problem = c.at("problem").get<std::string>();
    const Shape x_shape = c.at("X_shape").get<Shape>();
    const Tensor X = from_vector(c.at("X").get<std::vector<float>>(), x_shape);
    std::vector<Tensor> params;
    for (size_t i = 0; i < c.at("shapes").size(); ++i)
      params.push_back(from_vector(c.at("init")[i].get<std::vector<float>>(),
                                   c.at("shapes")[i].get<Shape>(),
                                   TensorOptions().with_requires_grad()));
    const LBFGSOptions options = options_from(c.at("options"));
    (options.line_search == LBFGSLineSearch::kStrongWolfe ? with_wolfe : without) += 1;
    LBFGS opt(params, options);
    Tensor labels, y;
    if (problem == "logistic") {
      labels = from_vector(c.at("labels").get<std::vector<int64_t>>());
    } else {
      ASSERT_EQ(problem, "least_squares");
      y = from_vector(c.at("y").get<std::vector<float>>(), {x_shape[0], 1});
    }
    auto closure = [&] {
      opt.zero_grad();
      Tensor loss;
      if (problem == "logistic") {
        loss = cross_entropy(linear(X, params[0], params[1]), labels);
      } else {
        Tensor r = linear(X, params[0], params[1]) - y;
        loss = mean(r * r);
      }
      loss.backward();
      return loss.item();
    };
    const json& steps = c.at("steps");
    ASSERT_EQ(steps.size(), 5u);
    for (size_t s = 0; s < steps.size(); ++s) {
      SCOPED_TRACE("step " + std::to_string(s + 1));
      const float loss = opt.step(closure);
      const double want_loss = steps[s].at("loss").get<double>();
      EXPECT_NEAR(loss, want_loss, kAtol + kRtol * std::abs(want_loss));
      auto track = [&](double got, double want) {
        const double fraction = std::abs(got - want) / (kAtol + kRtol * std::abs(want));
        if (fraction > worst) worst = fraction, worst_case = name;
      };
      track(loss, want_loss);
      // The same path: as many iterations and closure calls as torch.
      EXPECT_EQ(opt.iterations(), steps[s].at("n_iter").get<int64_t>());
      EXPECT_EQ(opt.evaluations(), steps[s].at("func_evals").get<int64_t>());
      EXPECT_LE(opt.history_length(), static_cast<size_t>(options.history_size));
      for (size_t i = 0; i < params.size(); ++i) {
        const std::vector<float> got = params[i].to_vector();
        const auto want = steps[s].at("params")[i].get<std::vector<double>>();
        ASSERT_EQ(got.size(), want.size());
        for (size_t k = 0; k < want.size(); ++k) {
          EXPECT_NEAR(got[k], want[k], kAtol + kRtol * std::abs(want[k]))
              << "parameter " << i << " element " << k;
          track(got[k], want[k]);
        }
      }
    }
    EXPECT_EQ(opt.step_count(), 5);
  }
  EXPECT_GE(with_wolfe, 2);
  EXPECT_GE(without, 2);
  // The largest difference as a fraction of the tolerance (the script checks
  // that rounding-level nudges move torch itself by at most 0.25 of it).
  std::cout << "[ worst  ] |bridle - torch| / (kAtol + kRtol |torch|) = " << worst << " ("
            << worst_case << ")\n";
}

// ---------------------------------------------------------------------------
// LBFGS: the rest

TEST(LBFGSOptimizer, SolvesRosenbrockInFloat32) {
  // The closure writes the gradient itself: the contract only asks that it
  // leaves each parameter's .grad set and returns the loss.
  for (LBFGSLineSearch line_search : {LBFGSLineSearch::kStrongWolfe, LBFGSLineSearch::kNone}) {
    Tensor p = from_vector({-1.2f, 1.0f}, {2}, TensorOptions().with_requires_grad());
    LBFGS opt({p}, {.line_search = line_search});
    int calls = 0;
    auto closure = [&] {
      ++calls;
      std::vector<double> x = {p.at({0}), p.at({1})}, grad(2);
      const double f = rosenbrock(x, grad);
      p.set_grad(from_vector({static_cast<float>(grad[0]), static_cast<float>(grad[1])}, {2}));
      return static_cast<float>(f);
    };
    for (int i = 0; i < 10; ++i) opt.step(closure);
    EXPECT_NEAR(p.at({0}), 1.0, 1e-3) << static_cast<int>(line_search);
    EXPECT_NEAR(p.at({1}), 1.0, 2e-3) << static_cast<int>(line_search);
    EXPECT_EQ(calls, opt.evaluations());
  }
}

TEST(LBFGSOptimizer, ReturnsAtOnceWhenTheGradientIsBelowTolerance) {
  Tensor p = from_vector({2.0f, -1.0f}, {2}, TensorOptions().with_requires_grad());
  LBFGS opt({p}, {.tolerance_grad = 1e-3f});
  int calls = 0;
  auto closure = [&] {
    ++calls;
    p.set_grad(from_vector({1e-4f, -1e-3f}, {2}));  // max |g| <= tolerance_grad
    return 3.5f;
  };
  EXPECT_EQ(opt.step(closure), 3.5f);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(opt.iterations(), 0);
  EXPECT_EQ(p.to_vector(), (std::vector<float>{2.0f, -1.0f}));
}

TEST(LBFGSOptimizer, MissingGradientsReadAsZero) {
  // b gets no gradient: it stays put while a is minimized.
  Tensor a = from_vector({3.0f}, {1}, TensorOptions().with_requires_grad());
  Tensor b = from_vector({5.0f, 6.0f}, {2}, TensorOptions().with_requires_grad());
  LBFGS opt({a, b}, {.line_search = LBFGSLineSearch::kStrongWolfe});
  auto closure = [&] {
    opt.zero_grad(/*set_to_none=*/true);
    Tensor loss = sum((a - 1.0f) * (a - 1.0f));
    loss.backward();
    return loss.item();
  };
  opt.step(closure);
  EXPECT_NEAR(a.at({0}), 1.0, 1e-5);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{5.0f, 6.0f}));
}

TEST(LBFGSOptimizer, NeedsAClosureAndOneGroup) {
  Tensor p = from_vector({1.0f}, {1}, TensorOptions().with_requires_grad());
  Tensor q = from_vector({1.0f}, {1}, TensorOptions().with_requires_grad());
  LBFGS opt({p});
  expect_error([&] { opt.step(); }, {"LBFGS", "needs a closure"});
  Optimizer& base = opt;
  expect_error([&] { base.step(); }, {"needs a closure"});
  expect_error([&] { opt.step(std::function<float()>()); }, {"closure is empty"});
  expect_error(
      [&] {
        LBFGS({{.params = {p}}, {.params = {q}}}, LBFGSOptions{});
      },
      {"LBFGS", "2 parameter groups", "exactly one"});
  expect_error([&] { LBFGS({{.params = {p}, .weight_decay = 0.1f}}, LBFGSOptions{}); },
               {"LBFGS", "weight_decay", "0.1"});
  // No state(): the base class says it cannot be checkpointed.
  expect_error([&] { opt.state(); }, {"cannot be checkpointed"});
  EXPECT_EQ(opt.max_eval(), 25);  // max_iter * 5 / 4
  EXPECT_EQ(LBFGS({p}, {.max_iter = 7}).max_eval(), 8);
  EXPECT_EQ(LBFGS({p}, {.max_iter = 7, .max_eval = 3}).max_eval(), 3);
}

TEST(LBFGSOptimizer, BadOptionsNameTheValue) {
  auto make = [](LBFGSOptions o) {
    Tensor p = from_vector({1.0f}, {1}, TensorOptions().with_requires_grad());
    LBFGS opt({p}, o);
  };
  expect_error([&] { make({.lr = -0.5f}); }, {"LBFGS", "learning rate", "-0.5"});
  expect_error([&] { make({.lr = 0.0f}); }, {"learning rate", "0"});
  expect_error([&] { make({.max_iter = 0}); }, {"max_iter", "0"});
  expect_error([&] { make({.max_eval = -2}); }, {"max_eval", "-2"});
  expect_error([&] { make({.tolerance_grad = -1e-3f}); }, {"tolerance_grad", "-0.001"});
  expect_error([&] { make({.tolerance_change = std::nanf("")}); }, {"tolerance_change", "nan"});
  expect_error([&] { make({.history_size = 0}); }, {"history_size", "0"});
  expect_error([&] { make({.line_search = static_cast<LBFGSLineSearch>(7)}); },
               {"line_search", "7"});
}

}  // namespace
}  // namespace bridle
