#!/usr/bin/env python3
"""Writes tests/fixtures/optimizer_trajectories.json for tests/optim/test_optimizers.cpp.

Trajectories of torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad: each case
builds a few parameters of small shapes ([3], [2, 2], [1]), feeds the optimizer
a fixed sequence of gradients for STEPS steps and records every parameter after
every step. The C++ test replays the same gradients and compares each step.

Everything is float32, stored as the exact decimal of each float32 value, so C++
reads the same numbers. Hyper-parameters are float32 values too (bridle's
options are floats), passed to torch as those exact doubles, so both sides
derive the same float32 coefficients (1 - beta, bias corrections, ...).

Cases cover the options one at a time, two parameter groups with their own lr
and weight_decay ("groups": sizes and overrides, params taken in order), and a
parameter whose gradient is missing (p.grad = None, stored as null) on some
steps, including the first ones, so its step count lags the others'.

Run (torch 1.13 and numpy):  /usr/bin/python3 scripts/make_optimizer_fixtures.py
"""
import json
import os

import numpy as np
import torch

STEPS = 25
SHAPES = [[3], [2, 2], [1]]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "optimizer_trajectories.json")


def f32(x):
    """The float32 nearest x, as the double that holds it exactly."""
    return float(np.float32(x))


def values(t):
    return [float(v) for v in t.detach().numpy().reshape(-1)]


def make_torch_optimizer(kind, param_groups, o):
    if kind == "SGD":
        return torch.optim.SGD(param_groups, lr=o["lr"], momentum=o["momentum"],
                               dampening=o["dampening"], weight_decay=o["weight_decay"],
                               nesterov=o["nesterov"])
    if kind in ("Adam", "AdamW"):
        cls = torch.optim.Adam if kind == "Adam" else torch.optim.AdamW
        return cls(param_groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                   weight_decay=o["weight_decay"], amsgrad=o["amsgrad"])
    if kind == "RMSprop":
        return torch.optim.RMSprop(param_groups, lr=o["lr"], alpha=o["alpha"], eps=o["eps"],
                                   weight_decay=o["weight_decay"], momentum=o["momentum"],
                                   centered=o["centered"])
    if kind == "Adagrad":
        return torch.optim.Adagrad(param_groups, lr=o["lr"], lr_decay=o["lr_decay"],
                                   weight_decay=o["weight_decay"],
                                   initial_accumulator_value=o["initial_accumulator_value"],
                                   eps=o["eps"])
    raise ValueError(kind)


# PyTorch's defaults, as float32 values.
DEFAULTS = {
    "SGD": dict(lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "Adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False),
    "AdamW": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=False),
    "RMSprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False),
    "Adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                    eps=1e-10),
}


def make_case(name, kind, seed, options, groups=None, missing=None):
    """groups: [{"size": k, "lr": .., "weight_decay": ..}] (overrides optional);
    missing: {param index: [steps (from 0) without a gradient]}."""
    o = dict(DEFAULTS[kind])
    o.update(options)
    o = {k: (v if isinstance(v, bool) else f32(v)) for k, v in o.items()}
    groups = groups or [{"size": len(SHAPES)}]
    groups = [{k: (v if k == "size" else f32(v)) for k, v in g.items()} for g in groups]
    missing = missing or {}

    rng = np.random.RandomState(seed)
    inits = [rng.uniform(-1, 1, size=s).astype(np.float32) for s in SHAPES]
    # Gradients: standard normal with a per-element bias, so parameters drift
    # in a direction rather than only jitter.
    biases = [rng.uniform(-0.5, 0.5, size=s) for s in SHAPES]
    grads = []
    for t in range(STEPS):
        row = []
        for i, s in enumerate(SHAPES):
            g = (rng.standard_normal(s) + biases[i]).astype(np.float32)
            row.append(None if t in missing.get(i, []) else g)
        grads.append(row)

    params = [torch.tensor(v, requires_grad=True) for v in inits]
    param_groups, begin = [], 0
    for g in groups:
        entry = {"params": params[begin:begin + g["size"]]}
        entry.update({k: v for k, v in g.items() if k != "size"})
        param_groups.append(entry)
        begin += g["size"]
    assert begin == len(params)
    opt = make_torch_optimizer(kind, param_groups, o)

    trajectory = []
    for row in grads:
        for p, g in zip(params, row):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
        trajectory.append([values(p) for p in params])
        for p in params:
            assert p.dtype == torch.float32

    return {
        "name": name,
        "optimizer": kind,
        "options": o,
        "groups": groups,
        "shapes": SHAPES,
        "init": [[float(v) for v in x.reshape(-1)] for x in inits],
        "grads": [[None if g is None else [float(v) for v in g.reshape(-1)] for g in row]
                  for row in grads],
        "trajectory": trajectory,
    }


