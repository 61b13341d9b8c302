#!/usr/bin/env bash
# run_mnist_mlp.sh: bridle vs PyTorch, seconds per MNIST MLP training epoch.
#
# For each thread count it runs bench/mnist_mlp_epoch (bridle) once and
# bench/mnist_mlp_epoch_torch.py once per PyTorch setting: the default, and with
# more than one thread also OMP_WAIT_POLICY=PASSIVE (PyTorch runs two pools, its
# OpenMP one and OpenBLAS's pthreads, and spinning OpenMP workers then steal the
# cores the BLAS threads need). Each run does EPOCHS epochs and reports the median
# epoch time without the first (warm-up) epoch. bridle (default OpenMP settings)
# is compared with PyTorch's best setting for that thread count; with more than
# one thread bridle is also run with OMP_WAIT_POLICY=PASSIVE, for the record.
# Both get the same thread budget: the PyTorch script sets OPENBLAS_NUM_THREADS
# to its thread count, which torch.set_num_threads alone would not limit.
#
# Run:    cmake -S . -B build -G Ninja && ninja -C build mnist_mlp_epoch
#         bench/run_mnist_mlp.sh            (PYTHON=... if python3 lacks torch)
# Env:    BUILD (build), PYTHON (python3), THREADS ("1 2"), EPOCHS (5), BATCH_SIZE (128)
# Prints: one JSON line per thread count, e.g.
#   {"bench":"mnist_mlp_epoch","threads":2,"batch_size":128,"bridle_median_s":3.1,
#    "torch_median_s":2.9,"torch_setting":"OMP_WAIT_POLICY=PASSIVE","ratio":0.94,...}
# ratio = torch_median_s / bridle_median_s: above 1 means bridle is faster.
# BRIDLE_GEMM=openblas, if set, makes bridle multiply with OpenBLAS instead of
# oneDNN. OPENBLAS_CORETYPE, if set, reaches both (PyTorch multiplies with
# OpenBLAS) and is recorded: OpenBLAS falls back to slow generic kernels on a CPU
# it does not know (0.3.21 on Sapphire/Emerald Rapids picks "Prescott").
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" mnist_mlp_epoch
THREADS="${THREADS:-1 2}"
EPOCHS="${EPOCHS:-5}"
BATCH_SIZE="${BATCH_SIZE:-128}"

for t in $THREADS; do
  args=(--threads "$t" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE")
  bridle_json="$(env -u OMP_WAIT_POLICY "$bridle_bin" "${args[@]}")"
  bridle_passive_json="{}"
  torch_jsons=("$(env -u OMP_WAIT_POLICY OPENBLAS_NUM_THREADS="$t" \
    "$PYTHON" "$here/mnist_mlp_epoch_torch.py" "${args[@]}")")
  if ((t > 1)); then
    bridle_passive_json="$(OMP_WAIT_POLICY=PASSIVE "$bridle_bin" "${args[@]}")"
    torch_jsons+=("$(OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS="$t" \
      "$PYTHON" "$here/mnist_mlp_epoch_torch.py" "${args[@]}")")
  fi
  # Combine the runs into the one comparison line.
  "$PYTHON" - "$bridle_json" "$bridle_passive_json" "${torch_jsons[@]}" <<'PY'
import json, os, sys
bridle = json.loads(sys.argv[1])
bridle_passive = json.loads(sys.argv[2])
torch_runs = [json.loads(s) for s in sys.argv[3:]]
def setting(run):
    policy = run.get("omp_wait_policy")
    return f"OMP_WAIT_POLICY={policy}" if policy else "default"
best = min(torch_runs, key=lambda r: r["median_s"])
print(json.dumps({
    "bench": "mnist_mlp_epoch",
    "threads": bridle["threads"],
    "batch_size": bridle["batch_size"],
    "bridle_median_s": round(bridle["median_s"], 4),
    "torch_median_s": round(best["median_s"], 4),
    "torch_setting": setting(best),
    "ratio": round(best["median_s"] / bridle["median_s"], 3),
    "ratio_means": "torch_median_s / bridle_median_s; > 1 means bridle is faster",
    "torch_all": {setting(r): round(r["median_s"], 4) for r in torch_runs},
    "bridle_cpu_median_s": round(bridle["cpu_median_s"], 4),
    "torch_cpu_median_s": round(best["cpu_median_s"], 4),
    "bridle_epoch_s": [round(s, 4) for s in bridle["epoch_s"]],
    "bridle_passive_median_s": round(bridle_passive["median_s"], 4) if bridle_passive else None,
    "epochs": len(bridle["epoch_s"]),
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
    "bridle_gemm": bridle["gemm"],
    "bridle_threading": bridle["threading"],
}))
PY
done
