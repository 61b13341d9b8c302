#!/usr/bin/env bash
# run_softmax.sh: bridle vs PyTorch on softmax, log_softmax and cross_entropy,
# forward and backward, for [64 x 50000], [4096 x 1000] and [256 x 10] rows.
#
# For each thread count it runs, REPEATS times in turns, bench/softmax_kernels
# (bridle) and bench/softmax_kernels_torch.py once per PyTorch setting (the
# default, and with more than one thread also OMP_WAIT_POLICY=PASSIVE), then
# prints one table: per shape, op and pass, bridle's median time and effective
# bandwidth, the copy bandwidth measured in the same run (bridle's copy loop,
# same buffer size and threads), bridle's share of it, PyTorch's median in its
# best setting and the ratio.
#
# Run:    cmake -S . -B build -G Ninja && ninja -C build softmax_kernels
#         bench/run_softmax.sh            (PYTHON=... if python3 lacks torch)
# Env:    BUILD (build), PYTHON (python3), THREADS ("1 2"), MIN_SECONDS (0.5),
#         REPEATS (3): both benches run that many times per thread count (and
#         setting); bridle's row is, of its case's runs, the one with the median
#         share of copy, PyTorch's the one with the median time (on 2 shared cores
#         one run's figures move by 10-30%, on either side)
# Prints: a Markdown table per thread count, then every JSON line (bridle_* and
#         torch_*) for the record. ratio = torch median / bridle median: above 1
#         means bridle is faster.
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" softmax_kernels
THREADS="${THREADS:-1 2}"
MIN_SECONDS="${MIN_SECONDS:-0.5}"

for t in $THREADS; do
  args=(--threads "$t" --min-seconds "$MIN_SECONDS")
  bridle_lines=""
  torch_lines=""
  # In turns, so that a slow spell of the machine hits both sides alike.
  for ((repeat = 0; repeat < ${REPEATS:-3}; ++repeat)); do
    bridle_lines+="$(env -u OMP_WAIT_POLICY "$bridle_bin" "${args[@]}")"$'\n'
    torch_lines+="$(env -u OMP_WAIT_POLICY OPENBLAS_NUM_THREADS="$t" \
      "$PYTHON" "$here/softmax_kernels_torch.py" "${args[@]}")"$'\n'
    if ((t > 1)); then
      torch_lines+="$(OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS="$t" \
        "$PYTHON" "$here/softmax_kernels_torch.py" "${args[@]}")"$'\n'
    fi
  done
  runs="$(mktemp)"
  printf '%s\n%s\n' "$bridle_lines" "$torch_lines" >"$runs"
  "$PYTHON" - "$runs" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
torch = [r for r in rows if r["framework"] == "torch"]
def key(r):
    return (tuple(r["shape"]), r["op"], r["pass"])
runs_of = {}
for r in rows:
    if r["framework"] == "bridle":
        runs_of.setdefault(key(r), []).append(r)
def share_of_copy(r):
    return r["gb_per_s"] / r["copy_gb_per_s"]
bridle = [sorted(runs, key=share_of_copy)[len(runs) // 2] for runs in runs_of.values()]
# PyTorch: per setting, the run with the median time; then the best setting.
torch_runs = {}
for r in torch:
    torch_runs.setdefault((key(r), r.get("omp_wait_policy")), []).append(r)
best = {}
for (k, _), runs in torch_runs.items():
    r = sorted(runs, key=lambda run: run["median_s"])[len(runs) // 2]
    if k not in best or r["median_s"] < best[k]["median_s"]:
        best[k] = r
def us(s):
    return f"{s * 1e6:.0f}" if s >= 1e-4 else f"{s * 1e6:.1f}"
print(f"\n{bridle[0]['threads']} thread(s), PyTorch {torch[0]['torch']}; medians in microseconds"
      f" (of {len(next(iter(runs_of.values())))} runs each, run in turns: bridle's run with the"
      " median share of copy, PyTorch's with the median time in its best setting);"
      " GB/s counts the bytes a pass must move (softmax forward: read x, write y;"
      " backward: read y and dy, write dx; cross_entropy forward: read x;"
      " its backward: read x, write dx)\n")
print("| shape | op | pass | bridle us | bridle GB/s | copy GB/s | of copy |"
      " PyTorch us | PyTorch GB/s | PyTorch / bridle |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in bridle:
    t = best[key(r)]
    setting = f" ({t['omp_wait_policy']})" if t.get("omp_wait_policy") else ""
    shape = f"{r['shape'][0]}x{r['shape'][1]}"
    share = 100 * r["gb_per_s"] / r["copy_gb_per_s"]
    print(f"| {shape} | {r['op']} | {r['pass']} | {us(r['median_s'])} | {r['gb_per_s']:.1f} |"
          f" {r['copy_gb_per_s']:.1f} | {share:.0f}% | {us(t['median_s'])}{setting} |"
          f" {t['gb_per_s']:.1f} | {t['median_s'] / r['median_s']:.2f} |")
print()
for r in rows:
    print(json.dumps(r))
PY
  rm -f "$runs"
done
