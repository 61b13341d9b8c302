#!/usr/bin/env bash
# run_mnist_mlp.sh: bridle vs PyTorch, seconds per MNIST MLP training epoch.
#
# For each thread count it runs bench/mnist_mlp_epoch (bridle) once and
# bench/mnist_mlp_epoch_torch.py once per PyTorch setting: the default, and with
# more than one thread also OMP_WAIT_POLICY=PASSIVE (libgomp's spinning workers
# can cost PyTorch time between its many small parallel regions). Each run does
# EPOCHS epochs and reports the median epoch time without the first (warm-up)
# epoch. bridle is compared with PyTorch's best setting for that thread count.
#
# Run:    cmake -S . -B build -G Ninja && ninja -C build mnist_mlp_epoch
#         bench/run_mnist_mlp.sh            (PYTHON=... if python3 lacks torch)
# Env:    BUILD (build), PYTHON (python3), THREADS ("1 2"), EPOCHS (4), BATCH_SIZE (128)
# Prints: one JSON line per thread count, e.g.
#   {"bench":"mnist_mlp_epoch","threads":2,"batch_size":128,"bridle_median_s":3.1,
#    "torch_median_s":2.9,"torch_setting":"OMP_WAIT_POLICY=PASSIVE","ratio":0.94,...}
# ratio = torch_median_s / bridle_median_s: above 1 means bridle is faster.
# OPENBLAS_CORETYPE, if set, reaches both (each uses OpenBLAS for its matrix
# products) and is recorded; an unknown CPU makes OpenBLAS fall back to slow kernels.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-build}"
PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-1 2}"
EPOCHS="${EPOCHS:-4}"
BATCH_SIZE="${BATCH_SIZE:-128}"
bridle_bin="$BUILD/bench/mnist_mlp_epoch"

if [[ ! -x "$bridle_bin" ]]; then
  echo "run_mnist_mlp.sh: no $bridle_bin; build it: ninja -C $BUILD mnist_mlp_epoch" >&2
  exit 1
fi
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "run_mnist_mlp.sh: $PYTHON cannot import torch; set PYTHON to one that can" >&2
  exit 1
fi

for t in $THREADS; do
  bridle_json="$("$bridle_bin" --threads "$t" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE")"
  torch_jsons=()
  torch_jsons+=("$(env -u OMP_WAIT_POLICY "$PYTHON" "$here/mnist_mlp_epoch_torch.py" \
    --threads "$t" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE")")
  if ((t > 1)); then
    torch_jsons+=("$(OMP_WAIT_POLICY=PASSIVE "$PYTHON" "$here/mnist_mlp_epoch_torch.py" \
      --threads "$t" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE")")
  fi
  # Combine the runs into the one comparison line.
  "$PYTHON" - "$bridle_json" "${torch_jsons[@]}" <<'PY'
import json, os, sys
bridle = json.loads(sys.argv[1])
torch_runs = [json.loads(s) for s in sys.argv[2:]]
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
    "bridle_epoch_s": [round(s, 4) for s in bridle["epoch_s"]],
    "epochs": len(bridle["epoch_s"]),
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"),
    "bridle_threading": bridle["threading"],
}))
PY
done
