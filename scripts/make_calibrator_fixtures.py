#!/usr/bin/env python3
"""Writes tests/fixtures/calibrator_reference.json for tests/calib/test_calibrators.cpp.

Reference values for the calibrators of lib/calib/calibrators.h:
  - "scaling": vector scaling, matrix scaling and matrix scaling with ODIR
    regularisation, each fitted by torch.optim.LBFGS (strong Wolfe line search) in
    float64 on float32 logits with a known miscalibration (per-class scales and
    shifts of calibrated logits);
  - "binning": scikit-learn's CalibratedClassifierCV(method="isotonic", cv="prefit")
    on the class probabilities (its thresholds per class and the calibrated
    probabilities of a separate set of logits), and histogram binning (numpy, with
    metrics.h's bin convention, cross-checked against
    sklearn.calibration.calibration_curve) for two bin counts.
The fit data includes tied rows (equal probabilities), probabilities below 1e-15
(which sklearn merges into one x value), probabilities on bin edges (0.25, 0.5) and
rows outside the fitted range in the apply set (clipped).

The class probabilities are computed like the C++ (calibrators.cpp,
class_probabilities): softmax in double with libm's exp (math.exp, the function
std::exp calls), summed in class order, rounded to float32, then turned back to
double for scikit-learn. All logits are float32, written as the exact decimal of
each float32, so the C++ reads the same numbers.

Run (numpy, torch, scikit-learn 1.2):  /usr/bin/python3 scripts/make_calibrator_fixtures.py
"""
import math
import os

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.isotonic import IsotonicRegression

from fixture_util import write_fixture

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "calibrator_reference.json")


def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def class_probabilities(logits32):
    """softmax in double (math.exp, class-order sum), rounded to float32."""
    out = np.empty(logits32.shape, dtype=np.float32)
    for i, row in enumerate(logits32):
        z = [float(v) for v in row]
        m = max(z)
        e = [math.exp(v - m) for v in z]
        s = 0.0
        for v in e:
            s += v
        out[i] = np.array([v / s for v in e], dtype=np.float64).astype(np.float32)
    return out


