#!/usr/bin/env bash
# run_convnets.sh: bridle vs PyTorch, training images/s of LeNet-5, the MNIST CNN
# and ResNet-20 (bench/convnet_train and its twin bench/convnet_train_torch.py).
#
# For each model and thread count it runs bridle once and PyTorch once per
# setting: the default and, with more than one thread, OMP_WAIT_POLICY=PASSIVE
# (see run_mnist_mlp.sh for why), and compares bridle with PyTorch's best. Each
# run reports the median step time over its timed steps, so a noisy neighbour
# disturbs single steps, not the figure. Runs alternate bridle and PyTorch, ROUNDS
# times, and the line reports the median of each side's rounds.
#
# Run:    ninja -C build convnet_train && bench/run_convnets.sh  (PYTHON=... if needed)
# Env:    BUILD (build), PYTHON (python3), MODELS ("lenet5 mnist_cnn resnet20"),
#         THREADS ("1 2"), ROUNDS (2), STEPS (per-model default)
# Prints: one JSON line per (model, threads), e.g.
#   {"bench":"convnet_train","model":"resnet20","threads":2,"bridle_images_per_s":700,
#    "torch_images_per_s":560,"torch_setting":"default","ratio":1.25,"bridle_gflops":170,...}
# ratio = bridle_images_per_s / torch_images_per_s: above 1 means bridle is faster.
# OPENBLAS_CORETYPE, if set, reaches both and is recorded (see run_mnist_mlp.sh).
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" convnet_train
MODELS="${MODELS:-lenet5 mnist_cnn resnet20}"
THREADS="${THREADS:-1 2}"
ROUNDS="${ROUNDS:-2}"

for model in $MODELS; do
  for t in $THREADS; do
    args=(--model "$model" --threads "$t")
    [[ -n "${STEPS:-}" ]] && args+=(--steps "$STEPS")
    runs=()
    for ((round = 0; round < ROUNDS; ++round)); do
      runs+=("$(env -u OMP_WAIT_POLICY "$bridle_bin" "${args[@]}")")
      runs+=("$(env -u OMP_WAIT_POLICY OPENBLAS_NUM_THREADS="$t" \
        "$PYTHON" "$here/convnet_train_torch.py" "${args[@]}")")
      if ((t > 1)); then
        runs+=("$(OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS="$t" \
          "$PYTHON" "$here/convnet_train_torch.py" "${args[@]}")")
      fi
    done
    "$PYTHON" - "${runs[@]}" <<'PY'
import json, os, statistics, sys
runs = [json.loads(s) for s in sys.argv[1:]]
def setting(run):
    policy = run.get("omp_wait_policy")
    return f"OMP_WAIT_POLICY={policy}" if policy else "default"
def median_rate(rs):
    return statistics.median(r["images_per_s"] for r in rs)
bridle = [r for r in runs if r["framework"] == "bridle"]
torch_by_setting = {}
for r in runs:
    if r["framework"] == "torch":
        torch_by_setting.setdefault(setting(r), []).append(r)
torch_rates = {k: median_rate(v) for k, v in torch_by_setting.items()}
best = max(torch_rates, key=torch_rates.get)
b = median_rate(bridle)
flops_per_image = bridle[0]["gflops"] / bridle[0]["images_per_s"]
print(json.dumps({
    "bench": "convnet_train",
    "model": bridle[0]["model"],
    "threads": bridle[0]["threads"],
    "batch_size": bridle[0]["batch_size"],
    "bridle_images_per_s": round(b, 1),
    "torch_images_per_s": round(torch_rates[best], 1),
    "torch_setting": best,
    "ratio": round(b / torch_rates[best], 3),
    "ratio_means": "bridle / torch images per second; > 1 means bridle is faster",
    "bridle_gflops": round(b * flops_per_image, 1),
    "torch_gflops": round(torch_rates[best] * flops_per_image, 1),
    "torch_all": {k: round(v, 1) for k, v in torch_rates.items()},
    "bridle_rounds": [round(r["images_per_s"], 1) for r in bridle],
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
}))
PY
  done
done
