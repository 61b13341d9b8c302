// L-BFGS: the strong-Wolfe line search both versions share, minimize_lbfgs
// (double) and the LBFGS optimizer (float32, torch.optim.LBFGS); see lbfgs.h.
//
// The line search is a template over the element type T of the gradients:
// double for minimize_lbfgs, float for LBFGS. For float it rounds the two
// tests that torch evaluates on float32 tensors (the sufficient-decrease bound
// f + c1 t g.d and the curvature bound -c2 g.d) to float32 as torch does; the
// interpolation itself is in double (torch mixes Python floats and 0-d
// tensors there: the difference is a rounding of t).
//
// This file is built with -ffp-contract=off (lib/CMakeLists.txt): where torch
// fuses a multiply-add (add_(v, alpha=a) is one FMA per element) the code says
// std::fma, and nowhere else may the compiler fuse one.
#include "optim/lbfgs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "core/error.h"

namespace bridle {
namespace {

constexpr double kC1 = 1e-4;  // sufficient decrease
constexpr double kC2 = 0.9;   // curvature
constexpr int kMaxLineSearch = 25;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

// a.b, accumulated in double and returned as T (float32 for LBFGS: within
// rounding of torch's float32 BLAS dot).
template <typename T>
T dot(const std::vector<T>& a, const std::vector<T>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return static_cast<T>(sum);
}

template <typename T>
T max_abs(const std::vector<T>& v) {
  T m = 0;
  for (T x : v) m = std::max(m, std::abs(x));
  return m;
}

template <typename T>
T sum_abs(const std::vector<T>& v) {
  double sum = 0.0;
  for (T x : v) sum += std::abs(x);
  return static_cast<T>(sum);
}

// _cubic_interpolate: the minimizer of the cubic through (x1, f1) and (x2, f2)
// with slopes g1 and g2, clamped to [lo, hi] (the interval between x1 and x2
// unless bounds are given); the midpoint where the cubic has no minimizer.
// (Torch returns NaN where the formula divides 0 by 0; here the midpoint.)
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                         std::optional<std::pair<double, double>> bounds = std::nullopt) {
  const auto [lo, hi] = bounds ? *bounds : (x1 <= x2 ? std::pair{x1, x2} : std::pair{x2, x1});
  // d1 = g1 + g2 - 3 (f1 - f2) / (x1 - x2),  d2 = sqrt(d1^2 - g1 g2),
  // min_pos = x2 - (x2 - x1) (g2 + d2 - d1) / (g2 - g1 + 2 d2)   (x2 the farther point)
  const double d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (d2_square >= 0.0) {
    const double d2 = std::sqrt(d2_square);
    const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2));
    if (!std::isnan(min_pos)) return std::min(std::max(min_pos, lo), hi);
  }
  return (lo + hi) / 2.0;
}

// f_new > f + c1 t gtd: the sufficient-decrease condition fails. For float,
// torch computes the bound as float32 tensors: float(f) + float(c1 t) * gtd.
template <typename T>
bool above_armijo(double f_new, double f, double t, T gtd) {
  if constexpr (std::is_same_v<T, float>) {
    const float product = static_cast<float>(kC1 * t) * gtd;
    return static_cast<float>(f_new) > static_cast<float>(f) + product;
  } else {
    return f_new > f + kC1 * t * gtd;
  }
}

// |gtd_new| <= -c2 gtd: the strong curvature condition holds.
template <typename T>
bool curvature_holds(T gtd_new, T gtd) {
  return std::abs(gtd_new) <= static_cast<T>(-kC2) * gtd;
}

// |b1 - b0| * max|d| < tolerance: the bracket is too short to refine.
template <typename T>
bool bracket_too_short(double b0, double b1, T d_norm, double tolerance) {
  return static_cast<T>(std::abs(b1 - b0)) * d_norm < static_cast<T>(tolerance);
}

template <typename T>
struct LineSearchResult {
  double f = 0.0;
  std::vector<T> g;
  double t = 0.0;
  int evaluations = 0;
  bool wolfe = false;  // both strong-Wolfe conditions hold at t
};

