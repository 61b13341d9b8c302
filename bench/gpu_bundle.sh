#!/usr/bin/env bash
# gpu_bundle.sh: packs what bench/gpu_check.sh runs on the GPU machine into
# gpu_bundle/ (git-ignored): the CUDA build's binaries, stripped, with every
# shared library they need that a bare machine may lack, MNIST when data/mnist
# exists, and a CIFAR-10 subset when data/cifar10 does (the whole set is 180 MB,
# too big to carry). The GPU machine has the NVIDIA driver, the CUDA toolkit
# (cuBLAS) and PyTorch, but none of Debian's -dev libraries (oneDNN, OpenBLAS,
# HDF5, fmt, spdlog, ...) and no network, so those travel with the binaries.
#
# Left out, because the GPU machine has its own: glibc (libc, libm, libdl,
# libpthread, librt, the loader), libstdc++ and libgcc_s (the binaries need
# GCC 12's, older than any current distribution's), the driver (libcuda), and
# cuBLAS (libcublas + libcublasLt are 600 MB, over the 64 MiB the bundle may
# weigh; gpu_check.sh finds the toolkit's or PyTorch's copy), cuDNN (libcudnn.so.9
# and the sub-libraries it loads itself, ~470 MB) and NCCL (libnccl.so.2), which
# gpu_check.sh finds the same way (PyTorch bundles both under
# site-packages/nvidia/{cudnn,nccl}/lib). The CUDA runtime is linked statically
# (lib/CMakeLists.txt).
#
# Run:    bash bench/gpu_bundle.sh [build-dir]   (default build-cuda, configured with
#         -DBRIDLE_CUDA=ON and built: bridle_tests mnist_mlp mnist_cnn cifar10_resnet
#         word_lm softmax_kernels_cuda)
# Makes:  gpu_bundle/bundle.tar.xz and gpu_bundle/MANIFEST.txt; prints the size.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
out=gpu_bundle
limit_mib=60  # the device machine takes 64 MiB of working tree in all; leave some room

binaries=("$build/tests/bridle_tests" "$build/examples/mnist_mlp" "$build/examples/mnist_cnn"
          "$build/examples/cifar10_resnet" "$build/examples/word_lm"
          "$build/bench/softmax_kernels_cuda")
for binary in "${binaries[@]}"; do
  [[ -x "$binary" ]] || { echo "gpu_bundle: missing $binary (build it first)" >&2; exit 1; }
done

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/bin" "$staging/lib"
for binary in "${binaries[@]}"; do
  cp "$binary" "$staging/bin/"
  strip --strip-unneeded "$staging/bin/$(basename "$binary")"
done

# The libraries the GPU machine provides itself (see the top of this file).
# libcudnn* covers the front library and any sub-library a binary names itself.
provided='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcuda|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl)\.so'
missing=$(ldd "${binaries[@]}" | grep "not found" || true)
if [[ -n "$missing" ]]; then
  echo "gpu_bundle: libraries not found here:" >&2
  echo "$missing" >&2
  exit 1
fi
ldd "${binaries[@]}" | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
  if [[ "$name" =~ $provided ]]; then continue; fi
  cp -L "$path" "$staging/lib/$name"
  strip --strip-unneeded "$staging/lib/$name" 2>/dev/null || true
done

# Open MPI (the NCCL tests start it as a one-rank singleton) loads its plugins
# and help texts at MPI_Init from fixed paths under its prefix, which ldd does
# not see. They travel under openmpi/, in the same layout, so that setting
# OPAL_PREFIX to it there relocates them (gpu_check.sh); the libraries the
# plugins link go to lib/ with the rest.
if command -v ompi_info > /dev/null; then
  ompi_path() { ompi_info --path "$1" --parsable | cut -d: -f3; }
  prefix=$(ompi_path prefix)
  for dir in "$(ompi_path pkglibdir)" "$(ompi_path pkgdatadir)"; do
    mkdir -p "$staging/openmpi/$(dirname "${dir#"$prefix"}")"
    cp -r "$dir" "$staging/openmpi/${dir#"$prefix"}"
  done
  ldd "$(ompi_path pkglibdir)"/*.so | awk '/=> \// {print $1, $3}' | sort -u |
    while read -r name path; do
      if [[ "$name" =~ $provided || -e "$staging/lib/$name" ]]; then continue; fi
      cp -L "$path" "$staging/lib/$name"
      strip --strip-unneeded "$staging/lib/$name" 2>/dev/null || true
    done
fi

if [[ -d data/mnist ]]; then  # a full MNIST epoch; else gpu_check.sh uses the fixtures' subset
  mkdir -p "$staging/data"
  cp -r data/mnist "$staging/data/mnist"
fi
# CIFAR-10's binary files are whole records (1 label byte + 3072 pixels) end to
# end, and the loader takes any number of them per file: the first
# $cifar_images of each training file and of the test file make a 5000-image
# training set and a 1000-image test set (~14 MiB packed), enough to time an epoch.
cifar_source=data/cifar10/cifar-10-batches-bin
cifar_images=1000
if [[ -d "$cifar_source" ]]; then
  cifar_dest="$staging/data/cifar10/cifar-10-batches-bin"
  mkdir -p "$cifar_dest"
  for file in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin \
              data_batch_5.bin test_batch.bin; do
    head -c $((cifar_images * 3073)) "$cifar_source/$file" > "$cifar_dest/$file"
  done
  cp "$cifar_source/batches.meta.txt" "$cifar_dest/" 2> /dev/null || true
fi

rm -rf "$out"
mkdir -p "$out"
{
  echo "bridle GPU bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from $build"
  echo "expected on the GPU machine: $(ldd "$build/tests/bridle_tests" | awk '/libcublas|libcudnn|libnccl/ {print $1}' | tr '\n' ' ')"
  (cd "$staging" && find . -type f -printf '%10s  %p\n' | sort -k2)
} > "$out/MANIFEST.txt"
tar -C "$staging" -cf - . | xz -6 -T0 > "$out/bundle.tar.xz"

size=$(stat -c %s "$out/bundle.tar.xz")
echo "gpu_bundle: $out/bundle.tar.xz is $((size / 1024 / 1024)) MiB ($(du -sh "$staging" | cut -f1) unpacked)"
if (( size > limit_mib * 1024 * 1024 )); then
  echo "gpu_bundle: over the $limit_mib MiB limit" >&2
  exit 1
fi
