#!/usr/bin/env python3
"""Writes tests/fixtures/torch_layers.json: PyTorch golden values for bridle's layers.

Run from the repository root:  python3 scripts/make_layer_fixtures.py
It needs PyTorch (Debian: apt-get install python3-torch; written against 1.13). The
output is deterministic (torch.manual_seed, CPU, float32, one thread) and committed,
so the C++ tests (tests/ops/test_pool.cpp, test_batch_norm.cpp,
test_dropout_activations.cpp) never need Python.

Cases cover max / average / adaptive average pooling, batch norm (1-D and 2-D,
training and evaluation, with and without affine parameters), GELU (both forms)
and leaky ReLU. The format is make_fixtures.py's (its encoder is reused): each case
holds its float32 inputs, PyTorch's output and the gradients of the weighted-sum
loss sum(weights * output), i.e. backward(weights), with the weights stored too.
Batch norm training cases also hold the running statistics before and after.
"""

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import enc, leaf, to_json_lines, weights_like  # noqa: E402

SEED = 20240615


def run(fn, inputs):
    """fn(*leaves) -> output; returns (output, weights, grads) with grads of sum(w * out).

    Inputs that are None stay None (and get no gradient)."""
    leaves = [None if x is None else leaf(x) for x in inputs]
    out = fn(*leaves)
    w = weights_like(out)
    out.backward(w)
    return out, w, [None if x is None else x.grad for x in leaves]


# --- pooling ----------------------------------------------------------------------


def distinct_values(shape):
    """A random permutation of well-separated values: no ties, so max pooling's
    choice is unambiguous."""
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n).to(torch.float32) * 0.37 - n * 0.15).reshape(shape)


def pool_cases():
    cases = []

    def add(name, op, x, **args):
        if op == "max_pool2d":
            f = lambda t: F.max_pool2d(t, args["kernel"], args["stride"], args["padding"],
                                       args["dilation"])
        elif op == "avg_pool2d":
            f = lambda t: F.avg_pool2d(t, args["kernel"], args["stride"], args["padding"],
                                       count_include_pad=args["count_include_pad"])
        else:
            f = lambda t: F.adaptive_avg_pool2d(t, args["output_size"])
        out, w, (gx,) = run(f, [x])
        case = {"name": name, "op": op}
        case.update(args)
        case.update({"input": enc(x), "output": enc(out), "weights": enc(w),
                     "grad_input": enc(gx)})
        cases.append(case)

    def max_args(k, s, p=(0, 0), d=(1, 1)):
        return {"kernel": list(k), "stride": list(s), "padding": list(p), "dilation": list(d)}

    add("max_k2s2", "max_pool2d", torch.randn(2, 3, 8, 8), **max_args((2, 2), (2, 2)))
    add("max_k3s2p1", "max_pool2d", torch.randn(2, 3, 9, 9), **max_args((3, 3), (2, 2), (1, 1)))
    add("max_k3s1p1_distinct", "max_pool2d", distinct_values((1, 2, 6, 5)),
        **max_args((3, 3), (1, 1), (1, 1)))
    add("max_k2s2_odd_input", "max_pool2d", torch.randn(1, 2, 7, 5), **max_args((2, 2), (2, 2)))
    add("max_k3x2_s2x1_p1x0", "max_pool2d", torch.randn(2, 2, 7, 6),
        **max_args((3, 2), (2, 1), (1, 0)))
    add("max_k3s1_dilation2", "max_pool2d", torch.randn(1, 2, 9, 8),
        **max_args((3, 3), (1, 1), (1, 1), (2, 2)))
    # Ties: small integers, so many windows hold their maximum more than once.
    add("max_k2s2_ties", "max_pool2d", torch.randint(0, 3, (2, 2, 6, 6)).to(torch.float32),
        **max_args((2, 2), (2, 2)))
    add("max_k3s2p1_ties", "max_pool2d", torch.randint(0, 2, (1, 3, 7, 7)).to(torch.float32),
        **max_args((3, 3), (2, 2), (1, 1)))

    for include in (True, False):
        tag = "incl" if include else "excl"

        def avg_args(k, s, p=(0, 0)):
            return {"kernel": list(k), "stride": list(s), "padding": list(p),
                    "count_include_pad": include}

        add(f"avg_k2s2_{tag}", "avg_pool2d", torch.randn(2, 3, 8, 8), **avg_args((2, 2), (2, 2)))
        add(f"avg_k3s2p1_{tag}", "avg_pool2d", torch.randn(2, 3, 9, 9),
            **avg_args((3, 3), (2, 2), (1, 1)))
        add(f"avg_k3x2_s1x2_p1x1_{tag}", "avg_pool2d", torch.randn(1, 2, 6, 7),
            **avg_args((3, 2), (1, 2), (1, 1)))

    for size in ([1, 1], [2, 2], [3, 2], [5, 7], [4, 4]):
        add(f"adaptive_{size[0]}x{size[1]}", "adaptive_avg_pool2d", torch.randn(2, 3, 7, 5),
            output_size=size)
    add("adaptive_global_8x8", "adaptive_avg_pool2d", torch.randn(4, 6, 8, 8), output_size=[1, 1])
    return cases