// _strong_wolfe. evaluate(t, g) returns f(x + t d) and writes its gradient;
// f and g are at x, gtd = g.d < 0, t is the first trial step. Returns the
// point it settles on: one that meets the strong-Wolfe conditions, or else the
// lowest sufficient-decrease point of the final bracket (t = 0, f, g when there
// is none).
template <typename T, typename Evaluate>
LineSearchResult<T> strong_wolfe(const Evaluate& evaluate, const std::vector<T>& d, double t,
                                 double f, const std::vector<T>& g, T gtd, double tolerance) {
  const T d_norm = max_abs(d);
  std::vector<T> g_new(d.size());
  double f_new = evaluate(t, g_new);
  int evaluations = 1;
  T gtd_new = dot(g_new, d);

  // Bracketing: grow t until [t_prev, t] holds a point meeting the conditions.
  double t_prev = 0.0, f_prev = f;
  std::vector<T> g_prev = g;
  T gtd_prev = gtd;
  bool done = false;
  int ls_iter = 0;
  double bracket[2] = {0.0, 0.0}, bracket_f[2] = {0.0, 0.0};
  std::vector<T> bracket_g[2];
  T bracket_gtd[2] = {0, 0};
  bool single = false;  // bracket = [t]: the conditions hold at t
  auto set_bracket = [&]() {
    bracket[0] = t_prev, bracket[1] = t;
    bracket_f[0] = f_prev, bracket_f[1] = f_new;
    bracket_g[0] = g_prev, bracket_g[1] = g_new;
    bracket_gtd[0] = gtd_prev, bracket_gtd[1] = gtd_new;
  };
  while (ls_iter < kMaxLineSearch) {
    if (above_armijo(f_new, f, t, gtd) || (ls_iter > 1 && f_new >= f_prev)) {
      set_bracket();
      break;
    }
    if (curvature_holds(gtd_new, gtd)) {
      bracket[0] = t, bracket_f[0] = f_new, bracket_g[0] = g_new;
      single = done = true;
      break;
    }
    if (gtd_new >= 0) {
      set_bracket();
      break;
    }
    // Extrapolate: the cubic's minimizer, at least 1% beyond t and at most 10 t.
    const double min_step = t + 0.01 * (t - t_prev), max_step = t * 10.0;
    const double previous = t;
    t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, {{min_step, max_step}});
    t_prev = previous, f_prev = f_new, g_prev = g_new, gtd_prev = gtd_new;
    f_new = evaluate(t, g_new);
    ++evaluations;
    gtd_new = dot(g_new, d);
    ++ls_iter;
  }
  if (ls_iter == kMaxLineSearch) {  // out of trials: between 0 and the last t
    bracket[0] = 0.0, bracket[1] = t;
    bracket_f[0] = f, bracket_f[1] = f_new;
    bracket_g[0] = g, bracket_g[1] = g_new;
  }

  // Zoom: shrink the bracket by cubic interpolation until a point meets the
  // conditions; `low` is the end with the lower f.
  bool insufficient_progress = false;
  int low = single || bracket_f[0] <= bracket_f[1] ? 0 : 1, high = 1 - low;
  while (!done && ls_iter < kMaxLineSearch) {
    if (bracket_too_short(bracket[0], bracket[1], d_norm, tolerance)) break;
    t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1],
                          bracket_gtd[1]);
    // A t within 10% of the bracket's length from an end makes little progress:
    // the second time in a row, or at an end, move it to 10% inside.
    const double b_max = std::max(bracket[0], bracket[1]), b_min = std::min(bracket[0], bracket[1]);
    const double eps = 0.1 * (b_max - b_min);
    if (std::min(b_max - t, t - b_min) < eps) {
      if (insufficient_progress || t >= b_max || t <= b_min) {
        t = std::abs(t - b_max) < std::abs(t - b_min) ? b_max - eps : b_min + eps;
        insufficient_progress = false;
      } else {
        insufficient_progress = true;
      }
    } else {
      insufficient_progress = false;
    }
    f_new = evaluate(t, g_new);
    ++evaluations;
    gtd_new = dot(g_new, d);
    ++ls_iter;
    if (above_armijo(f_new, f, t, gtd) || f_new >= bracket_f[low]) {
      // Not low enough: t becomes the high end.
      bracket[high] = t, bracket_f[high] = f_new;
      bracket_g[high] = g_new, bracket_gtd[high] = gtd_new;
      low = bracket_f[0] <= bracket_f[1] ? 0 : 1, high = 1 - low;
    } else {
      if (curvature_holds(gtd_new, gtd)) {
        done = true;
      } else if (gtd_new * (bracket[high] - bracket[low]) >= 0) {
        // The slope at t points away from high: the old low becomes high.
        bracket[high] = bracket[low], bracket_f[high] = bracket_f[low];
        bracket_g[high] = bracket_g[low], bracket_gtd[high] = bracket_gtd[low];
      }
      bracket[low] = t, bracket_f[low] = f_new;
      bracket_g[low] = g_new, bracket_gtd[low] = gtd_new;
    }
  }
  return {bracket_f[low], std::move(bracket_g[low]), bracket[low], evaluations, done};
}

}  // namespace

