#!/usr/bin/env python3
"""softmax_kernels_torch_cuda: PyTorch's side of bench/softmax_kernels_cuda.cpp on
the GPU: the same [rows x n] shape, the same kernels and byte counts, the same
device-to-device copy as the yardstick, median of --iters timed calls each
ended by torch.cuda.synchronize().

Run:    python3 bench/softmax_kernels_torch_cuda.py --rows 4096 --n 50000
Prints: one JSON line per kernel, the fields of the bridle side.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def median_ms(iters, fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ms.append((time.perf_counter() - start) * 1e3)
    return statistics.median(ms)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    rows, n = args.rows, args.n
    elements = rows * n
    x = torch.randn(rows, n, device="cuda") * 3
    dy = torch.randn(rows, n, device="cuda")
    copy = torch.empty_like(x)
    targets = (torch.arange(rows, device="cuda") * 7919) % n
    y = torch.softmax(x, 1)

    def report(kernel, ms, bytes_per_element, copy_ms=None):
        line = {"bench": "softmax_kernels_torch_cuda", "kernel": kernel, "rows": rows, "n": n,
                "median_ms": ms, "gb_per_s": bytes_per_element * elements / (ms * 1e6)}
        if copy_ms:
            line["vs_copy"] = copy_ms / ms * (bytes_per_element / 8.0)
        print(json.dumps(line), flush=True)

    copy_ms = median_ms(args.iters, lambda: copy.copy_(x))
    report("device_to_device_copy", copy_ms, 8)
    report("softmax_forward", median_ms(args.iters, lambda: torch.softmax(x, 1)), 8, copy_ms)
    report("log_softmax_forward", median_ms(args.iters, lambda: torch.log_softmax(x, 1)), 8,
           copy_ms)
    report("softmax_backward",
           median_ms(args.iters, lambda: torch._softmax_backward_data(dy, y, 1, torch.float32)),
           12, copy_ms)
    report("cross_entropy_forward", median_ms(args.iters, lambda: F.cross_entropy(x, targets)), 8,
           copy_ms)  # PyTorch writes the log-softmax: read + write
    logits = x.detach().requires_grad_()

    def forward_backward():
        logits.grad = None
        F.cross_entropy(logits, targets).backward()

    report("cross_entropy_op_forward_backward", median_ms(args.iters, forward_backward), 12,
           copy_ms)


if __name__ == "__main__":
    main()
