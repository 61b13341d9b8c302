#!/usr/bin/env python3
"""Prints what a bridle checkpoint holds: its counters and config, every model
tensor (kind, dtype, shape and a few statistics), the optimizer's state and the
generators saved. The layout is described in docs/checkpoints.md.

    python3 scripts/inspect_checkpoint.py ckpt.h5            # summary
    python3 scripts/inspect_checkpoint.py ckpt.h5 --values 4 # plus each tensor's first 4 values

Needs h5py and numpy (Debian: apt-get install python3-h5py).
"""
import argparse
import json
import sys

import h5py
import numpy as np


def text(value):
    """bridle stores strings as fixed-length UTF-8 bytes; h5py returns numpy bytes."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [text(v) for v in value]
    return value


def describe(dataset, values):
    data = dataset[()]
    shape = list(dataset.shape)
    line = f"{str(dataset.dtype):8} {str(shape):16}"
    if data.size:
        x = np.asarray(data, dtype=np.float64)
        line += f" mean {x.mean():+.4g}  std {x.std():.4g}  min {x.min():+.4g}  max {x.max():+.4g}"
    if values:
        line += f"\n      first values: {np.ravel(data)[:values].tolist()}"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a checkpoint written by bridle::save_checkpoint")
    parser.add_argument("--values", type=int, default=0, metavar="N",
                        help="also print the first N values of every tensor")
    args = parser.parse_args()

    try:
        f = h5py.File(args.path, "r")
    except OSError as e:
        sys.exit(f"{args.path}: cannot open it as HDF5: {e}")
    with f:
        root = {k: text(v) for k, v in f.attrs.items()}
        if root.get("format") != "bridle-checkpoint":
            sys.exit(f"{args.path}: not a complete bridle checkpoint (no format attribute)")
        print(f"{args.path}: bridle checkpoint format {root['format_version']}, "
              f"epoch {root['epoch']}, global step {root['global_step']}")
        print(f"config: {json.dumps(json.loads(root['config']), sort_keys=True)}")

        if "model" in f:
            model = f["model"]
            total = sum(model[k].size for k in model)
            print(f"\nmodel: {len(model)} tensors, {total:,} values")
            width = max((len(k) for k in model), default=0)
            for key in model:  # h5py lists names in alphabetical order
                kind = text(model[key].attrs.get("kind", "?"))
                print(f"  {key:{width}}  {kind:9}  {describe(model[key], args.values)}")

        if "optimizer" in f:
            opt = f["optimizer"]
            attrs = {k: text(v) for k, v in opt.attrs.items()}
            names = attrs.pop("param_names")
            kind, steps = attrs.pop("type"), attrs.pop("step_count")
            hyper = ", ".join(f"{k}={v:g}" for k, v in sorted(attrs.items()))
            print(f"\noptimizer: {kind}, {steps} steps, {hyper}")
            print(f"  parameters: {', '.join(names)}")
            for group in opt:
                print(f"  {group}: {len(opt[group])} of {len(names)} parameters")
                width = max((len(k) for k in opt[group]), default=0)
                for key in names:
                    if key in opt[group]:
                        print(f"    {key:{width}}  {describe(opt[group][key], args.values)}")

        if "rng" in f:
            print("\ngenerators (mt19937_64 state as text):")
            for name, state in f["rng"].attrs.items():
                words = text(state).split()
                print(f"  {name}: {len(words)} words, starting {' '.join(words[:2])} ...")


if __name__ == "__main__":
    main()
