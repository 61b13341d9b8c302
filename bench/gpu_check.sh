#!/usr/bin/env bash
# gpu_check.sh: everything the GPU machine is for, in one call, from the bundle
# that bench/gpu_bundle.sh made here (the GPU machine cannot build bridle: it
# lacks Debian's -dev libraries). In order:
#   1. unpacks gpu_bundle/bundle.tar.xz, finds cuBLAS, cuDNN and NCCL (the CUDA
#      toolkit's or PyTorch's), checks with ldd that no library is missing;
#   2. runs the CUDA tests (bridle_tests --gtest_filter='Cuda*:Cudnn*': every CUDA
#      op against the CPU one, gradcheck through the GPU, the allocators,
#      conv / pooling / batch norm through cuDNN, and a few training steps of
#      MnistCnn and a CIFAR ResNet against the same steps on the CPU);
#   3. trains mnist_mlp for one epoch with --device cuda (data/mnist when the
#      bundle has it, else the fixtures' 500-image subset): the model moves to
#      the GPU (Module::to) and each batch follows it;
#   4. trains mnist_cnn (convolutions and pooling through cuDNN, dropout) for
#      one epoch with --device cuda, on the same data;
#   5. times one epoch of the CIFAR-10 ResNet-20 with --device cuda on the
#      bundle's CIFAR-10 subset (gpu_bundle.sh cuts 1000 images from each
#      training file and the test file when data/cifar10 exists; without it the
#      step says so and is skipped): images/s and train_seconds land in
#      cifar10_resnet.json;
#   5b. trains word_lm's six output layers (full, hierarchical, class-based,
#      sampled, NCE, adaptive softmax) for a few smoke batches with --device cuda
#      on the fixtures' Brown subset, and judges each by its exact perplexity;
#   6. runs the NCCL tests (bridle_tests --gtest_filter='Nccl*': the process
#      group and DistributedDataParallel on one rank), a step of its own: they
#      start MPI as a singleton, and a failure there must not hide the others;
#   7. benchmarks the softmax kernels against a device-to-device copy, and
#      PyTorch's on the same shapes when python3 has torch.
# Each step's exit status is kept; the script ends with a summary and fails if
# any step failed. With $OUT set (the device tool's output folder) the log and
# the JSON lines are written there too.
#
# Run there:  bash bench/gpu_check.sh            (carry gpu_bundle; about 3-4 minutes)
# Run here:   bash bench/gpu_check.sh --no-gpu   (no GPU: the binaries must start,
#             report CUDA unavailable cleanly and skip the GPU tests)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
expect_gpu=1
[[ "${1:-}" == "--no-gpu" ]] && expect_gpu=0
work=${TMPDIR:-/tmp}/bridle_gpu_check
results=${OUT:-$work/results}
rm -rf "$work"
mkdir -p "$work" "$results"
log="$results/gpu_check.log"
exec > >(tee "$log") 2>&1
tee_pid=$!

declare -a summary=()
status=0
step() {  # step NAME COMMAND...: runs it, records its exit status
  local name=$1
  shift
  echo
  echo "== $name: $*"
  local start=$SECONDS
  "$@"
  local rc=$?
  summary+=("$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" $((SECONDS - start)))")
  ((rc == 0)) || status=1
  return 0
}

# --- 1. unpack, find cuBLAS, check the libraries ---------------------------------
bundle="$repo/gpu_bundle/bundle.tar.xz"
[[ -f "$bundle" ]] || { echo "gpu_check: no $bundle (run bench/gpu_bundle.sh here first)"; exit 1; }
if command -v xz > /dev/null; then
  tar -C "$work" -xJf "$bundle"
else  # a bare image may lack xz; Python's lzma reads it
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
    "$bundle" "$work"
fi

# Prints the directory holding the library $1 (e.g. libcudnn.so.9), or nothing:
# the loader's cache, the CUDA toolkit's lib dirs, then PyTorch's wheels
# (site-packages/nvidia/{cublas,cudnn,nccl}/lib), found through python3.
find_library_dir() {
  local name=$1 dir
  dir=$(ldconfig -p 2> /dev/null | awk -v name="$name" '$1 == name {print $NF; exit}')
  [[ -n "$dir" ]] && { dirname "$dir"; return; }
  for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
             /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu; do
    [[ -e "$dir/$name" ]] && { echo "$dir"; return; }
  done
  local site
  for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2> /dev/null); do
    dir=$(find "$site/nvidia" -name "$name" -printf '%h\n' 2> /dev/null | head -1)
    [[ -n "$dir" ]] && { echo "$dir"; return; }
  done
}
# cuBLAS, cuDNN (which loads its sub-libraries from its own directory, so that
# directory must be on the path) and NCCL are the GPU machine's own (gpu_bundle.sh).
library_path="$work/lib"
for library in libcublas.so.13 libcudnn.so.9 libnccl.so.2; do
  dir=$(find_library_dir "$library")
  echo "$library: ${dir:-not found}"
  [[ -n "$dir" && ":$library_path:" != *":$dir:"* ]] && library_path="$library_path:$dir"