// ---------------------------------------------------------------------------
// minimize_lbfgs

const char* lbfgs_stop_name(LbfgsStop stop) {
  switch (stop) {
    case LbfgsStop::kGradient:
      return "gradient below tolerance";
    case LbfgsStop::kValueChange:
      return "function change below tolerance";
    case LbfgsStop::kMaxIterations:
      return "max_iterations reached";
    case LbfgsStop::kLineSearch:
      return "line search found no lower point";
  }
  return "unknown";
}

void check_lbfgs_options(const std::string& who, const LbfgsOptions& options) {
  BRIDLE_CHECK(options.gradient_tolerance > 0.0,
               "{}: LbfgsOptions.gradient_tolerance must be > 0, got {}", who,
               options.gradient_tolerance);
  BRIDLE_CHECK(options.value_tolerance >= 0.0,
               "{}: LbfgsOptions.value_tolerance must be >= 0, got {}", who,
               options.value_tolerance);
  BRIDLE_CHECK(options.max_iterations >= 0, "{}: LbfgsOptions.max_iterations must be >= 0, got {}",
               who, options.max_iterations);
  BRIDLE_CHECK(options.history >= 1, "{}: LbfgsOptions.history must be >= 1, got {}", who,
               options.history);
}

namespace {

// x + t d, the one formula for the trial points and the accepted step.
void point_along(const std::vector<double>& x, double t, const std::vector<double>& d,
                 std::vector<double>& out) {
  out.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] + t * d[i];
}

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

}  // namespace

