#!/usr/bin/env bash
# From a fresh Debian machine to a trained MNIST classifier: installs the
# dependencies, builds bridle, fetches MNIST (datasets/fetch.sh) and trains
# examples/mnist_mlp for 5 epochs (about 98% test accuracy). Extra arguments go
# to mnist_mlp, e.g. scripts/quickstart.sh --threads 2 --epochs 3.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh --with-npm
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target mnist_mlp
bash datasets/fetch.sh mnist data/mnist
build/examples/mnist_mlp --data data/mnist "$@"