# --- batch norm ------------------------------------------------------------------


def batch_norm_cases():
    cases = []

    def add(name, shape, training, affine=True, bias_only=False, momentum=0.1, eps=1e-5,
            scale=1.0, shift=0.0):
        c = shape[1]
        x = torch.randn(shape) * scale + shift
        weight = 1.0 + 0.5 * torch.randn(c) if affine and not bias_only else None
        bias = 0.5 * torch.randn(c) if affine else None
        running_mean = 0.3 * torch.randn(c)
        running_var = 0.5 + torch.rand(c)
        rm, rv = running_mean.clone(), running_var.clone()
        out, w, (gx, gw, gb) = run(
            lambda t, wt, bs: F.batch_norm(t, rm, rv, wt, bs, training, momentum, eps),
            [x, weight, bias])
        case = {"name": name, "training": training, "momentum": momentum, "eps": eps,
                "input": enc(x), "running_mean": enc(running_mean),
                "running_var": enc(running_var), "output": enc(out), "weights": enc(w),
                "grad_input": enc(gx), "running_mean_after": enc(rm),
                "running_var_after": enc(rv)}
        if weight is not None:
            case.update({"weight": enc(weight), "grad_weight": enc(gw)})
        if bias is not None:
            case.update({"bias": enc(bias), "grad_bias": enc(gb)})
        cases.append(case)

    for training in (True, False):
        mode = "train" if training else "eval"
        add(f"bn1d_{mode}_8x5", [8, 5], training)
        add(f"bn1d_{mode}_4x3x6", [4, 3, 6], training)
        add(f"bn2d_{mode}_4x3x5x5", [4, 3, 5, 5], training)
        add(f"bn2d_{mode}_no_affine", [3, 4, 4, 3], training, affine=False)
        add(f"bn2d_{mode}_bias_only", [2, 3, 3, 3], training, bias_only=True)
    # Offset, widely spread inputs and other momentum / eps values.
    add("bn2d_train_offset_momentum0.3", [6, 2, 4, 4], True, momentum=0.3, eps=1e-3, scale=5.0,
        shift=20.0)
    add("bn1d_train_two_rows", [2, 4], True)
    return cases


# --- activations -----------------------------------------------------------------


def activation_cases():
    cases = []
    x = torch.cat([torch.randn(40) * 3, torch.tensor([0.0, -1e-3, 1e-3, 8.0, -8.0, 20.0])])
    for approximate in ("none", "tanh"):
        out, w, (gx,) = run(lambda t: F.gelu(t, approximate=approximate), [x])
        cases.append({"name": f"gelu_{approximate}", "op": "gelu", "approximate": approximate,
                      "input": enc(x), "output": enc(out), "weights": enc(w),
                      "grad_input": enc(gx)})
    for slope in (0.01, 0.2, -0.5):
        out, w, (gx,) = run(lambda t: F.leaky_relu(t, slope), [x])
        cases.append({"name": f"leaky_relu_{slope}", "op": "leaky_relu", "negative_slope": slope,
                      "input": enc(x), "output": enc(out), "weights": enc(w),
                      "grad_input": enc(gx)})
    return cases


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "tests", "fixtures", "torch_layers.json")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reductions sum in one fixed order
    doc = {
        "generator": "scripts/make_layer_fixtures.py",
        "torch_version": torch.__version__,
        "seed": SEED,
        "dtype": "float32",
        "loss": "sum(weights * output); every grad_* is d loss / d input (backward(weights))",
        "encoding": ("tensors are {shape, data} row-major; float32 values as their shortest "
                     "round-trip decimals; non-finite floats are the strings inf, -inf, nan"),
        "pool": pool_cases(),
        "batch_norm": batch_norm_cases(),
        "activations": activation_cases(),
    }
    with open(args.out, "w") as f:
        f.write(to_json_lines(doc))
    print(f"wrote {os.path.normpath(args.out)} ({os.path.getsize(args.out) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
