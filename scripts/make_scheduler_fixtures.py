#!/usr/bin/env python3
"""Writes tests/fixtures/lr_schedules.json for tests/optim/test_lr_scheduler.cpp.

Every schedule of lib/optim/lr_scheduler.h run by torch.optim.lr_scheduler on an
SGD with two parameter groups of different lr: "lrs" holds both groups' lr right
after the scheduler is built (epoch 0) and after each of STEPS step() calls.
ReduceLROnPlateau is fed the fixed "metrics" sequence, one value per step.

The groups' base lrs are float32 values (stored as exact doubles), as a bridle
optimizer holds them, so the C++ side starts from the same numbers. Each case's
"args" are what the C++ test passes to the matching bridle scheduler; warmup
cases are PyTorch's SequentialLR([LinearLR(start_factor, 1, warmup_steps),
after], milestones=[warmup_steps]). OneCycleLR runs with cycle_momentum=False
(bridle does not cycle momentum).

Run (torch 1.13):  /usr/bin/python3 scripts/make_scheduler_fixtures.py
"""
import os
import warnings

import numpy as np
import torch
from torch.optim import lr_scheduler as sched

from fixture_util import write_fixture

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "lr_schedules.json")
STEPS = 32
BASE_LRS = [float(np.float32(0.1)), float(np.float32(0.02))]


def make_optimizer():
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in BASE_LRS]
    return torch.optim.SGD(groups, lr=BASE_LRS[0])


def lrs_of(optimizer):
    return [float(g["lr"]) for g in optimizer.param_groups]


def build(optimizer, kind, args):
    if kind == "StepLR":
        return sched.StepLR(optimizer, args["step_size"], args["gamma"])
    if kind == "MultiStepLR":
        return sched.MultiStepLR(optimizer, args["milestones"], args["gamma"])
    if kind == "ExponentialLR":
        return sched.ExponentialLR(optimizer, args["gamma"])
    if kind == "CosineAnnealingLR":
        return sched.CosineAnnealingLR(optimizer, args["T_max"], args["eta_min"])
    if kind == "OneCycleLR":
        return sched.OneCycleLR(optimizer, args["max_lr"], total_steps=args["total_steps"],
                                pct_start=args["pct_start"],
                                anneal_strategy=args["anneal_strategy"], cycle_momentum=False,
                                div_factor=args["div_factor"],
                                final_div_factor=args["final_div_factor"],
                                three_phase=args["three_phase"])
    if kind == "WarmupLR":
        w = args["warmup_steps"]
        warmup = sched.LinearLR(optimizer, start_factor=args["start_factor"], end_factor=1.0,
                                total_iters=w)
        if args["after"] is None:  # warmup alone: LinearLR, constant afterwards
            return warmup
        after = build(optimizer, args["after"]["kind"], args["after"]["args"])
        return sched.SequentialLR(optimizer, [warmup, after], milestones=[w])
    raise ValueError(kind)


def run_schedule(name, kind, args):
    optimizer = make_optimizer()
    scheduler = build(optimizer, kind, args)
    lrs = [lrs_of(optimizer)]
    for _ in range(STEPS):
        optimizer.step()
        scheduler.step()
        lrs.append(lrs_of(optimizer))
    return {"name": name, "kind": kind, "args": args, "lrs": lrs}


# A validation loss: falls, flattens with small (sub-threshold) wiggles, bumps up.
LOSS = [1.0, 0.8, 0.7, 0.69, 0.695, 0.7, 0.65, 0.649, 0.6495, 0.66, 0.64, 0.64, 0.639, 0.7,
        0.62, 0.61, 0.612, 0.611, 0.6105, 0.6, 0.6, 0.6, 0.58, 0.59, 0.59, 0.585, 0.584, 0.584,
        0.57, 0.571, 0.572, 0.573]
# An accuracy: rises, then stalls.
ACCURACY = [0.3, 0.5, 0.6, 0.62, 0.62, 0.619, 0.63, 0.63, 0.631, 0.64, 0.64, 0.64, 0.64, 0.65,
            0.65, 0.6501, 0.66, 0.66, 0.66, 0.66, 0.66, 0.67, 0.665, 0.668, 0.669, 0.67, 0.672,
            0.672, 0.672, 0.672, 0.672, 0.672]