LbfgsResult minimize_lbfgs(const LbfgsObjective& objective, std::vector<double> x0,
                           const LbfgsOptions& options, const LbfgsObserver& observer) {
  check_lbfgs_options("minimize_lbfgs", options);
  BRIDLE_CHECK(!x0.empty(), "minimize_lbfgs: x0 is empty");
  BRIDLE_CHECK(objective, "minimize_lbfgs: the objective is empty");
  const size_t n = x0.size();
  LbfgsResult result;

  // Every evaluation goes through here: a non-finite f or gradient reads as
  // +infinity, and the lowest point seen is kept (x0 first), so the result is
  // never worse than x0 whatever the line search does.
  std::vector<double> best_x = x0;
  double best_f = kInfinity;
  auto evaluate = [&](const std::vector<double>& x, std::vector<double>& grad) {
    grad.assign(n, 0.0);
    const double f = objective(x, grad);
    ++result.evaluations;
    BRIDLE_CHECK(grad.size() == n,
                 "minimize_lbfgs: the objective resized the gradient from {} to {}", n,
                 grad.size());
    if (!std::isfinite(f) || !all_finite(grad)) return kInfinity;
    if (f < best_f) {
      best_f = f;
      best_x = x;
    }
    return f;
  };

  std::vector<double> x = std::move(x0), g(n);
  double f = evaluate(x, g);
  BRIDLE_CHECK(std::isfinite(f),
               "minimize_lbfgs: the objective or its gradient is not finite at x0 (f(x0) = {})",
               objective(x, g));

  struct Pair {
    std::vector<double> s, y;  // s = x_{k+1} - x_k, y = g_{k+1} - g_k
    double rho;                // 1 / (y.s)
  };
  std::deque<Pair> history;
  std::vector<double> d(n), alpha, trial(n), next_x(n);
  for (;;) {
    if (max_abs(g) < options.gradient_tolerance) {
      result.converged = true;
      result.stop = LbfgsStop::kGradient;
      break;
    }
    if (result.iterations >= options.max_iterations) {
      result.stop = LbfgsStop::kMaxIterations;
      break;
    }
    // d = -H g by the two-loop recursion, H_0 = (s.y / y.y) I of the newest pair;
    // without pairs (or if rounding spoilt descent) d = -g, first step
    // min(1, 1 / sum|g|) as torch's.
    double t = 1.0, gtd = 0.0;
    if (!history.empty()) {
      d = g;
      alpha.assign(history.size(), 0.0);
      for (size_t k = history.size(); k-- > 0;) {
        alpha[k] = history[k].rho * dot(history[k].s, d);
        for (size_t i = 0; i < n; ++i) d[i] -= alpha[k] * history[k].y[i];
      }
      const Pair& newest = history.back();
      const double h_diag = dot(newest.s, newest.y) / dot(newest.y, newest.y);
      for (double& v : d) v *= h_diag;
      for (size_t k = 0; k < history.size(); ++k) {
        const double beta = history[k].rho * dot(history[k].y, d);
        for (size_t i = 0; i < n; ++i) d[i] += (alpha[k] - beta) * history[k].s[i];
      }
      for (double& v : d) v = -v;
      gtd = dot(g, d);
      if (!(gtd < 0.0)) history.clear();
    }
    if (history.empty()) {
      for (size_t i = 0; i < n; ++i) d[i] = -g[i];
      gtd = -dot(g, g);
      t = std::min(1.0, 1.0 / sum_abs(g));
    }

    // The line search; it stops refining once the bracket moves x by less than
    // 1e-12 of its size (a few thousand ulps: nothing finer is resolvable).
    auto along = [&](double step, std::vector<double>& grad) {
      point_along(x, step, d, trial);
      return evaluate(trial, grad);
    };
    const double tolerance = 1e-12 * std::max(1.0, max_abs(x));
    LineSearchResult<double> ls = strong_wolfe(along, d, t, f, g, gtd, tolerance);
    if (!(ls.f < f)) {
      // Nothing lower along d. With curvature pairs, retry once along -g
      // without them; along -g itself it is rounding noise (or a nasty f).
      if (!history.empty()) {
        history.clear();
        continue;
      }
      result.stop = LbfgsStop::kLineSearch;
      break;
    }
    ++result.iterations;
    point_along(x, ls.t, d, next_x);
    Pair pair{std::vector<double>(n), std::vector<double>(n), 0.0};
    for (size_t i = 0; i < n; ++i) {
      pair.s[i] = next_x[i] - x[i];
      pair.y[i] = ls.g[i] - g[i];
    }
    // Keep the pair only with positive curvature, so H stays positive definite
    // (the curvature condition guarantees it whenever the search met it).
    const double sy = dot(pair.s, pair.y);
    if (sy > 1e-12 * std::sqrt(dot(pair.s, pair.s) * dot(pair.y, pair.y))) {
      pair.rho = 1.0 / sy;
      history.push_back(std::move(pair));
      if (static_cast<int>(history.size()) > options.history) history.pop_front();
    }
    if (observer) {
      observer(LbfgsStep{.iteration = result.iterations,
                         .t = ls.t,
                         .f_before = f,
                         .slope_before = gtd,
                         .f = ls.f,
                         .slope = dot(ls.g, d),
                         .wolfe = ls.wolfe,
                         .x = next_x,
                         .grad = ls.g,
                         .direction = d});
    }
    // scipy's ftol: near the minimum a sum of N rounded terms cannot resolve
    // smaller changes, and the gradient stays at its noise floor.
    const bool stalled =
        f - ls.f <= options.value_tolerance * std::max({1.0, std::abs(f), std::abs(ls.f)});
    x.swap(next_x);
    g = std::move(ls.g);
    f = ls.f;
    if (stalled) {
      result.converged = true;
      result.stop = LbfgsStop::kValueChange;
      break;
    }
  }
  result.x = std::move(best_x);
  result.f = best_f;
  return result;
}

