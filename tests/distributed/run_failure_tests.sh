#!/usr/bin/env bash
# Runs mpi_failure (a 2-rank job whose rank 1 fails at step 2) in each failure
# mode and checks that the job ends, with a non-zero status, within 30 s, and
# says why. Usage: run_failure_tests.sh MPIEXEC MPI_FAILURE_BINARY
set -uo pipefail
mpiexec="$1"
binary="$2"
launch=("$mpiexec" -np 2 --oversubscribe)
if [[ $(id -u) -eq 0 ]]; then launch+=(--allow-run-as-root); fi

failures=0
check() {  # check MODE EXPECTED_STATUS (0 or nonzero) MESSAGE
  local mode="$1" expected="$2" message="$3" start end status output
  start=$(date +%s)
  output=$(timeout 60 "${launch[@]}" "$binary" "$mode" 2>&1)
  status=$?
  end=$(date +%s)
  local ok=1
  if [[ "$expected" == 0 && $status -ne 0 ]] || [[ "$expected" != 0 && $status -eq 0 ]]; then ok=0; fi
  if ((status == 124)); then ok=0; fi  # the job hung until timeout(1) killed it
  if ((end - start > 30)); then ok=0; fi
  if ! grep -q -- "$message" <<<"$output"; then ok=0; fi
  if ((ok)); then
    echo "ok: $mode: exit $status after $((end - start)) s, says '$message'"
  else
    echo "FAILED: $mode: exit $status after $((end - start)) s, expected '$message' in:"
    echo "$output"
    failures=$((failures + 1))
  fi
}

check none 0 "rank 1/2: finished 5 steps"
check throw nonzero "rank 1 failed on purpose at step 2"
check stall nonzero "gave up (timeout 2.0 s)"
check crash nonzero "rank 1"
exit $((failures > 0))
