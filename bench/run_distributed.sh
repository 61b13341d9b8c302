#!/usr/bin/env bash
# run_distributed.sh: data-parallel training on this machine, 1 rank against 2
# ranks of one thread each, and the all-reduce bandwidth against Open MPI's own
# MPI_Allreduce.
#
# 1. Scaling: examples/mnist_mlp for EPOCHS epochs on 1 rank (batch 128), on 2
#    ranks with batch 64 each (the same global batch of 128, so the same
#    training), and on 2 ranks with batch 128 each (global 256). Every run has
#    --threads 1 per rank. It reports training images/s (evaluation excluded)
#    and the speed-up over 1 rank.
# 2. bench/allreduce under mpirun -np 2: median time per all-reduce from 4 KB
#    to 64 MB, bridle's (non-blocking MPI, polled with a timeout) and
#    MPI_Allreduce's, and the bus bandwidth of each.
#
# Run:    cmake -S . -B build -G Ninja && ninja -C build mnist_mlp allreduce
#         bench/run_distributed.sh
# Env:    BUILD (build), DATA (data/mnist), EPOCHS (2), MPIRUN (mpirun)
# Prints: a Markdown table for each part, then every JSON line for the record.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-build}"
DATA="${DATA:-data/mnist}"
EPOCHS="${EPOCHS:-2}"
MPIRUN="${MPIRUN:-mpirun}"
# Open MPI's default binding gives each rank its own core; with --bind-to none
# both ranks may share one, and a blocking MPI_Allreduce then waits out the
# other's time slice (12 ms per call measured here).
launch=("$MPIRUN")
if [[ $(id -u) -eq 0 ]]; then launch+=(--allow-run-as-root); fi
for binary in examples/mnist_mlp bench/allreduce; do
  if [[ ! -x "$BUILD/$binary" ]]; then
    echo "run_distributed.sh: no $BUILD/$binary; build it: ninja -C $BUILD $(basename $binary)" >&2
    exit 1
  fi
done

common=(--data "$DATA" --epochs "$EPOCHS" --threads 1 --heldout 0)
one="$("$BUILD/examples/mnist_mlp" "${common[@]}" --batch-size 128 2>/dev/null | tail -1)"
two_same="$("${launch[@]}" -np 2 "$BUILD/examples/mnist_mlp" "${common[@]}" --distributed \
  --batch-size 64 2>/dev/null | tail -1)"
two_double="$("${launch[@]}" -np 2 "$BUILD/examples/mnist_mlp" "${common[@]}" --distributed \
  --batch-size 128 2>/dev/null | tail -1)"
allreduce="$("${launch[@]}" -np 2 "$BUILD/bench/allreduce" 2>/dev/null)"

python3 - "$one" "$two_same" "$two_double" "$allreduce" <<'PY'
import json, sys
runs = [json.loads(s) for s in sys.argv[1:4]]
labels = ["1 rank x batch 128", "2 ranks x batch 64 (global 128)", "2 ranks x batch 128 (global 256)"]
base = runs[0]["images_per_second"]
print("| run | images/s | speed-up | test accuracy |")
print("|---|---|---|---|")
for label, run in zip(labels, runs):
    print(f"| {label} | {run['images_per_second']:.0f} | {run['images_per_second'] / base:.2f} | "
          f"{run['test_accuracy']:.4f} |")
print()
print("| buffer | MPI_Allreduce | bridle all_reduce | bridle / MPI | bus GB/s (MPI, bridle) |")
print("|---|---|---|---|---|")
lines = [json.loads(s) for s in sys.argv[4].splitlines() if s.startswith("{")]
for r in lines:
    size = r["bytes"]
    name = f"{size >> 20} MB" if size >= 1 << 20 else f"{size >> 10} KB"
    print(f"| {name} | {r['mpi_allreduce_seconds'] * 1e6:.0f} µs | {r['bridle_seconds'] * 1e6:.0f} µs | "
          f"{r['bridle_over_mpi']:.2f} | {r['mpi_busbw_gbs']:.2f}, {r['bridle_busbw_gbs']:.2f} |")
print()
for run in runs:
    print(json.dumps(run))
for r in lines:
    print(json.dumps(r))
PY
