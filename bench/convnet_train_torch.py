#!/usr/bin/env python3
"""convnet_train_torch: training images per second of the convolutional examples'
networks, PyTorch side.

The twin of bench/convnet_train.cpp, line for line: LeNet-5 (ReLU, max pooling),
the PyTorch-example MNIST CNN and ResNet-20 (option-B shortcuts: 1x1 conv + batch
norm where the shape changes), trained on one reused batch of seeded normal images
with uniform labels: zero_grad, forward in training mode, F.cross_entropy (mean),
backward, SGD step (momentum 0.9; ResNet-20 also nesterov, weight decay 5e-4).

--threads N sets torch.set_num_threads(N) and OPENBLAS_NUM_THREADS=N (before torch
loads; see bench/mnist_mlp_epoch_torch.py for why).

Run:    python3 bench/convnet_train_torch.py --model resnet20 --threads 2
Prints: one JSON line with the same fields as the bridle side (median_step_s,
images_per_s, gflops counted the same way).
"""

import argparse
import json
import os
import statistics
import time


def forward_macs(model):
    def conv(cin, cout, k, hw):
        return cout * hw * hw * cin * k * k

    if model == "lenet5":
        return conv(1, 6, 5, 28) + conv(6, 16, 5, 10) + 400 * 120 + 120 * 84 + 84 * 10
    if model == "mnist_cnn":
        return conv(1, 32, 3, 26) + conv(32, 64, 3, 24) + 9216 * 128 + 128 * 10
    macs, cin, hw = conv(3, 16, 3, 32) + 64 * 10, 16, 32
    for width in (16, 32, 64):
        if width != cin:
            hw //= 2
            macs += conv(cin, width, 1, hw)
        macs += conv(cin, width, 3, hw) + 5 * conv(width, width, 3, hw)
        cin = width
    return macs


def build(name, nn, F):
    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = F.relu(self.fc1(x.flatten(1)))
            return self.fc3(F.relu(self.fc2(x)))

    class MnistCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
            self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
            self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            x = F.relu(self.fc1(self.dropout1(x).flatten(1)))
            return self.fc2(self.dropout2(x))

    def conv(cin, cout, k, stride):
        return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = conv(cout, cout, 3, 1), nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = conv(3, 16, 3, 1), nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for width in (16, 32, 64):
                for b in range(3):
                    blocks.append(BasicBlock(cin, width, 2 if b == 0 and width != 16 else 1))
                    cin = width
            self.stages = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.stages(F.relu(self.bn1(self.conv1(x))))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    return {"lenet5": LeNet5, "mnist_cnn": MnistCnn, "resnet20": ResNet20}[name]()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20", choices=["lenet5", "mnist_cnn", "resnet20"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import torch  # after OPENBLAS_NUM_THREADS: OpenBLAS reads it when it loads
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cifar = args.model == "resnet20"
    batch = args.batch_size or (128 if cifar else 64)
    steps = args.steps or (300 if args.model == "lenet5" else 30 if cifar else 60)
    model = build(args.model, nn, F).train()
    options = dict(lr=0.05, momentum=0.9)
    if cifar:
        options.update(weight_decay=5e-4, nesterov=True)
    optimizer = torch.optim.SGD(model.parameters(), **options)
    images = torch.randn(batch, 3, 32, 32) if cifar else torch.randn(batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,), dtype=torch.int64)

    step_s, last_loss = [], 0.0
    for step in range(args.warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        last_loss = loss.item()
        if step >= args.warmup:
            step_s.append(time.perf_counter() - start)
    median_s = statistics.median(step_s)
    print(json.dumps({
        "bench": "convnet_train",
        "framework": "torch",
        "model": args.model,
        "threads": args.threads,
        "batch_size": batch,
        "step_s": step_s,
        "median_step_s": median_s,
        "images_per_s": batch / median_s,
        "gflops": 6.0 * forward_macs(args.model) * batch / median_s / 1e9,
        "last_loss": last_loss,
        "torch_version": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }))


if __name__ == "__main__":
    main()