def run_plateau(name, args, metrics):
    assert len(metrics) == STEPS
    optimizer = make_optimizer()
    scheduler = sched.ReduceLROnPlateau(optimizer, mode=args["mode"], factor=args["factor"],
                                        patience=args["patience"], threshold=args["threshold"],
                                        threshold_mode=args["threshold_mode"],
                                        cooldown=args["cooldown"], min_lr=args["min_lr"],
                                        eps=args["eps"])
    lrs = [lrs_of(optimizer)]
    for m in metrics:
        optimizer.step()
        scheduler.step(m)
        lrs.append(lrs_of(optimizer))
    return {"name": name, "kind": "ReduceLROnPlateau", "args": args, "metrics": metrics,
            "lrs": lrs}


def one_cycle(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", div_factor=25.0,
              final_div_factor=1e4, three_phase=False):
    return {"max_lr": max_lr, "total_steps": total_steps, "pct_start": pct_start,
            "anneal_strategy": anneal_strategy, "div_factor": div_factor,
            "final_div_factor": final_div_factor, "three_phase": three_phase}


def plateau(mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
            cooldown=0, min_lr=0.0, eps=1e-8):
    return {"mode": mode, "factor": factor, "patience": patience, "threshold": threshold,
            "threshold_mode": threshold_mode, "cooldown": cooldown, "min_lr": min_lr, "eps": eps}


def main():
    cosine = {"kind": "CosineAnnealingLR", "args": {"T_max": 27, "eta_min": 1e-4}}
    cases = [
        run_schedule("step", "StepLR", {"step_size": 5, "gamma": 0.5}),
        run_schedule("step_every", "StepLR", {"step_size": 1, "gamma": 0.9}),
        run_schedule("multistep", "MultiStepLR", {"milestones": [4, 10, 20], "gamma": 0.3}),
        run_schedule("exponential", "ExponentialLR", {"gamma": 0.9}),
        # T_max 10 over 32 steps: down to eta_min, back up, down again (the closed form).
        run_schedule("cosine_periodic", "CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
        run_schedule("cosine", "CosineAnnealingLR", {"T_max": 32, "eta_min": 0.0}),
        run_schedule("warmup_cosine", "WarmupLR",
                     {"warmup_steps": 5, "start_factor": 0.1, "after": cosine}),
        run_schedule("warmup_step", "WarmupLR",
                     {"warmup_steps": 4, "start_factor": 0.25,
                      "after": {"kind": "StepLR", "args": {"step_size": 6, "gamma": 0.5}}}),
        run_schedule("warmup_exponential", "WarmupLR",
                     {"warmup_steps": 3, "start_factor": 0.5,
                      "after": {"kind": "ExponentialLR", "args": {"gamma": 0.95}}}),
        run_schedule("warmup_only", "WarmupLR",
                     {"warmup_steps": 8, "start_factor": 0.2, "after": None}),
        run_schedule("one_cycle", "OneCycleLR", one_cycle([0.5, 0.05], 40)),
        # Ends on step total_steps, the last one PyTorch allows.
        run_schedule("one_cycle_to_end", "OneCycleLR", one_cycle([0.5, 0.05], STEPS)),
        run_schedule("one_cycle_linear_three_phase", "OneCycleLR",
                     one_cycle(0.4, 35, 0.25, "linear", 10.0, 100.0, True)),
        run_schedule("one_cycle_cos_three_phase", "OneCycleLR",
                     one_cycle([0.3, 0.1], 36, 0.4, "cos", 20.0, 1e3, True)),
        run_plateau("plateau_min_rel", plateau(factor=0.5, patience=2, threshold=1e-2), LOSS),
        run_plateau("plateau_min_abs_cooldown",
                    plateau(factor=0.1, patience=1, threshold=0.01, threshold_mode="abs",
                            cooldown=2, min_lr=[1e-3, 1e-5]), LOSS),
        run_plateau("plateau_max", plateau(mode="max", factor=0.3, patience=3, cooldown=1,
                                           min_lr=0.004), ACCURACY),
        run_plateau("plateau_max_abs_eps",
                    plateau(mode="max", factor=0.5, patience=0, threshold=0.005,
                            threshold_mode="abs", eps=1e-3), ACCURACY),
    ]
    doc = {"generator": "scripts/make_scheduler_fixtures.py", "torch": torch.__version__,
           "steps": STEPS, "base_lrs": BASE_LRS, "cases": cases}
    write_fixture(OUT, doc)


if __name__ == "__main__":
    warnings.simplefilter("ignore")  # the optimizer never really steps
    main()
