#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: installs dependencies, builds
# (Release), runs the unit tests, rebuilds with AddressSanitizer +
# UndefinedBehaviorSanitizer (Debug) and runs them again, then runs every
# example in its --smoke mode. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/install_deps.sh

echo "== Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== Debug build with AddressSanitizer + UndefinedBehaviorSanitizer, and tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBRIDLE_SANITIZE=ON \
  -DBRIDLE_BUILD_BENCH=OFF
cmake --build build-asan -j "$jobs"
ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== Example smoke runs"
fixtures=tests/fixtures
build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset"
build/examples/custom_function --smoke
build-asan/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --threads 2
echo "== all tests passed"
