// L-BFGS, twice: minimize_lbfgs, a double-precision minimizer of a function
// on std::vector<double> for small problems (the scaling calibrators in
// lib/calib fit with it), and LBFGS, the torch.optim.LBFGS optimizer over
// tensors (torch 1.13's torch/optim/lbfgs.py, in float32).
//
// Both take the direction d = -H g from the two-loop recursion (Nocedal &
// Wright, "Numerical Optimization", algorithm 7.4) over the last m pairs
//   s = x_{k+1} - x_k,  y = g_{k+1} - g_k   (kept only when y.s > 0),
// with H_0 = (s.y / y.y) I from the newest pair, and a step t along d from
// PyTorch's strong-Wolfe line search (_strong_wolfe and _cubic_interpolate,
// ported from minFunc): t is accepted when
//   f(x + t d) <= f(x) + c1 t g.d           (sufficient decrease, c1 = 1e-4)
//   |g(x + t d).d| <= c2 |g.d|              (curvature, c2 = 0.9)
// found by bracketing (growing t by cubic extrapolation, at most 10x a step)
// and then zooming into the bracket by cubic interpolation, at most 25 trial
// steps in all. The first iteration steps t = min(1, 1 / sum|g|) along -g.
//
// Tests: tests/optim/test_lbfgs.cpp (Rosenbrock, quadratics, the Wolfe
// conditions at every step, never worse than x0; LBFGS against torch's
// trajectories in tests/fixtures/lbfgs_trajectories.json, written by
// scripts/make_lbfgs_fixtures.py). The calibrators' tests exercise the fits.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace bridle {

// ---------------------------------------------------------------------------
// minimize_lbfgs: double precision, for small problems (a few thousand
// variables at most: it keeps 2 * history vectors of x's size).

// The stopping rules. It has converged when every |df/dx_i| < gradient_tolerance,
// or when an iteration lowers f by at most value_tolerance * max(1, |f|)
// (scipy's ftol): the limit of what a double sum over N samples resolves.
struct LbfgsOptions {
  double gradient_tolerance = 1e-9;
  double value_tolerance = 1e-14;
  int max_iterations = 1000;
  int history = 10;  // (s, y) pairs kept for the inverse-Hessian estimate
};

// Why minimize_lbfgs stopped.
enum class LbfgsStop {
  kGradient,       // max |grad| < gradient_tolerance (converged)
  kValueChange,    // f changed by at most value_tolerance * max(1, |f|) (converged)
  kMaxIterations,  // max_iterations reached first
  kLineSearch,     // no step along -grad lowered f: rounding noise, or a nasty f
};
const char* lbfgs_stop_name(LbfgsStop stop);

struct LbfgsResult {
  // The lowest point evaluated: the last iterate, unless a line search tried a
  // lower point it did not accept. Never worse than x0: f <= f(x0).
  std::vector<double> x;
  double f = 0.0;       // f(x)
  int iterations = 0;   // accepted steps
  int evaluations = 0;  // calls of the objective, x0's included
  bool converged = false;
  LbfgsStop stop = LbfgsStop::kMaxIterations;
};

// What an observer sees after each accepted step x -> x + t d (for logging,
// and for tests of the line search). The spans live for the call only.
struct LbfgsStep {
  int iteration = 0;          // from 1
  double t = 0.0;             // the step length along d
  double f_before = 0.0;      // f(x)
  double slope_before = 0.0;  // g(x).d, < 0
  double f = 0.0;             // f(x + t d), < f_before
  double slope = 0.0;         // g(x + t d).d
  bool wolfe = false;         // the line search met both strong-Wolfe conditions
  std::span<const double> x;  // x + t d
  std::span<const double> grad;
  std::span<const double> direction;  // d
};

// The objective returns f(x) and writes df/dx into grad (sized like x). A
// non-finite f (or gradient) counts as +infinity: the line search backs off.
using LbfgsObjective =
    std::function<double(const std::vector<double>& x, std::vector<double>& grad)>;
using LbfgsObserver = std::function<void(const LbfgsStep& step)>;

// Minimizes f from x0. Throws bridle::Error on bad options, an empty x0, or a
// non-finite f(x0) or gradient there.
LbfgsResult minimize_lbfgs(const LbfgsObjective& f, std::vector<double> x0,
                           const LbfgsOptions& options = {},
                           const LbfgsObserver& observer = nullptr);

