#!/usr/bin/env python3
"""Writes tests/fixtures/lbfgs_trajectories.json for tests/optim/test_lbfgs.cpp.

Trajectories of torch.optim.LBFGS on two small problems, each with
line_search_fn=None and "strong_wolfe":
  logistic:       3-class softmax regression, cross_entropy(linear(X, W, b), labels),
                  X [120, 4], W [3, 4], b [3] (labels drawn from a softmax model,
                  so the classes overlap and the minimum is finite);
  least_squares:  mean((linear(X, w, b) - y)^2), X [40, 5] with columns of
                  somewhat different scales, w [1, 5], b [1], y [40, 1].
Each case runs STEPS calls of opt.step(closure) and records, per call, the loss
it returns, every parameter after it, and torch's counters state["n_iter"] and
state["func_evals"] (iterations and closure calls so far). The C++ test builds
the same problem with bridle's ops and must follow each step.

L-BFGS carries rounding differences along (and tolerance tests such as
|loss change| < tolerance_change can flip on them), so a case is only worth
comparing at float tolerance if torch itself is insensitive to rounding there.
Every case is run again from initial parameters nudged by 1-3e-7 (relative,
about one float32 rounding), with the loss summed and divided by N instead of
averaged, and with the loss computed in float64 (other rounding in every
evaluation, as bridle's own matmul and reductions have); each rerun must take
the same iterations and closure calls and stay within ROBUST of the C++ test's
tolerance (1e-6 + 1e-5 |value|), or the script fails. The seeds below were
picked to pass that check while covering both line searches, the bracketing
(extrapolating) and zoom phases of the strong-Wolfe search, history_size,
max_eval, lr, and the convergence tests that end a step. (With torch's
default tolerance_change = 1e-9, a float32 loss near its minimum changes by a
few ulps: that test flips on rounding, so no case relies on it.)

Everything is float32, stored as the exact decimal of each float32 value, so C++
reads the same numbers; hyper-parameters are float32 values too (bridle's
options are floats), passed to torch as those exact doubles.

Run (torch 1.13 and numpy):  /usr/bin/python3 scripts/make_lbfgs_fixtures.py
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

STEPS = 5
# Robustness: the largest |nudged - plain| / (1e-6 + 1e-5 |plain|) allowed.
ROBUST = 0.25
NUDGES = (1e-7, -1e-7, 2e-7, -3e-7)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "lbfgs_trajectories.json")


def f32(x):
    """The float32 nearest x, as the double that holds it exactly."""
    return float(np.float32(x))


def values(t):
    return [float(v) for v in t.detach().numpy().reshape(-1)]


def make_problem(kind, seed):
    """The data and the initial parameters (float32 numpy arrays)."""
    rng = np.random.RandomState(seed)
    if kind == "logistic":
        N, D, C = 120, 4, 3
        X = rng.standard_normal((N, D)).astype(np.float32)
        W_true = 0.5 * rng.standard_normal((C, D))
        logits = X.astype(np.float64) @ W_true.T
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        labels = np.array([rng.choice(C, p=row) for row in p], dtype=np.int64)
        init = [rng.uniform(-0.5, 0.5, (C, D)).astype(np.float32),
                rng.uniform(-0.5, 0.5, (C,)).astype(np.float32)]
        return {"X": X, "labels": labels}, init
    if kind == "least_squares":
        N, D = 40, 5
        scales = np.array([1.0, 1.5, 0.7, 1.2, 1.0])
        X = (rng.standard_normal((N, D)) * scales).astype(np.float32)
        w_true = rng.standard_normal((1, D))
        y = (X.astype(np.float64) @ w_true.T + 0.7 + 0.1 * rng.standard_normal((N, 1)))
        init = [rng.uniform(-0.5, 0.5, (1, D)).astype(np.float32),
                rng.uniform(-0.5, 0.5, (1,)).astype(np.float32)]
        return {"X": X, "y": y.astype(np.float32)}, init
    raise ValueError(kind)


def loss_fn(kind, data, params, variant=None):
    """The mean loss in float32. Variants, the same value up to rounding:
    "summed": sum / N instead of the mean; "float64": computed in float64 and
    rounded to float32 (the gradients reach the float32 parameters rounded)."""
    X = torch.tensor(data["X"])
    if variant == "float64":
        X = X.double()
        params = [p.double() for p in params]
    N = X.shape[0]
    if kind == "logistic":
        logits = F.linear(X, params[0], params[1])
        labels = torch.tensor(data["labels"])
        if variant == "summed":
            loss = F.cross_entropy(logits, labels, reduction="sum") / N
        else:
            loss = F.cross_entropy(logits, labels)
    else:
        r = F.linear(X, params[0], params[1]) - torch.tensor(data["y"]).to(X.dtype)
        loss = (r * r).sum() / N if variant == "summed" else (r * r).mean()
    return loss.float()


# torch's defaults; max_eval None means max_iter * 5 // 4.
DEFAULTS = dict(lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                history_size=100, line_search_fn=None)


def run(kind, data, init, o, nudge=0.0, variant=None):
    """STEPS calls of opt.step(closure) from init * (1 + nudge)."""
    params = [torch.tensor((v * (1 + nudge)).astype(np.float32), requires_grad=True) for v in init]
    opt = torch.optim.LBFGS(params, **o)

    def closure():
        opt.zero_grad()
        loss = loss_fn(kind, data, params, variant)
        loss.backward()
        return loss

    steps = []
    for _ in range(STEPS):
        loss = opt.step(closure)
        state = opt.state[params[0]]
        steps.append({"loss": float(loss), "params": [values(p) for p in params],
                      "n_iter": state["n_iter"], "func_evals": state["func_evals"]})
        for p in params:
            assert p.dtype == torch.float32
    return steps


def sensitivity(steps, nudged):
    """The largest difference as a fraction of the C++ test's tolerance, or inf
    when the iteration or evaluation counts differ."""
    worst = 0.0
    for a, b in zip(steps, nudged):
        if (a["n_iter"], a["func_evals"]) != (b["n_iter"], b["func_evals"]):
            return float("inf")
        pa = np.array([a["loss"]] + sum(a["params"], []))
        pb = np.array([b["loss"]] + sum(b["params"], []))
        worst = max(worst, float(np.max(np.abs(pa - pb) / (1e-6 + 1e-5 * np.abs(pa)))))
    return worst


def make_case(name, kind, seed, options):
    o = dict(DEFAULTS)
    o.update(options)
    for k in ("lr", "tolerance_grad", "tolerance_change"):
        o[k] = f32(o[k])
    data, init = make_problem(kind, seed)
    steps = run(kind, data, init, o)
    worst = max(sensitivity(steps, run(kind, data, init, o, nudge)) for nudge in NUDGES)
    for variant in ("summed", "float64"):
        worst = max(worst, sensitivity(steps, run(kind, data, init, o, variant=variant)))
    if worst > ROBUST:
        raise SystemExit(f"{name}: torch's trajectory is sensitive to rounding ({worst:.3g} of "
                         f"the test's tolerance after a nudge of the initial parameters); "
                         f"pick another seed")
    case = {
        "name": name,
        "problem": kind,
        "seed": seed,
        "sensitivity": worst,
        "options": {k: v for k, v in o.items() if v is not None},
        "shapes": [list(v.shape) for v in init],
        "init": [[float(x) for x in v.reshape(-1)] for v in init],
        "X": [float(x) for x in data["X"].reshape(-1)],
        "X_shape": list(data["X"].shape),
        "steps": steps,
    }
    if kind == "logistic":
        case["labels"] = [int(v) for v in data["labels"]]
    else:
        case["y"] = [float(v) for v in data["y"].reshape(-1)]
    return case


def main():
    torch.set_num_threads(1)
    wolfe = "strong_wolfe"
    # (name, problem, seed, options); the comments say what a case exercises.
    specs = [
        # Fixed steps t = lr: first-iteration t = 1 / sum|g|, then lr. With
        # max_iter < 4, max_eval = max_iter * 5 // 4 ends the steps.
        ("logistic_none", "logistic", 4, dict(max_iter=2)),
        # A smaller lr and a history of 2 pairs (the oldest pairs are dropped).
        ("logistic_none_lr_history", "logistic", 3, dict(lr=0.5, max_iter=3, history_size=2)),
        # Strong Wolfe from a short first trial: the bracketing phase extrapolates.
        ("logistic_strong_wolfe_extrapolate", "logistic", 7,
         dict(lr=0.1, max_iter=2, line_search_fn=wolfe)),
        # max_eval ends every step before max_iter does.
        ("logistic_strong_wolfe_max_eval", "logistic", 7,
         dict(lr=0.2, max_iter=10, max_eval=5, line_search_fn=wolfe)),
        ("least_squares_none", "least_squares", 3, dict(max_iter=3, history_size=3)),
        # max_iter = 4 (<= max_eval = 5) ends each step, and the last iteration
        # of a step moves without calling the closure (torch saves that call).
        ("least_squares_none_max_iter", "least_squares", 3,
         dict(lr=0.3, max_iter=4, history_size=3)),
        # Strong Wolfe from a long first trial (lr = 4): the zoom phase interpolates.
        ("least_squares_strong_wolfe_zoom", "least_squares", 7,
         dict(lr=4.0, max_iter=2, history_size=3, line_search_fn=wolfe)),
        ("least_squares_strong_wolfe_extrapolate", "least_squares", 3,
         dict(lr=0.05, max_iter=2, line_search_fn=wolfe)),
        # Otherwise torch's defaults, with tolerances that end the first step
        # clearly above the rounding noise (which tolerance_change = 1e-9 on a
        # float32 loss is not). max|g| <= tolerance_grad ends the first step,
        # and every later one returns at once; |loss change| < tolerance_change
        # ends the first step, and g.d > -tolerance_change every later one.
        ("least_squares_strong_wolfe_tolerance_grad", "least_squares", 0,
         dict(tolerance_grad=1e-4, line_search_fn=wolfe)),
        ("least_squares_none_tolerance_change", "least_squares", 0,
         dict(tolerance_change=1e-6, history_size=5)),
    ]
    cases = [make_case(name, kind, seed, options) for name, kind, seed, options in specs]
    doc = {"generator": "scripts/make_lbfgs_fixtures.py", "torch": torch.__version__,
           "steps": STEPS, "cases": cases}
    with open(OUT, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print("wrote", os.path.normpath(OUT), "with", len(cases), "cases")
    for c in cases:
        print(f"  {c['name']}: sensitivity {c['sensitivity']:.3f}, (loss, n_iter, func_evals):",
              [(round(s["loss"], 6), s["n_iter"], s["func_evals"]) for s in c["steps"]])


if __name__ == "__main__":
    main()
