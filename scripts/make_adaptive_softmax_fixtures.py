#!/usr/bin/env python3
"""Writes tests/fixtures/adaptive_softmax.json: PyTorch golden values for bridle's
AdaptiveLogSoftmaxWithLoss (lib/nn/adaptive_softmax.h).

Run from the repository root:  python3 scripts/make_adaptive_softmax_fixtures.py
It needs PyTorch (Debian: apt-get install python3-torch; written against 1.13). The
output is deterministic (torch.manual_seed, CPU, float32, one thread) and committed,
so the C++ test (tests/nn/test_adaptive_softmax.cpp) never needs Python.

Each case builds torch.nn.AdaptiveLogSoftmaxWithLoss with its config and stores:
the state dict ("param:<name>", the names bridle uses too), the input and targets,
forward's output and loss, log_prob, predict, the gradients of loss w.r.t. the
input and every parameter ("grad_loss:<name>", "grad_loss:input"), and the
gradients of sum(weights * output) ("grad_output:<name>", with "weights"), which
exercise the per-row output on its own. A parameter no gradient reaches (the tail
of a cluster without targets) is stored with a zero gradient. Tensors use make_fixtures.py's encoding.
"""

import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import enc, to_json_lines, weights_like  # noqa: E402

SEED = 20240701

# name, in_features, n_classes, cutoffs, div_value, head_bias, batch, buckets to leave empty
CONFIGS = [
    ("c20_div2_nobias", 8, 20, [5, 12], 2.0, False, 16, []),
    ("c20_div4_bias", 16, 20, [5, 12], 4.0, True, 16, []),
    ("c30_three_clusters_div2_bias", 16, 30, [4, 10, 20], 2.0, True, 20, []),
    ("c20_div2_empty_first_cluster", 8, 20, [5, 12], 2.0, False, 8, [1]),
]


def make_targets(n_classes, cutoffs, batch, empty):
    """Random targets that hit every bucket (shortlist = 0, cluster i = i + 1) except
    those in `empty`, and repeat one class."""
    bounds = [0] + cutoffs + [n_classes]
    allowed = [c for b in range(len(bounds) - 1) if b not in empty
               for c in range(bounds[b], bounds[b + 1])]
    allowed = torch.tensor(allowed)
    target = allowed[torch.randint(0, len(allowed), (batch,))]
    k = 0
    for b in range(len(bounds) - 1):
        if b in empty:
            continue
        target[k] = torch.randint(bounds[b], bounds[b + 1], ())
        k += 1
    target[k] = target[0]  # a repeated class
    return target[torch.randperm(batch)]


def grad_of(p):
    """p's gradient, or zeros where none reached it (a cluster no target falls in)."""
    return torch.zeros_like(p) if p.grad is None else p.grad


def case(name, in_features, n_classes, cutoffs, div_value, head_bias, batch, empty):
    module = nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=div_value,
                                           head_bias=head_bias)
    x = (torch.randn(batch, in_features) * 2.0).requires_grad_(True)
    target = make_targets(n_classes, cutoffs, batch, empty)
    params = dict(module.named_parameters())

    out = module(x, target)
    out.loss.backward(retain_graph=True)
    c = {"name": name, "in_features": in_features, "n_classes": n_classes, "cutoffs": cutoffs,
         "div_value": div_value, "head_bias": head_bias}
    for k, p in params.items():
        c["param:" + k] = enc(p)
    c.update({"input": enc(x), "target": enc(target), "output": enc(out.output),
              "loss": enc(out.loss), "grad_loss:input": enc(x.grad)})
    for k, p in params.items():
        c["grad_loss:" + k] = enc(grad_of(p))

    x.grad = None
    module.zero_grad(set_to_none=True)
    w = weights_like(out.output)
    out.output.backward(w)
    c["weights"] = enc(w)
    c["grad_output:input"] = enc(x.grad)
    for k, p in params.items():
        c["grad_output:" + k] = enc(grad_of(p))

    with torch.no_grad():
        c["log_prob"] = enc(module.log_prob(x))
        c["predict"] = enc(module.predict(x))
    return c


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "tests", "fixtures", "adaptive_softmax.json")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reductions sum in one fixed order
    doc = {
        "generator": "scripts/make_adaptive_softmax_fixtures.py",
        "torch_version": torch.__version__,
        "seed": SEED,
        "dtype": "float32",
        "encoding": ("tensors are {shape, data} row-major; float32 values as their shortest "
                     "round-trip decimals; integer tensors carry dtype int64"),
        "cases": [case(*config) for config in CONFIGS],
    }
    with open(args.out, "w") as f:
        f.write(to_json_lines(doc))
    print(f"wrote {os.path.normpath(args.out)} ({os.path.getsize(args.out) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
