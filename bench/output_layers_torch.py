#!/usr/bin/env python3
"""output_layers_torch: one training step's forward + backward through PyTorch's
large-vocabulary output layers, the twin of bench/output_layers.cpp.

The same hidden states h [B, d] (requires_grad) and Zipfian targets (class c
drawn with probability proportional to 1 / (c + 1)), and three layers:
  full      nn.Linear(d, V) + F.cross_entropy
  adaptive  nn.AdaptiveLogSoftmaxWithLoss(d, V, cutoffs, div_value=4)
  sampled   sampled softmax as a PyTorch user writes it from torch ops: S
            log-uniform draws per step (with repeats: torch has no TensorFlow-
            style unique sampler), logQ correction, accidental hits masked,
            cross_entropy over [true, sampled] columns
Each sample clears the gradients (set to None), then times loss + backward.

--threads N sets torch.set_num_threads(N) and OPENBLAS_NUM_THREADS=N before torch
loads (see bench/mnist_mlp_epoch_torch.py for why).

Run:    python3 bench/output_layers_torch.py --threads 2
Prints: one JSON line per layer, the fields of the bridle side.
"""

import argparse
import json
import math
import os
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--classes", type=int, default=50000)
    parser.add_argument("--num-sampled", type=int, default=1024)
    parser.add_argument("--cutoffs", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--layers", nargs="+", default=["full", "sampled", "adaptive"])
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--min-samples", type=int, default=10)
    args = parser.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    B, d, V, S = args.batch, args.hidden, args.classes, args.num_sampled
    weights = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    targets = torch.multinomial(weights, B, replacement=True)
    h = torch.randn(B, d, requires_grad=True)
    log_range = math.log(V + 1)

    for name in args.layers:
        if name == "full":
            layer = torch.nn.Linear(d, V)

            def loss_fn():
                return F.cross_entropy(layer(h), targets)

        elif name == "adaptive":
            layer = torch.nn.AdaptiveLogSoftmaxWithLoss(d, V, args.cutoffs, div_value=4.0)

            def loss_fn():
                return layer(h, targets).loss

        elif name == "sampled":
            layer = torch.nn.Linear(d, V)

            def log_q(ids):  # log(S * P(c)), P the log-uniform distribution
                ids = ids.to(torch.float32)
                return torch.log(S * (torch.log((ids + 2) / (ids + 1)) / log_range))

            def loss_fn():
                u = torch.rand(S)
                sampled = (torch.exp(u * log_range) - 1).long().clamp_(0, V - 1)
                w, b = layer.weight, layer.bias
                true_logits = (h * w[targets]).sum(1) + b[targets] - log_q(targets)
                sampled_logits = h @ w[sampled].t() + b[sampled] - log_q(sampled)
                hits = sampled.unsqueeze(0) == targets.unsqueeze(1)
                sampled_logits = sampled_logits.masked_fill(hits, -1e30)
                logits = torch.cat([true_logits.unsqueeze(1), sampled_logits], 1)
                return F.cross_entropy(logits, torch.zeros(B, dtype=torch.long))

        else:
            raise SystemExit(f"output_layers_torch: unknown layer '{name}'")
        params = list(layer.parameters())

        def clear():
            h.grad = None
            for p in params:
                p.grad = None

        def step():
            loss_fn().backward()

        for _ in range(3):
            clear()
            step()
        samples, total = [], 0.0
        while total < args.min_seconds or len(samples) < args.min_samples:
            clear()
            start = time.perf_counter()
            step()
            samples.append(time.perf_counter() - start)
            total += samples[-1]
        line = {"bench": "output_layers", "framework": "torch", "torch": torch.__version__,
                "layer": name, "batch": B, "hidden": d, "classes": V,
                "threads": torch.get_num_threads(), "median_s": statistics.median(samples),
                "samples": len(samples),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
        if name == "sampled":
            line["num_sampled"] = S
        if name == "adaptive":
            line["cutoffs"] = args.cutoffs
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