// Throws bridle::Error naming `who`, the option and its value unless
// gradient_tolerance > 0, value_tolerance >= 0, max_iterations >= 0, history >= 1.
void check_lbfgs_options(const std::string& who, const LbfgsOptions& options);

// ---------------------------------------------------------------------------
// LBFGS: torch.optim.LBFGS over tensors.
//
// All parameters are flattened into one float32 vector (a missing gradient
// reads as zeros), and every vector operation is float32 as in PyTorch, so
// the trajectories match torch's to float rounding. One step(closure) runs up
// to max_iter iterations and max_eval closure calls:
//   line_search kNone: x += t d with t = lr (min(1, 1 / sum|g|) * lr on the
//     very first iteration), one closure call per iteration (none after the
//     last iteration of a step);
//   line_search kStrongWolfe: t from the strong-Wolfe search above, starting
//     at the same t (c1 = 1e-4, c2 = 0.9, bracket tolerance 1e-9, as torch).
// A step ends early when max |g| <= tolerance_grad, when g.d > -tolerance_change,
// max |t d| <= tolerance_change or |loss change| < tolerance_change.
// The curvature pairs, d, t and the previous gradient carry over to the next
// step(closure) call, as torch's state does.
//
//   LBFGS opt(model.parameters(), {.line_search = LBFGSLineSearch::kStrongWolfe});
//   for (int i = 0; i < 5; ++i)
//     opt.step([&] {
//       opt.zero_grad();
//       Tensor loss = cross_entropy(model(x), y);
//       loss.backward();
//       return loss.item();
//     });
//
// lr is the group's (set_lr and the schedules of lr_scheduler.h change it).
// One parameter group only (as PyTorch), no weight decay; parameters are
// float32, all on one device: the CPU, or a GPU, where the updates run on the
// host through copies of the parameters and gradients (lbfgs.cpp says why) and
// match the CPU's bit for bit. state() / load_state() are not implemented: the
// base class's throw says it cannot be checkpointed.
enum class LBFGSLineSearch { kNone, kStrongWolfe };

struct LBFGSOptions {
  float lr = 1.0f;
  int max_iter = 20;                 // iterations per step(closure)
  std::optional<int> max_eval = {};  // closure calls per step; unset: max_iter * 5 / 4
  float tolerance_grad = 1e-7f;
  float tolerance_change = 1e-9f;
  int history_size = 100;
  LBFGSLineSearch line_search = LBFGSLineSearch::kNone;
};

class LBFGS : public Optimizer {
 public:
  explicit LBFGS(std::vector<Tensor> params, LBFGSOptions options = {});
  // Exactly one group (PyTorch's rule), with no weight_decay.
  explicit LBFGS(std::vector<ParamGroup> groups, LBFGSOptions options = {});

  // Throws: LBFGS re-evaluates the loss several times per step.
  void step() override;
  // The closure zeroes the gradients, computes the loss, calls backward() and
  // returns the loss (PyTorch's contract). Returns the loss of its first call
  // (at the parameters step() started from).
  float step(const std::function<float()>& closure);

  const LBFGSOptions& options() const { return options_; }
  int max_eval() const { return max_eval_; }
  int64_t iterations() const { return n_iter_; }       // over all steps (torch's state['n_iter'])
  int64_t evaluations() const { return func_evals_; }  // closure calls (state['func_evals'])
  size_t history_length() const { return old_dirs_.size(); }

 private:
  int64_t numel() const;
  std::vector<float> flat_grad() const;
  // params += t * update, element by element as torch's add_(update, alpha=t).
  void add_to_params(double t, const std::vector<float>& update);
  std::vector<float> flat_params() const;
  void set_params(const std::vector<float>& flat);

  LBFGSOptions options_;
  int max_eval_;
  // torch's state: the last direction and step, the curvature pairs
  // (old_dirs: y, old_stps: s, ro: 1 / y.s), H_diag, the previous gradient and loss.
  std::vector<float> d_, prev_flat_grad_;
  double t_ = 0.0;
  std::deque<std::vector<float>> old_dirs_, old_stps_;
  std::deque<float> ro_;
  float h_diag_ = 1.0f;
  double prev_loss_ = 0.0;
  int64_t n_iter_ = 0, func_evals_ = 0;
};

}  // namespace bridle