// ---------------------------------------------------------------------------
// LBFGS
//
// Parameters on a GPU are staged through the host: the state (d, the curvature
// pairs, the previous gradient) stays in host vectors, the gradients are copied
// to the host, and each update copies a parameter to the host, runs the same
// float arithmetic as for a CPU parameter and copies the result back into the
// parameter's own memory. L-BFGS is for small problems (temperature scaling fits
// one scalar): its work per iteration is a few dot products over the flat
// vector, less than the closure's. Staging keeps one implementation and
// torch-exact rounding: given the same losses and gradients from the closure, a
// GPU run takes the CPU run's steps bit for bit.

namespace {

const LBFGSOptions& check_options(const LBFGSOptions& o) {
  BRIDLE_CHECK(std::isfinite(o.lr) && o.lr > 0.0f, "LBFGS: invalid learning rate {} (must be > 0)",
               o.lr);
  BRIDLE_CHECK(o.max_iter >= 1, "LBFGS: invalid max_iter {} (must be >= 1)", o.max_iter);
  BRIDLE_CHECK(!o.max_eval || *o.max_eval >= 1, "LBFGS: invalid max_eval {} (must be >= 1)",
               o.max_eval.value_or(0));
  BRIDLE_CHECK(std::isfinite(o.tolerance_grad) && o.tolerance_grad >= 0.0f,
               "LBFGS: invalid tolerance_grad {} (must be >= 0)", o.tolerance_grad);
  BRIDLE_CHECK(std::isfinite(o.tolerance_change) && o.tolerance_change >= 0.0f,
               "LBFGS: invalid tolerance_change {} (must be >= 0)", o.tolerance_change);
  BRIDLE_CHECK(o.history_size >= 1, "LBFGS: invalid history_size {} (must be >= 1)",
               o.history_size);
  BRIDLE_CHECK(
      o.line_search == LBFGSLineSearch::kNone || o.line_search == LBFGSLineSearch::kStrongWolfe,
      "LBFGS: unknown line_search {} (kNone or kStrongWolfe)", static_cast<int>(o.line_search));
  return o;
}

std::vector<ParamGroup> check_groups(std::vector<ParamGroup> groups) {
  BRIDLE_CHECK(groups.size() == 1,
               "LBFGS: got {} parameter groups; LBFGS supports exactly one (as PyTorch: it "
               "flattens all parameters into one vector)",
               groups.size());
  BRIDLE_CHECK(!groups[0].weight_decay || *groups[0].weight_decay == 0.0f,
               "LBFGS: has no weight decay, but the parameter group sets weight_decay {}",
               groups[0].weight_decay.value_or(0.0f));
  return groups;
}

// t's elements in host memory: t itself on the CPU, else a host copy (of a
// detached alias: autograd records nothing).
Tensor host_copy(const Tensor& t) { return t.device().is_cpu() ? t : t.detach().cpu(); }

// Stores host, a host tensor of p's shape, in p: on a GPU copied into p's own
// memory (p stays the same tensor); on the CPU host is p's own memory already.
void write_back(Tensor& p, const Tensor& host) {
  if (!p.device().is_cpu()) p.copy_(host);
}

}  // namespace

LBFGS::LBFGS(std::vector<Tensor> params, LBFGSOptions options)
    : LBFGS(std::vector<ParamGroup>{{.params = std::move(params)}}, options) {}

