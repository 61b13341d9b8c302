#!/usr/bin/env python3
"""Writes tests/fixtures/clip_grad.json for tests/optim/test_clip_grad.cpp.

torch.nn.utils.clip_grad_norm_ and clip_grad_value_ on fixed float32 gradients
(seeded, stored as exact doubles) of three parameters, plus a fourth parameter
without a gradient (skipped). Each case records the total norm returned and the
gradients after clipping.

Run (torch 1.13):  /usr/bin/python3 scripts/make_clip_grad_fixtures.py
"""
import os

import numpy as np
import torch

from fixture_util import write_fixture

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "clip_grad.json")
SHAPES = [[4, 3], [5], [2, 2, 2]]


def make_grads():
    rng = np.random.default_rng(3)
    grads = [(rng.standard_normal(s) * 0.7).astype(np.float32) for s in SHAPES]
    grads[1][2] = np.float32(-2.5)  # one large entry: the inf norm's answer
    return grads


def params_with(grads):
    params = []
    for g in grads:
        p = torch.zeros(g.shape, requires_grad=True)
        p.grad = torch.from_numpy(g.copy())
        params.append(p)
    params.append(torch.zeros(3, requires_grad=True))  # no grad: skipped
    return params


def flat(params):
    return [[float(v) for v in p.grad.reshape(-1)] for p in params if p.grad is not None]


def main():
    grads = make_grads()
    norm_cases = []
    for max_norm, norm_type in [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, "inf"), (2.0, 3.0),
                                (0.7, 0.5), (0.0, 2.0)]:
        params = params_with(grads)
        p = float("inf") if norm_type == "inf" else norm_type
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, p)
        norm_cases.append({"max_norm": max_norm, "norm_type": norm_type,
                           "total_norm": float(total), "grads": flat(params)})
    value_cases = []
    for clip_value in [0.25, 1.0, 10.0]:
        params = params_with(grads)
        torch.nn.utils.clip_grad_value_(params, clip_value)
        value_cases.append({"clip_value": clip_value, "grads": flat(params)})
    doc = {"generator": "scripts/make_clip_grad_fixtures.py", "torch": torch.__version__,
           "shapes": SHAPES, "grads": [[float(v) for v in g.reshape(-1)] for g in grads],
           "norm": norm_cases, "value": value_cases}
    write_fixture(OUT, doc)


if __name__ == "__main__":
    main()
