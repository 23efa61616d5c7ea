#!/usr/bin/env python3
"""Benchmark of the bitplane codec against numpy's copy throughput.

Prints one table measured in one run, one thread: for float32 matrices of
1 MB to 256 MB (4096 columns), the throughput of encode, decode with 8 and
4 planes, and refine, each in GB/s of float32 data, beside np.copyto of
the same number of bytes between two preallocated arrays. "decode8/copy"
is the ratio the codec aims to keep at 0.7 or more from 64 MB up.

Usage: python tools/bench_codec.py [--sizes-mb 1 4 16 64 256] [--min-time 0.5]
"""
import argparse
import os
import platform
import time

import numpy as np

import rbe_edge
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.quantize import encode_codes

COLS = 4096
BITS = 8


def best_seconds(run, min_time: float) -> float:
    """Best time of `run` over repeats lasting at least min_time in total."""
    run()  # warm-up: page faults, caches
    best = float("inf")
    total = 0.0
    repeats = 0
    while total < min_time or repeats < 3:
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        total += elapsed
        repeats += 1
    return best


def make_tensor(rows: int, rng: np.random.Generator) -> PackedTensor:
    """Return a random 8-bit tensor; random codes avoid quantizing hundreds of MB."""
    codes = rng.integers(0, 2**BITS, size=(rows, COLS), dtype=np.uint16)
    planes = encode_codes(codes, BITS, COLS)
    return PackedTensor(
        name="bench",
        shape=(rows, COLS),
        layout="nk",
        bits=BITS,
        group_size=COLS,
        planes=planes,
        scale=rng.uniform(1e-3, 1e-2, size=(rows, 1)).astype(np.float32),
        zero=rng.integers(0, 2**BITS, size=(rows, 1)).astype(np.float32),
    )


def measure(size_mb: int, min_time: float, rng: np.random.Generator) -> dict:
    rows = max(1, size_mb * 2**20 // (4 * COLS))
    nbytes = rows * COLS * 4
    codes = rng.integers(0, 2**BITS, size=(rows, COLS), dtype=np.uint16)
    packed = make_tensor(rows, rng)
    out = packed.decode(BITS)
    source = np.ones((rows, COLS), dtype=np.float32)
    target = np.empty_like(source)

    def refine_7_to_8():
        packed.decode(7, out=out)
        packed.refine(out, 7)

    seconds = {
        "copy": best_seconds(lambda: np.copyto(target, source), min_time),
        "encode": best_seconds(lambda: encode_codes(codes, BITS, COLS), min_time),
        "decode8": best_seconds(lambda: packed.decode(8, out=out), min_time),
        "decode4": best_seconds(lambda: packed.decode(4, out=out), min_time),
        "decode7+refine": best_seconds(refine_7_to_8, min_time),
    }
    return {name: nbytes / value / 1e9 for name, value in seconds.items()} | {"mb": nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 4, 16, 64, 256],
                        help="float32 matrix sizes to measure, in MiB (default: 1 4 16 64 256)")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="minimum seconds of repeats per measurement (default: 0.5)")
    args = parser.parse_args()

    info = rbe_edge.kernel_info()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or '?'}")
    print(f"kernels: {info['isa']} ({info['unpack']}, {info['dequant_f32']}); numpy {np.__version__}")
    print(f"matrices of float32 with {COLS} columns, {BITS}-bit codes, one thread; GB/s of float32")
    header = f"{'size MB':>8} {'copy':>7} {'encode':>7} {'decode8':>8} {'decode4':>8} " \
             f"{'dec7+ref':>9} {'decode8/copy':>13}"
    print(header)

    rng = np.random.default_rng(0)
    for size_mb in args.sizes_mb:
        r = measure(size_mb, args.min_time, rng)
        print(f"{r['mb']:8.0f} {r['copy']:7.2f} {r['encode']:7.2f} {r['decode8']:8.2f} "
              f"{r['decode4']:8.2f} {r['decode7+refine']:9.2f} {r['decode8'] / r['copy']:13.2f}")


if __name__ == "__main__":
    main()