LBFGS::LBFGS(std::vector<ParamGroup> groups, LBFGSOptions options)
    : Optimizer(check_groups(std::move(groups)), check_options(options).lr, 0.0f),
      options_(options),
      max_eval_(options.max_eval.value_or(options.max_iter * 5 / 4)) {
  const Device device = params_[0].device();
  for (size_t i = 0; i < params_.size(); ++i) {
    BRIDLE_CHECK(params_[i].dtype() == kFloat32,
                 "LBFGS: parameter {} is {}; LBFGS updates float32 parameters", i,
                 dtype_name(params_[i].dtype()));
    BRIDLE_CHECK(params_[i].device() == device,
                 "LBFGS: parameter 0 is on {} but parameter {} on {}; LBFGS flattens all "
                 "parameters into one vector, so they must be on one device",
                 device.str(), i, params_[i].device().str());
  }
}

void LBFGS::step() {
  BRIDLE_FAIL(
      "LBFGS::step: LBFGS needs a closure: call step(closure) with a closure that zeroes the "
      "gradients, computes the loss, calls backward() and returns the loss (it re-evaluates the "
      "loss several times per step)");
}

int64_t LBFGS::numel() const {
  int64_t total = 0;
  for (const Tensor& p : params_) total += p.numel();
  return total;
}

std::vector<float> LBFGS::flat_grad() const {
  std::vector<float> flat(static_cast<size_t>(numel()), 0.0f);
  size_t offset = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (g.defined()) {  // a parameter no gradient reached reads as zeros
      BRIDLE_CHECK(g.dtype() == kFloat32 && g.numel() == p.numel() && g.device() == p.device(),
                   "LBFGS: the gradient of parameter {} is {} {} on {}, the parameter {} {} on {}",
                   i, dtype_name(g.dtype()), shape_str(g.shape()), g.device().str(),
                   dtype_name(p.dtype()), shape_str(p.shape()), p.device().str());
      std::copy_n(host_copy(g).data<float>(), g.numel(),
                  flat.begin() + static_cast<int64_t>(offset));
    }
    offset += static_cast<size_t>(p.numel());
  }
  return flat;
}

void LBFGS::add_to_params(double t, const std::vector<float>& update) {
  // torch's p.add_(update, alpha=t): alpha rounded to float32, one FMA each.
  const auto alpha = static_cast<float>(t);
  size_t offset = 0;
  for (Tensor& p : params_) {
    const Tensor host = host_copy(p);
    float* data = host.data<float>();
    for (int64_t k = 0; k < p.numel(); ++k) data[k] = std::fma(alpha, update[offset + k], data[k]);
    write_back(p, host);
    offset += static_cast<size_t>(p.numel());
  }
}

std::vector<float> LBFGS::flat_params() const {
  std::vector<float> flat;
  flat.reserve(static_cast<size_t>(numel()));
  for (const Tensor& p : params_) {
    const Tensor host = host_copy(p);
    flat.insert(flat.end(), host.data<float>(), host.data<float>() + p.numel());
  }
  return flat;
}

void LBFGS::set_params(const std::vector<float>& flat) {
  size_t offset = 0;
  for (Tensor& p : params_) {
    const Tensor host = p.device().is_cpu() ? p : Tensor::empty(p.shape());
    std::copy_n(flat.begin() + static_cast<int64_t>(offset), p.numel(), host.data<float>());
    write_back(p, host);
    offset += static_cast<size_t>(p.numel());
  }
}

