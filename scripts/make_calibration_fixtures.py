#!/usr/bin/env python3
"""Writes tests/fixtures/calibration_reference.json for tests/calib/test_metrics.cpp.

An independent, straightforward numpy implementation of the calibration metrics
defined in lib/calib/metrics.h, run on a few seeded random cases. Probabilities
are float32 (stored as the exact decimal of each float32, so C++ reads the same
numbers) and some rows are set so that the top confidence falls exactly on a bin
edge k/15, is 1.0, or ties between two classes. Every metric is computed in
float64 from those float32 values.

Run (numpy only):  /usr/bin/python3 scripts/make_calibration_fixtures.py
"""
import os

import numpy as np

from fixture_util import write_fixture

NLL_FLOOR = 1e-12
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "calibration_reference.json")


def equal_width_index(values, num_bins):
    # (lower, upper] bins, the first closed at 0; within float32 rounding of an
    # edge k/B (|x - k| <= k 2^-23 with x = value * B) counts as on the edge.
    x = values.astype(np.float64) * num_bins
    k = np.round(x)
    upper = np.where(np.abs(x - k) <= k * 2.0**-23, k, np.ceil(x))
    return np.clip(upper.astype(np.int64) - 1, 0, num_bins - 1)


def bins_of(values, outcomes, num_bins, binning):
    """Rows [lower, upper, count, confidence, accuracy, gap], one per bin."""
    values = values.astype(np.float64)
    outcomes = outcomes.astype(np.float64)
    rows = []
    if binning == "equal_width":
        index = equal_width_index(values, num_bins)
        for b in range(num_bins):
            members = index == b
            rows.append([b / num_bins, (b + 1) / num_bins] + stats(values[members],
                                                                  outcomes[members]))
    else:
        order = np.argsort(values, kind="stable")
        lower = 0.0
        for group in np.array_split(order, num_bins):
            upper = float(values[group[-1]]) if len(group) else lower
            rows.append([lower, upper] + stats(values[group], outcomes[group]))
            lower = upper
    return rows


def stats(v, o):
    if len(v) == 0:
        return [0, 0.0, 0.0, 0.0]
    conf, acc = float(np.mean(v)), float(np.mean(o))
    return [int(len(v)), conf, acc, acc - conf]


def error_of(rows, n, norm, debiased):
    counts = np.array([r[2] for r in rows], dtype=np.float64)
    conf = np.array([r[3] for r in rows])
    acc = np.array([r[4] for r in rows])
    w = counts / n
    gap = np.abs(acc - conf)
    if norm == "l1":
        return float(np.sum(w * gap))
    if norm == "max":
        return float(np.max(gap[counts > 0]))
    if not debiased:
        return float(np.sqrt(np.sum(w * gap**2)))
    # Kumar et al.'s unbiased_square_ce: bins with < 2 samples contribute 0.
    big = counts >= 2
    terms = gap[big]**2 - acc[big] * (1 - acc[big]) / (counts[big] - 1)
    return float(np.sqrt(max(0.0, np.sum(w[big] * terms))))


def metrics(p, y, cases_options):
    n, c = p.shape
    pd = p.astype(np.float64)
    pred = np.argmax(pd, axis=1)  # ties go to the first index
    conf = np.max(pd, axis=1)
    correct = (pred == y).astype(np.float64)
    onehot = np.eye(c)[y]
    out = {
        "accuracy": float(np.mean(correct)),
        "nll": float(np.mean(-np.log(np.maximum(pd[np.arange(n), y], NLL_FLOOR)))),
        "brier": float(np.mean(np.sum((pd - onehot)**2, axis=1))),
    }
    for bins in (15, 10):
        per_class = [error_of(bins_of(pd[:, k], (y == k), bins, "equal_width"), n, "l1", False)
                     for k in range(c)]
        out[f"classwise_ece_{bins}"] = float(np.mean(per_class))
    flagged = conf < 0.6
    out["uncertain"] = {
        "threshold": 0.6,
        "flagged": int(flagged.sum()),
        "unflagged": int((~flagged).sum()),
        "flagged_fraction": float(flagged.mean()),
        "flagged_accuracy": float(correct[flagged].mean()) if flagged.any() else "nan",
        "unflagged_accuracy": float(correct[~flagged].mean()) if (~flagged).any() else "nan",
    }
    errors, tables = [], []
    for num_bins, binning in cases_options:
        rows = bins_of(conf, correct, num_bins, binning)
        tables.append({"num_bins": num_bins, "binning": binning, "bins": rows})
        for norm, debiased in (("l1", False), ("l2", False), ("max", False), ("l2", True)):
            errors.append({"num_bins": num_bins, "binning": binning, "norm": norm,
                           "debiased": debiased, "value": error_of(rows, n, norm, debiased)})
    out["errors"] = errors
    out["tables"] = tables
    return out


def make_case(name, seed, n, c, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c)) * scale
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # Rows on bin edges: top = k/15 with the rest spread evenly (below the top).
    k_min = int(np.floor(15 / c)) + 1
    for i, k in enumerate(range(k_min, 16)):
        row = np.full(c, (1 - k / 15) / (c - 1))
        row[i % c] = k / 15
        p[3 * i] = row
    p[1] = np.eye(c)[2]                                    # confidence exactly 1.0
    p[5] = np.array([0.4, 0.4, 0.2] + [0.0] * (c - 3))     # a tie: argmax is 0
    p32 = p.astype(np.float32)
    # Labels drawn from a sharpened version of p, so the model is a bit under/over
    # confident rather than perfectly calibrated.
    q = p**1.5
    q /= q.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in q], dtype=np.int64)
    y[5] = 1  # the tie is predicted 0: wrong
    options = [(15, "equal_width"), (10, "equal_width"), (15, "equal_mass"), (7, "equal_mass")]
    return {
        "name": name, "N": n, "C": c,
        "probs": [float(v) for v in p32.reshape(-1)],  # float32 values, exact as doubles
        "labels": [int(v) for v in y],
        "expected": metrics(p32, y, options),
    }


def main():
    cases = [make_case("n200_c5", 0, 200, 5, 2.5), make_case("n57_c10", 1, 57, 10, 1.5)]
    doc = {"generator": "scripts/make_calibration_fixtures.py", "numpy": np.__version__,
           "cases": cases}
    write_fixture(OUT, doc)


if __name__ == "__main__":
    main()
