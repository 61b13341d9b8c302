#!/usr/bin/env python3
"""softmax_kernels_torch: time and memory throughput of softmax, log_softmax and
cross_entropy, forward and backward, PyTorch side.

The twin of bench/softmax_kernels.cpp, case for case: the same shapes, the same
passes (the backward samples start with x.grad = None and do not time the
forward that feeds them), the same byte counts for the effective bandwidth, the
same copy measurement (dst.copy_(src) on a buffer of the shape's size), median
of one call per sample. Calls go through Python, as a PyTorch user makes them;
on tiny shapes that overhead is part of what is measured.

--threads N sets torch.set_num_threads(N) and OPENBLAS_NUM_THREADS=N before torch
loads (see bench/mnist_mlp_epoch_torch.py for why).

Run:    python3 bench/softmax_kernels_torch.py --threads 2
Prints: one JSON line per (shape, op, pass), the fields of the bridle side.
"""

import argparse
import json
import os
import statistics
import time


def sample(setup, timed, min_seconds, min_samples):
    for _ in range(3):
        setup()
        timed()
    samples, total = [], 0.0
    while total < min_seconds or len(samples) < min_samples:
        setup()
        start = time.perf_counter()
        timed()
        s = time.perf_counter() - start
        samples.append(s)
        total += s
        if len(samples) >= 20000:
            break
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", nargs="+", default=["64x50000", "4096x1000", "256x10"])
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--min-samples", type=int, default=30)
    args = parser.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = os.environ.get("OMP_WAIT_POLICY")

    for spec in args.shapes:
        B, C = (int(v) for v in spec.split("x"))
        n_bytes = B * C * 4
        src, dst = torch.randn(B, C), torch.empty(B, C)
        copy_s = statistics.median(
            sample(lambda: None, lambda: dst.copy_(src), args.min_seconds, args.min_samples))
        copy_gb_per_s = 2 * n_bytes / copy_s / 1e9

        x = torch.randn(B, C) * 3.0
        g = torch.randn(B, C)
        targets = torch.randint(0, C, (B,))

        def report(op, pass_, bytes_per_element, samples):
            s = statistics.median(samples)
            print(json.dumps({
                "bench": "softmax_kernels", "framework": "torch", "torch": torch.__version__,
                "shape": [B, C], "op": op, "pass": pass_, "threads": args.threads,
                "omp_wait_policy": policy, "median_s": s, "samples": len(samples),
                "gb_per_s": bytes_per_element * n_bytes / s / 1e9,
                "copy_gb_per_s": copy_gb_per_s}), flush=True)

        x_grad = x.clone().requires_grad_(True)
        state = {}
        for op, f in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
            report(op, "forward", 2, sample(
                lambda: None, lambda: f(x, 1), args.min_seconds, args.min_samples))

            def setup(f=f):
                x_grad.grad = None
                state["y"] = f(x_grad, 1)

            report(op, "backward", 3, sample(
                setup, lambda: state["y"].backward(g), args.min_seconds, args.min_samples))

        report("cross_entropy", "forward", 1, sample(
            lambda: None, lambda: F.cross_entropy(x, targets), args.min_seconds,
            args.min_samples))

        def setup_loss():
            x_grad.grad = None
            state["loss"] = F.cross_entropy(x_grad, targets)

        report("cross_entropy", "backward", 2, sample(
            setup_loss, lambda: state["loss"].backward(), args.min_seconds, args.min_samples))

        def clear_grad():
            x_grad.grad = None

        report("cross_entropy", "forward+backward", 3, sample(
            clear_grad, lambda: F.cross_entropy(x_grad, targets).backward(), args.min_seconds,
            args.min_samples))


if __name__ == "__main__":
    main()