done
export LD_LIBRARY_PATH="$library_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Open MPI's plugins and help texts from the bundle (gpu_bundle.sh); a one-rank
# job runs as an isolated singleton, without the orted daemon a bare machine lacks.
if [[ -d "$work/openmpi" ]]; then
  export OPAL_PREFIX="$work/openmpi" OMPI_MCA_ess_singleton_isolated=1
fi
command -v nvidia-smi > /dev/null && nvidia-smi -L

check_libraries() {
  local missing
  missing=$(ldd "$work"/bin/* | grep "not found" | sort -u)
  [[ -z "$missing" ]] || { echo "missing libraries:"; echo "$missing"; return 1; }
  echo "every library found"
}
step "libraries" check_libraries

# --- 2. the CUDA tests ---------------------------------------------------------------
cuda_tests() {
  # CudaWithoutGpu.* are the no-GPU checks: with a GPU they skip themselves.
  local filter='Cuda*:Cudnn*'
  ((expect_gpu)) && filter+=':-CudaWithoutGpu.*'
  "$work/bin/bridle_tests" --gtest_filter="$filter" \
    --gtest_output="json:$results/cuda_tests.json" | tee "$work/tests.txt"
  local rc=${PIPESTATUS[0]}
  local skipped  # gtest's closing summary: "[  SKIPPED ] 25 tests, listed below:"
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\},.*/\1/p' "$work/tests.txt")
  skipped=${skipped:-0}
  echo "skipped: $skipped"
  # Without a GPU every GPU test must report itself skipped; with one, none may.
  if ((expect_gpu)) && ((skipped > 0)); then
    echo "gpu_check: tests were skipped on a machine that should have a GPU"
    return 1
  fi
  return "$rc"
}
step "cuda tests" cuda_tests

# Without a GPU an example must refuse --device cuda (exit status not 0); with
# one it must succeed. refused_or_ran RC prints nothing and returns the verdict.
refused_or_ran() {
  local rc=$1
  if ((!expect_gpu)); then ((rc != 0)) && return 0 || return 1; fi
  return "$rc"
}

# --- 3. one epoch of mnist_mlp on the GPU ----------------------------------------------
mnist="$work/data/mnist"
[[ -d "$mnist" ]] || mnist="$repo/tests/fixtures/mnist_subset"
mnist_epoch() {
  "$work/bin/mnist_mlp" --device cuda --epochs 1 --data "$mnist" --heldout 0 \
    --metrics-out "$results/mnist_mlp.json"
  refused_or_ran $?
}
step "mnist_mlp --device cuda" mnist_epoch

# --- 4. one epoch of mnist_cnn on the GPU ----------------------------------------------
mnist_cnn_epoch() {
  "$work/bin/mnist_cnn" --device cuda --epochs 1 --data "$mnist" --heldout 0 \
    --metrics-out "$results/mnist_cnn.json"
  refused_or_ran $?
}
step "mnist_cnn --device cuda" mnist_cnn_epoch

# --- 5. one timed epoch of ResNet-20 on the bundle's CIFAR-10 subset ------------------
cifar="$work/data/cifar10"
cifar_epoch() {
  if [[ ! -d "$cifar" ]]; then
    echo "no CIFAR-10 in the bundle (data/cifar10 was missing where it was packed): skipped"
    return 0
  fi
  "$work/bin/cifar10_resnet" --device cuda --recipe quick --epochs 1 --data "$cifar" \
    --heldout 0 --metrics-out "$results/cifar10_resnet.json"
  refused_or_ran $?
}
step "cifar10_resnet --device cuda" cifar_epoch

# --- 5b. word_lm's output layers on the GPU ----------------------------------------------
word_lm_smoke() {
  "$work/bin/word_lm" --device cuda --smoke --data "$repo/tests/fixtures/brown_subset" \
    --metrics-out "$results/word_lm.json"
  refused_or_ran $?
}
step "word_lm --device cuda" word_lm_smoke

# --- 6. the NCCL tests -------------------------------------------------------------------
nccl_tests() {
  "$work/bin/bridle_tests" --gtest_filter='Nccl*' \
    --gtest_output="json:$results/nccl_tests.json"
}
step "nccl tests" nccl_tests

# --- 7. the softmax kernels --------------------------------------------------------------
bench() {
  local shape rc=0
  for shape in "4096 50000" "64 50000" "1 1048576" "4096 1000" "256 10"; do
    set -- $shape
    "$work/bin/softmax_kernels_cuda" --rows "$1" --n "$2" | tee -a "$results/softmax_cuda.jsonl"
    ((PIPESTATUS[0] == 0)) || rc=1
  done
  refused_or_ran "$rc"
}
step "softmax bench (bridle)" bench

torch_bench() {
  if ! python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
    echo "no PyTorch with CUDA here: skipped"
    return 0
  fi
  local shape
  for shape in "4096 50000" "64 50000" "1 1048576" "4096 1000" "256 10"; do
    set -- $shape
    python3 bench/softmax_kernels_torch_cuda.py --rows "$1" --n "$2" |
      tee -a "$results/softmax_torch_cuda.jsonl" || return 1
  done
}
step "softmax bench (PyTorch)" torch_bench

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "gpu_check: $( ((status == 0)) && echo passed || echo FAILED) (log: $log)"
# Let tee write the last lines to the log before the caller collects it.
exec > /dev/null 2>&1
wait "$tee_pid" || true
exit "$status"