def softmax64(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sample_labels(rng, p):
    return np.array([rng.choice(p.shape[1], p=row) for row in p], dtype=np.int64)


# ---------------------------------------------------------------------------
# Scaling: torch LBFGS in float64.

def lbfgs(params, objective):
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=1000, history_size=20,
                            tolerance_grad=1e-13, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    for _ in range(10):
        opt.step(closure)
    loss = closure()
    grad = max(float(p.grad.abs().max()) for p in params)
    assert grad < 1e-7, f"LBFGS did not converge: max |grad| = {grad}"
    return float(loss)


def scaling_case():
    rng = np.random.default_rng(2024)
    n, c = 1500, 4
    z_true = rng.standard_normal((n, c)) * 1.5
    labels = sample_labels(rng, softmax64(z_true))
    scale = np.array([3.0, 2.0, 1.5, 0.8])
    shift = np.array([0.5, -0.3, 0.0, 0.2])
    logits = (z_true * scale + shift).astype(np.float32)

    z = torch.tensor(logits.astype(np.float64))
    y = torch.tensor(labels)
    nll = torch.nn.functional.cross_entropy
    nll_before = float(nll(z, y))

    w = torch.ones(c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    nll_vector = lbfgs([w, b], lambda: nll(z * w + b, y))
    vector = {"weight": floats(w.detach()), "bias": floats(b.detach() - b.detach().mean()),
              "nll_after": nll_vector}

    def matrix_fit(off_diagonal_l2, bias_l2):
        W = torch.eye(c, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
        off = 1.0 - torch.eye(c, dtype=torch.float64)

        def penalty():
            return (off_diagonal_l2 / (c * (c - 1)) * ((W * off)**2).sum() +
                    bias_l2 / c * (b**2).sum())

        objective = lbfgs([W, b], lambda: nll(z @ W.T + b, y) + penalty())
        with torch.no_grad():
            a = z @ W.T + b
            return {
                "off_diagonal_l2": off_diagonal_l2, "bias_l2": bias_l2,
                "weight": floats(W), "bias": floats(b - b.mean()),
                "nll_after": float(nll(a, y)), "penalty": float(penalty()),
                "objective": objective,
                # softmax of the first 50 rows: unique even where W is not
                "probabilities_head": floats(torch.softmax(a[:50], dim=1)),
            }

    return {
        "N": n, "C": c, "scale": floats(scale), "shift": floats(shift),
        "logits": floats(logits), "labels": [int(v) for v in labels],
        "nll_before": nll_before,
        "vector": vector,
        "matrix": matrix_fit(0.0, 0.0),
        "matrix_odir": matrix_fit(1.0, 0.5),
    }


# ---------------------------------------------------------------------------
# Binning: scikit-learn's isotonic calibration and histogram binning.

class GivenProbabilities(ClassifierMixin, BaseEstimator):
    """A 'classifier' whose predict_proba is its input: lets CalibratedClassifierCV
    calibrate probabilities we computed ourselves."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.asarray(X, dtype=np.float64)


def equal_width_index(values, num_bins):
    # metrics.h: (lower, upper] bins, the first closed at 0; within float32 rounding
    # of an edge k/B (|x - k| <= k 2^-23, x = value * B) counts as on the edge.
    x = values.astype(np.float64) * num_bins
    k = np.round(x)
    upper = np.where(np.abs(x - k) <= k * 2.0**-23, k, np.ceil(x))
    return np.clip(upper.astype(np.int64) - 1, 0, num_bins - 1)


def histogram_binning(p_fit, y_fit, p_apply, num_bins):
    c = p_fit.shape[1]
    value = np.zeros((c, num_bins))
    count = np.zeros((c, num_bins), dtype=np.int64)
    for k in range(c):
        index = equal_width_index(p_fit[:, k], num_bins)
        for b in range(num_bins):
            members = index == b
            count[k, b] = members.sum()
            value[k, b] = (y_fit[members] == k).mean() if members.any() else (b + 0.5) / num_bins
        # The same frequencies from scikit-learn (its searchsorted bins agree with
        # ours unless a value sits within float32 rounding of an edge).
        prob_true, _ = calibration_curve(y_fit == k, p_fit[:, k].astype(np.float64),
                                         n_bins=num_bins, strategy="uniform")
        assert np.allclose(prob_true, value[k, count[k] > 0], atol=1e-15), (k, num_bins)
    q = np.stack([value[k, equal_width_index(p_apply[:, k], num_bins)] for k in range(c)], axis=1)
    total = q.sum(axis=1, keepdims=True)
    q = np.divide(q, total, out=np.full_like(q, 1.0 / c), where=total != 0)
    return {"num_bins": num_bins, "bin_value": floats(value),
            "bin_count": [int(v) for v in count.reshape(-1)], "calibrated": floats(q)}


def isotonic(p_fit, y_fit, p_apply):
    x_fit = p_fit.astype(np.float64)  # float32 probabilities turned to double
    x_apply = p_apply.astype(np.float64)
    classifier = GivenProbabilities().fit(x_fit, y_fit)
    calibrated = CalibratedClassifierCV(estimator=classifier, method="isotonic", cv="prefit")
    calibrated.fit(x_fit, y_fit)
    regressions = calibrated.calibrated_classifiers_[0].calibrators
    thresholds_x, thresholds_y = [], []
    for k, regression in enumerate(regressions):
        # The same fit straight from IsotonicRegression with explicit bounds.
        direct = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True)
        direct.fit(x_fit[:, k], (y_fit == k).astype(np.float64))
        assert np.array_equal(direct.X_thresholds_, regression.X_thresholds_)
        assert np.allclose(direct.y_thresholds_, regression.y_thresholds_, atol=1e-15)
        thresholds_x.append(floats(regression.X_thresholds_))
        thresholds_y.append(floats(regression.y_thresholds_))
    return {"thresholds_x": thresholds_x, "thresholds_y": thresholds_y,
            "calibrated": floats(calibrated.predict_proba(x_apply))}


def binning_case():
    rng = np.random.default_rng(7)
    c = 4
    z_true = rng.standard_normal((400, c)) * 1.5
    y = sample_labels(rng, softmax64(z_true))
    fit_logits = z_true * 2.5  # overconfident
    # Ties: rows 0..29 again, labels drawn afresh.
    tied = fit_logits[:30]
    y_tied = sample_labels(rng, softmax64(z_true[:30]))
    # Probabilities below 1e-15 for classes 1..3 (sklearn merges them into one x),
    # some with those classes as labels; bin edges 0.5 and 0.25.
    special = np.array([[40, 0, -1, -3], [40, -0.5, -2, 0], [41, 0.25, 0, -4],
                        [40, -1, 0.5, -0.5], [39, 0, 0, 0], [0, 0, -100, -100],
                        [0, 0, -100, -100], [1, 1, 1, 1], [1, 1, 1, 1]])
    y_special = np.array([0, 1, 2, 3, 0, 0, 1, 2, 3])
    fit32 = np.concatenate([fit_logits, tied, special]).astype(np.float32)
    y_fit = np.concatenate([y, y_tied, y_special])

    apply_logits = rng.standard_normal((60, c)) * 1.5 * 2.5
    extremes = np.array([[50, 0, 0, 0], [-50, 0, 0, 0], [0, 0, -100, -100], [1, 1, 1, 1],
                         [0, 60, 0, -60], [40, 0, -1, -3]])
    apply32 = np.concatenate([apply_logits, extremes, fit32[:10]]).astype(np.float32)

    p_fit = class_probabilities(fit32)
    p_apply = class_probabilities(apply32)
    small = p_fit[-9:-4, 1:]
    assert (small < 1e-15).all() and len(np.unique(small)) > 1  # distinct, merged by sklearn
    return {
        "C": c,
        "fit": {"N": len(fit32), "logits": floats(fit32), "labels": [int(v) for v in y_fit]},
        "apply": {"N": len(apply32), "logits": floats(apply32)},
        "isotonic": isotonic(p_fit, y_fit, p_apply),
        "histogram": [histogram_binning(p_fit, y_fit, p_apply, b) for b in (15, 6)],
    }


def main():
    doc = {"generator": "scripts/make_calibrator_fixtures.py", "numpy": np.__version__,
           "torch": torch.__version__, "sklearn": sklearn.__version__,
           "scaling": scaling_case(), "binning": binning_case()}
    write_fixture(OUT, doc)


if __name__ == "__main__":
    main()
