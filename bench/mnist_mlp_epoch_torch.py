#!/usr/bin/env python3
"""mnist_mlp_epoch_torch: seconds per training epoch of the MNIST MLP, PyTorch side.

The twin of bench/mnist_mlp_epoch.cpp, line for line: a 784-512-512-10 ReLU MLP
(nn.Linear with bias), F.cross_entropy (mean), SGD lr 0.05 momentum 0.9, batches
of 128 in order (no shuffling; the last batch is partial), on 60000 synthetic
seeded uniform [0, 1) images of MNIST's shape with uniform labels in [0, 10).
Batches are row views of one tensor, so the timing is the training step alone.

--threads N sets torch.set_num_threads(N) and also OPENBLAS_NUM_THREADS=N (before
torch loads): Debian's PyTorch does its matrix products in the pthread build of
OpenBLAS, whose own thread pool torch.set_num_threads does not reach, so without
it a "1 thread" run still multiplies on every core. OPENBLAS_NUM_THREADS already
set in the environment wins.

Run:    python3 bench/mnist_mlp_epoch_torch.py --threads 2 --epochs 4
        (needs PyTorch, e.g. Debian's python3-torch; bench/run_mnist_mlp.sh runs
        this next to the bridle binary and prints the ratios)
Prints: one JSON line, e.g.
  {"bench":"mnist_mlp_epoch","framework":"torch","threads":2,"batch_size":128,
   "epoch_s":[...],"median_s":2.9,...}
where median_s is the median epoch time without the first (warm-up) epoch and
cpu_median_s the same for the process's CPU time (all threads).
"""

import argparse
import json
import os
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--epochs", type=int, default=4, help="epochs; the first is a warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is a warm-up)")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import torch  # after OPENBLAS_NUM_THREADS: OpenBLAS reads it when it loads
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = torch.rand(args.images, 28 * 28)
    y = torch.randint(0, 10, (args.images,), dtype=torch.int64)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    epoch_s, epoch_cpu_s = [], []
    last_loss = 0.0
    for _ in range(args.epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        for begin in range(0, args.images, args.batch_size):
            end = min(args.images, begin + args.batch_size)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[begin:end]), y[begin:end])
            loss.backward()
            optimizer.step()
            if end == args.images:
                last_loss = loss.item()
        epoch_s.append(time.perf_counter() - start)
        epoch_cpu_s.append(time.process_time() - cpu_start)

    print(json.dumps({
        "bench": "mnist_mlp_epoch",
        "framework": "torch",
        "threads": args.threads,
        "batch_size": args.batch_size,
        "images": args.images,
        "epoch_s": epoch_s,
        "median_s": statistics.median(epoch_s[1:]),
        "cpu_median_s": statistics.median(epoch_cpu_s[1:]),
        "last_loss": last_loss,
        "torch_version": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "openblas_num_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
    }))


if __name__ == "__main__":
    main()
