#!/usr/bin/env bash
# run_output_layers.sh: bridle's large-vocabulary output layers vs PyTorch, one
# training step (forward + backward) for batch 256, hidden 512, 50,000 classes.
#
# For each thread count it runs bench/output_layers (bridle: full softmax,
# hierarchical, class-based, sampled, NCE, adaptive) and
# bench/output_layers_torch.py once per PyTorch setting (the default, and with
# more than one thread also OMP_WAIT_POLICY=PASSIVE), then prints one table: each
# bridle layer's median, its speed-up over bridle's full softmax, the PyTorch
# counterpart's best median (Linear + cross_entropy for full, hierarchical, class
# and NCE, which PyTorch does not have; AdaptiveLogSoftmaxWithLoss for adaptive;
# a sampled softmax from torch ops for sampled) and the ratio.
#
# Run:    cmake -S . -B build -G Ninja && ninja -C build output_layers
#         bench/run_output_layers.sh            (PYTHON=... if python3 lacks torch)
# Env:    BUILD (build), PYTHON (python3), THREADS ("1 2"), MIN_SECONDS (1.0)
# Prints: a Markdown table per thread count, then every JSON line. ratio = torch
#         median / bridle median: above 1 means bridle is faster.
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" output_layers
THREADS="${THREADS:-1 2}"
MIN_SECONDS="${MIN_SECONDS:-1.0}"

for t in $THREADS; do
  args=(--threads "$t" --min-seconds "$MIN_SECONDS")
  bridle_lines="$(env -u OMP_WAIT_POLICY "$bridle_bin" "${args[@]}")"
  torch_lines="$(env -u OMP_WAIT_POLICY "$PYTHON" "$here/output_layers_torch.py" "${args[@]}")"
  if ((t > 1)); then
    torch_lines+=$'\n'"$(OMP_WAIT_POLICY=PASSIVE "$PYTHON" "$here/output_layers_torch.py" \
      "${args[@]}")"
  fi
  runs="$(mktemp)"
  printf '%s\n%s\n' "$bridle_lines" "$torch_lines" >"$runs"
  "$PYTHON" - "$runs" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
bridle = [r for r in rows if r["framework"] == "bridle"]
torch = [r for r in rows if r["framework"] == "torch"]
best = {}
for r in torch:
    if r["layer"] not in best or r["median_s"] < best[r["layer"]]["median_s"]:
        best[r["layer"]] = r
counterpart = {"full": "full", "hierarchical": "full", "class": "full", "sampled": "sampled",
               "nce": "full", "adaptive": "adaptive"}
names = {"full": "Linear + cross_entropy", "sampled": "sampled softmax (torch ops)",
         "adaptive": "AdaptiveLogSoftmaxWithLoss"}
full = next(r for r in bridle if r["layer"] == "full")["median_s"]
b0 = bridle[0]
print(f"\n{b0['threads']} thread(s), batch {b0['batch']}, hidden {b0['hidden']},"
      f" {b0['classes']} classes, PyTorch {torch[0]['torch']}; forward + backward medians in ms\n")
print("| bridle layer | bridle ms | vs bridle full | PyTorch counterpart | PyTorch ms |"
      " PyTorch / bridle |")
print("|---|---|---|---|---|---|")
for r in bridle:
    t = best[counterpart[r["layer"]]]
    setting = f" ({t['omp_wait_policy']})" if t.get("omp_wait_policy") else ""
    print(f"| {r['layer']} | {r['median_s'] * 1e3:.2f} | {full / r['median_s']:.1f}x |"
          f" {names[t['layer']]} | {t['median_s'] * 1e3:.2f}{setting} |"
          f" {t['median_s'] / r['median_s']:.2f} |")
print()
for r in rows:
    print(json.dumps(r))
PY
  rm -f "$runs"
done