def main():
    two_groups = [{"size": 1, "lr": 0.03, "weight_decay": 0.05}, {"size": 2}]
    missing = {1: [0, 1, 2, 7, 8, 15], 2: [5, 6, 24]}
    specs = [
        ("sgd_momentum", "SGD", dict(lr=0.05, momentum=0.9)),
        ("sgd_nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
        ("sgd_dampening", "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
        ("sgd_weight_decay", "SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
        ("sgd_groups", "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01), two_groups),
        ("sgd_missing_grads", "SGD", dict(lr=0.05, momentum=0.9), None, missing),
        ("adam_plain", "Adam", dict(lr=0.05)),
        ("adam_defaults", "Adam", dict()),
        ("adam_betas_eps", "Adam", dict(lr=0.05, beta1=0.5, beta2=0.9, eps=0.1)),
        ("adam_amsgrad", "Adam", dict(lr=0.05, amsgrad=True)),
        ("adam_weight_decay", "Adam", dict(lr=0.05, weight_decay=0.3)),
        ("adam_groups", "Adam", dict(lr=0.05, weight_decay=0.1), two_groups),
        ("adam_missing_grads", "Adam", dict(lr=0.05, amsgrad=True), None, missing),
        ("adamw_plain", "AdamW", dict(lr=0.05)),
        ("adamw_defaults", "AdamW", dict()),
        ("adamw_weight_decay_amsgrad", "AdamW", dict(lr=0.05, weight_decay=0.5, amsgrad=True)),
        ("adamw_groups", "AdamW", dict(lr=0.05, weight_decay=0.2), two_groups),
        ("adamw_missing_grads", "AdamW", dict(lr=0.05, weight_decay=0.2), None, missing),
        ("rmsprop_plain", "RMSprop", dict()),
        ("rmsprop_alpha_eps", "RMSprop", dict(alpha=0.9, eps=0.05)),
        ("rmsprop_centered", "RMSprop", dict(centered=True)),
        ("rmsprop_momentum", "RMSprop", dict(momentum=0.9)),
        ("rmsprop_centered_momentum", "RMSprop", dict(momentum=0.5, centered=True)),
        ("rmsprop_weight_decay", "RMSprop", dict(weight_decay=0.3)),
        ("rmsprop_groups", "RMSprop", dict(momentum=0.9, weight_decay=0.1), two_groups),
        ("rmsprop_missing_grads", "RMSprop", dict(momentum=0.9, centered=True), None, missing),
        ("adagrad_plain", "Adagrad", dict(lr=0.1)),
        ("adagrad_defaults", "Adagrad", dict()),
        ("adagrad_lr_decay", "Adagrad", dict(lr=0.1, lr_decay=0.05)),
        ("adagrad_initial_accumulator", "Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
        ("adagrad_weight_decay", "Adagrad", dict(lr=0.1, weight_decay=0.3)),
        ("adagrad_eps", "Adagrad", dict(lr=0.1, eps=0.5)),
        ("adagrad_groups", "Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1), two_groups),
        ("adagrad_missing_grads", "Adagrad", dict(lr=0.1, lr_decay=0.1), None, missing),
    ]
    cases = [make_case(spec[0], spec[1], seed, *spec[2:]) for seed, spec in enumerate(specs)]
    doc = {"generator": "scripts/make_optimizer_fixtures.py", "torch": torch.__version__,
           "steps": STEPS, "cases": cases}
    with open(OUT, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print("wrote", os.path.normpath(OUT), "with", len(cases), "cases")


if __name__ == "__main__":
    main()
