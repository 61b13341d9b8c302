#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: installs dependencies, builds
# (Release), runs the unit tests, rebuilds with AddressSanitizer +
# UndefinedBehaviorSanitizer (Debug) and runs them again, then runs every
# example in its --smoke mode. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/install_deps.sh

# The CUDA backend builds wherever nvcc is (its tests skip without a GPU).
if [[ -z "${CUDACXX:-}" && -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

echo "== Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== Debug build with AddressSanitizer + UndefinedBehaviorSanitizer, and tests"
# CPU only: the sanitizers do not see device code, and this proves the build
# without CUDA compiles too.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBRIDLE_SANITIZE=ON \
  -DBRIDLE_BUILD_BENCH=OFF -DBRIDLE_CUDA=OFF
cmake --build build-asan -j "$jobs"
ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== Example smoke runs"
fixtures=tests/fixtures
build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset"
ckpt_dir=$(mktemp -d)
build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --save "$ckpt_dir/mlp.h5"
build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --eval "$ckpt_dir/mlp.h5" \
  --export-predictions "$ckpt_dir/test_predictions.csv"
# The subset's 500 test images: a header and 500 rows of a label, 10 logits and 10 probabilities.
test "$(wc -l < "$ckpt_dir/test_predictions.csv")" -eq 501
test "$(head -2 "$ckpt_dir/test_predictions.csv" | tail -1 | tr ',' '\n' | wc -l)" -eq 21
if python3 -c "import h5py" 2>/dev/null; then python3 scripts/inspect_checkpoint.py "$ckpt_dir/mlp.h5"; fi
build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --optimizer adamw --lr 0.001 \
  --schedule onecycle --no-decay-1d
# The teaching path, in order.
for lesson in 01_scalar_autograd 02_backprop_by_hand 03_stable_softmax 04_custom_layer 05_onward; do
  build/examples/$lesson --smoke
done
# The inspection tools: a profile table, anomaly checks on every op, a graph picture.
build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --profile --detect-anomaly \
  --graph "$ckpt_dir/step_graph.svg"
grep -q "<svg" "$ckpt_dir/step_graph.svg"
# Data-parallel: 2 ranks x batch 64 must end where 1 rank x batch 128 does (the
# same global batches), with the same test loss; a checkpoint written by rank 0.
mpirun=(mpirun -np 2 --oversubscribe)
if [[ $(id -u) -eq 0 ]]; then mpirun+=(--allow-run-as-root); fi
one_rank=$(build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --threads 1 \
  --batch-size 128 | tail -1)
two_ranks=$("${mpirun[@]}" build/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" \
  --threads 1 --batch-size 64 --distributed --save "$ckpt_dir/ddp.h5" | tail -1)
python3 - "$one_rank" "$two_ranks" <<'PY'
import json, sys
one, two = (json.loads(s) for s in sys.argv[1:])
assert two["ranks"] == 2, two
assert abs(one["test_nll"] - two["test_nll"]) < 1e-4, (one["test_nll"], two["test_nll"])
print(f"data parallel: test nll {one['test_nll']:.6f} on 1 rank, {two['test_nll']:.6f} on 2 ranks")
PY
test -s "$ckpt_dir/ddp.h5"
rm -rf "$ckpt_dir"
build/examples/temperature --smoke
build/examples/multilabel --smoke
build/examples/softmax_relatives --smoke
build/examples/calibrate --smoke --data "$fixtures/mnist_subset" --threads 1
# An example that keeps its model on the cpu must refuse --device cuda, not ignore it.
if refusal=$(build/examples/calibrate --smoke --device cuda 2>&1); then
  echo "calibrate --device cuda should have failed"; exit 1
fi
grep -q "runs on the cpu only" <<<"$refusal"
build/examples/word_lm --smoke --data "$fixtures/brown_subset"
"${mpirun[@]}" build/examples/word_lm --smoke --data "$fixtures/brown_subset" --threads 1 \
  --output full,sampled,adaptive --batch-size 128 --distributed
build/examples/mnist_lenet --smoke --data "$fixtures/mnist_subset"
build/examples/mnist_cnn --smoke --data "$fixtures/mnist_subset"
# CIFAR-10 from the shared copy beside the repository when there is one (CI has it).
cifar=../shared/datasets/cifar-10-binary.tar.gz
if [[ -f "$cifar" ]]; then
  build/examples/cifar10_resnet --smoke --data "$cifar"
  "${mpirun[@]}" build/examples/cifar10_resnet --smoke --data "$cifar" --threads 1 --distributed \
    --sync-batch-norm
else
  echo "skipping the cifar10_resnet smoke run: no $cifar"
fi
build-asan/examples/mnist_mlp --smoke --data "$fixtures/mnist_subset" --threads 2 --profile \
  --detect-anomaly
build-asan/examples/01_scalar_autograd --smoke
echo "== all tests passed"