float LBFGS::step(const std::function<float()>& closure) {
  BRIDLE_CHECK(closure, "LBFGS::step: the closure is empty");
  ++step_count_;
  const float lr = this->lr();
  const int max_iter = options_.max_iter;
  const float tolerance_grad = options_.tolerance_grad;
  const float tolerance_change = options_.tolerance_change;

  // f and g at the start.
  const float orig_loss = closure();
  double loss = orig_loss;
  int current_evals = 1;
  ++func_evals_;
  std::vector<float> g = flat_grad();
  bool opt_cond = max_abs(g) <= tolerance_grad;
  if (opt_cond) return orig_loss;

  int n_iter = 0;
  while (n_iter < max_iter) {
    ++n_iter;
    ++n_iter_;

    // The direction.
    const size_t n = g.size();
    if (n_iter_ == 1) {
      d_.resize(n);
      for (size_t i = 0; i < n; ++i) d_[i] = -g[i];
      old_dirs_.clear(), old_stps_.clear(), ro_.clear();
      h_diag_ = 1.0f;
    } else {
      // The newest pair: y = g - g_prev, s = t d (the step the last iteration took).
      std::vector<float> y(n), s(n);
      const auto t = static_cast<float>(t_);
      for (size_t i = 0; i < n; ++i) {
        y[i] = g[i] - prev_flat_grad_[i];
        s[i] = d_[i] * t;
      }
      const float ys = dot(y, s);
      if (ys > 1e-10f) {
        if (static_cast<int>(old_dirs_.size()) == options_.history_size) {
          old_dirs_.pop_front(), old_stps_.pop_front(), ro_.pop_front();
        }
        h_diag_ = ys / dot(y, y);
        old_dirs_.push_back(std::move(y));
        old_stps_.push_back(std::move(s));
        ro_.push_back(1.0f / ys);
      }
      // Two-loop recursion, as torch writes it: q = -g, ..., d = r.
      const size_t num_old = old_dirs_.size();
      std::vector<float> al(num_old), q(n);
      for (size_t i = 0; i < n; ++i) q[i] = -g[i];
      for (size_t k = num_old; k-- > 0;) {
        al[k] = dot(old_stps_[k], q) * ro_[k];
        const float a = -al[k];
        for (size_t i = 0; i < n; ++i) q[i] = std::fma(a, old_dirs_[k][i], q[i]);
      }
      for (size_t i = 0; i < n; ++i) d_[i] = q[i] * h_diag_;
      for (size_t k = 0; k < num_old; ++k) {
        const float be = dot(old_dirs_[k], d_) * ro_[k];
        const float a = al[k] - be;
        for (size_t i = 0; i < n; ++i) d_[i] = std::fma(a, old_stps_[k][i], d_[i]);
      }
    }
    prev_flat_grad_ = g;
    prev_loss_ = loss;

    // The step length: min(1, 1 / sum|g|) * lr on the very first iteration
    // (a float32 product when 1 / sum|g| < 1, as torch's tensor), else lr.
    if (n_iter_ == 1) {
      const float inverse = 1.0f / sum_abs(g);
      t_ = inverse < 1.0f ? static_cast<double>(inverse * lr) : static_cast<double>(lr);
    } else {
      t_ = lr;
    }
    const float gtd = dot(g, d_);
    if (gtd > -tolerance_change) break;  // not a descent direction (any more)

    int ls_func_evals = 0;
    if (options_.line_search == LBFGSLineSearch::kStrongWolfe) {
      const std::vector<float> x_init = flat_params();
      auto evaluate = [&](double t, std::vector<float>& grad) {
        add_to_params(t, d_);
        const double f = closure();
        grad = flat_grad();
        set_params(x_init);
        return f;
      };
      LineSearchResult<float> ls = strong_wolfe(evaluate, d_, t_, loss, g, gtd, 1e-9);
      loss = ls.f;
      g = std::move(ls.g);
      t_ = ls.t;
      ls_func_evals = ls.evaluations;
      add_to_params(t_, d_);
      opt_cond = max_abs(g) <= tolerance_grad;
    } else {
      add_to_params(t_, d_);
      if (n_iter != max_iter) {
        // Not after the last iteration: torch saves the evaluation (in a
        // stochastic setting it would be of no use).
        loss = closure();
        g = flat_grad();
        opt_cond = max_abs(g) <= tolerance_grad;
        ls_func_evals = 1;
      }
    }
    current_evals += ls_func_evals;
    func_evals_ += ls_func_evals;

    if (n_iter == max_iter) break;
    if (current_evals >= max_eval_) break;
    if (opt_cond) break;
    // Lack of progress: a tiny step, or a tiny change of the loss.
    float step_max = 0.0f;
    const auto t = static_cast<float>(t_);
    for (float v : d_) step_max = std::max(step_max, std::abs(v * t));
    if (step_max <= tolerance_change) break;
    if (std::abs(loss - prev_loss_) < static_cast<double>(tolerance_change)) break;
  }
  return orig_loss;
}

}  // namespace bridle
