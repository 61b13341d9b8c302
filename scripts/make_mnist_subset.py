#!/usr/bin/env python3
"""Writes the small MNIST subset that the end-to-end test trains on.

Takes the first 2000 training and the first 500 test examples of a full MNIST
copy (plain or .gz IDX files, as datasets/fetch.sh leaves them) and writes them
as gzipped IDX files into tests/fixtures/mnist_subset/ (about 0.4 MB in all).
Standard library only. The output is byte-for-byte reproducible (gzip mtime 0).

    datasets/fetch.sh mnist
    python3 scripts/make_mnist_subset.py data/mnist
"""
import argparse
import gzip
import hashlib
import struct
import sys
from pathlib import Path

COUNTS = {"train": 2000, "t10k": 500}
# md5 of the uncompressed full files, as published; a subset of anything else
# would not be MNIST.
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def read(folder, name):
    for path in (folder / name, folder / (name + ".gz")):
        if path.exists():
            data = path.read_bytes()
            return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    sys.exit(f"make_mnist_subset: {folder} has no {name} (nor {name}.gz); "
             "run datasets/fetch.sh mnist first")


def subset(data, count):
    """The IDX header with dim 0 set to count, then the first count rows."""
    magic, = struct.unpack(">I", data[:4])
    ndims = magic & 0xFF
    dims = list(struct.unpack(f">{ndims}I", data[4:4 + 4 * ndims]))
    row = 1
    for d in dims[1:]:
        row *= d
    header = struct.pack(f">I{ndims}I", magic, count, *dims[1:])
    start = 4 + 4 * ndims
    return header + data[start:start + count * row]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mnist_dir", type=Path, help="folder with the full MNIST IDX files")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "tests/fixtures/mnist_subset")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for prefix, count in COUNTS.items():
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{prefix}-{kind}-ubyte"
            data = read(args.mnist_dir, name)
            if hashlib.md5(data).hexdigest() != MD5[name]:
                sys.exit(f"make_mnist_subset: {args.mnist_dir / name} is not the published "
                         f"MNIST file (md5 {hashlib.md5(data).hexdigest()}, expected {MD5[name]})")
            out = args.out / f"{name}.gz"
            out.write_bytes(gzip.compress(subset(data, count), compresslevel=9, mtime=0))
            total += out.stat().st_size
            print(f"{out}: {count} examples, {out.stat().st_size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
