#!/usr/bin/env python3
"""Benchmark of dense-layer training on bitplanes against float32 numpy with Adam.

Prints, in one run, for the layers of a ~10 M-weight head (dense 1024 -> 4864
and 4864 -> 1024, 8-bit codes with one scale per row, P = 8 planes, U = 4
upper planes) and batch 8 and 32, the median time of:

- gemm_t: rbe_gemm_t_f32 (dx = dy @ M, one and two threads) against numpy
  float32 `dy @ W`;
- update: rbe_dense_update (weight gradient and upper-bitplane step) against
  numpy `dy.T @ x` plus an in-place float32 Adam update of W;
- step: one training step of the layer, the forward product, the input
  gradient and the update (rbe_gemm_f32 + rbe_gemm_t_f32 + rbe_dense_update,
  two threads for the products) against numpy (`x @ W.T`, `dy @ W`,
  `dy.T @ x` and Adam),

with the ratio ours / numpy (below 1 means rbe_edge is faster). The two
sides of each line alternate call by call, so load from other processes
hits both alike, and each time is the median over the calls. numpy runs
with its BLAS's default thread count unless --numpy-threads limits it
(through threadpoolctl).

Usage: python tools/bench_dense_train.py [--min-time 0.5] [--batches 8 32]
       [--numpy-threads N]
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

from rbe_edge import kernel_info
from rbe_edge.dense_train import dense_update, gemm_t
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.quantize import encode_codes
from rbe_edge.update import new_accumulator

LAYERS = [(4864, 1024), (1024, 4864)]   # (rows = outputs, cols = inputs)
BITS = 8
UPPER_PLANES = 4


def paired_medians(ours, reference, min_time):
    """Return the median wall times of two callables run alternately.

    Each runs at least 7 times and until both together took `min_time`
    seconds, after one warm-up call each.
    """
    ours()
    reference()
    ours_times, reference_times = [], []
    while sum(ours_times) + sum(reference_times) < min_time or len(ours_times) < 7:
        for run, times in ((ours, ours_times), (reference, reference_times)):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(reference_times)


def packed_layer(rows, cols, rng):
    """Return a random 8-bit layer in layout "nk" ([rows, cols], y = x @ W.T)."""
    codes = rng.integers(0, 256, size=(rows, cols), dtype=np.uint16)
    return PackedTensor(name="bench", shape=(rows, cols), layout="nk", bits=BITS,
                        group_size=cols, planes=encode_codes(codes, BITS, cols),
                        scale=rng.uniform(1e-3, 1e-2, size=(rows, 1)).astype(np.float32),
                        zero=rng.integers(0, 256, size=(rows, 1)).astype(np.float32))


class Adam:
    """Float32 Adam with in-place numpy operations and preallocated buffers."""

    def __init__(self, weight, lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8):
        self.weight = weight
        self.m = np.zeros_like(weight)
        self.v = np.zeros_like(weight)
        self.scratch = np.empty_like(weight)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0

    def step(self, grad):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        np.multiply(grad, grad, out=self.scratch)
        self.scratch *= 1 - b2
        self.v += self.scratch
        step_size = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        np.sqrt(self.v, out=self.scratch)
        self.scratch += self.eps
        np.divide(self.m, self.scratch, out=self.scratch)
        self.scratch *= step_size
        self.weight -= self.scratch


def measure_layer(rows, cols, batch, min_time, rng):
    packed = packed_layer(rows, cols, rng)
    weight = np.ascontiguousarray(packed.decode())
    accum = new_accumulator(packed)
    adam = Adam(weight)
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    dy = (rng.standard_normal((batch, rows)) * 1e-3).astype(np.float32)
    steps = iter(range(10**9))

    def ours_update():
        dense_update(packed, x, dy, upper_planes=UPPER_PLANES, learning_rate=1e-3,
                     accum=accum, step=next(steps))

    def numpy_update():
        adam.step(dy.T @ x)

    def ours_step():
        _forward(packed, x)
        gemm_t(packed, dy, threads=2)
        ours_update()

    def numpy_step():
        _ = x @ weight.T
        _ = dy @ weight
        numpy_update()

    return {
        "gemm_t 1 thr": paired_medians(lambda: gemm_t(packed, dy, threads=1), lambda: dy @ weight,
                                       min_time),
        "gemm_t 2 thr": paired_medians(lambda: gemm_t(packed, dy, threads=2), lambda: dy @ weight,
                                       min_time),
        "update": paired_medians(ours_update, numpy_update, min_time),
        "step": paired_medians(ours_step, numpy_step, min_time),
    }


def _forward(packed, x):
    """y = x @ M.T with rbe_gemm_f32, which PackedTensor.matmul serves only for layout "kn"."""
    from rbe_edge import _native

    y = np.empty((x.shape[0], packed.rows), dtype=np.float32)
    pointers, keep = _native.plane_pointers(packed.planes)
    status = _native.lib.rbe_gemm_f32(
        packed._layout("auto"), pointers, packed.bits,
        _native.pointer(packed.scale, "float[]"), _native.pointer(packed.zero, "float[]"),
        _native.pointer(x, "float[]"), x.shape[0], _native.writable_pointer(y, "float[]"), 2)
    del keep
    _native.check(status, "rbe_gemm_f32")
    return y


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds spent on each measurement at least (default 0.5)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32],
                        help="batch sizes to measure (default 8 32)")
    parser.add_argument("--numpy-threads", type=int, default=None,
                        help="threads numpy's BLAS may use (default: its own choice)")
    args = parser.parse_args()

    if args.numpy_threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            parser.error("--numpy-threads needs threadpoolctl; install it with "
                         "`pip install threadpoolctl`")
        threadpool_limits(args.numpy_threads)

    info = kernel_info()
    blas_threads = "default" if args.numpy_threads is None else args.numpy_threads
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; rbe_edge kernels: "
          f"{info['gemm_t_f32']}, {info['dense_grad']}, {info['update_upper']}, "
          f"{info['gemm_f32']}; numpy {np.__version__}, BLAS threads {blas_threads}")
    print(f"{'layer':>12} {'M':>3} {'operation':>13} {'ours ms':>9} {'numpy ms':>9} "
          f"{'ours/numpy':>10}")
    rng = np.random.default_rng(0)
    totals = {}
    for batch in args.batches:
        for rows, cols in LAYERS:
            result = measure_layer(rows, cols, batch, args.min_time, rng)
            for name, (ours, reference) in result.items():
                print(f"{cols:>5} -> {rows:<4} {batch:3d} {name:>13} {ours * 1e3:9.2f} "
                      f"{reference * 1e3:9.2f} {ours / reference:10.2f}")
                if name == "step":
                    ours_total, numpy_total = totals.get(batch, (0.0, 0.0))
                    totals[batch] = (ours_total + ours, numpy_total + reference)
    for batch, (ours, reference) in totals.items():
        print(f"head step, both layers, batch {batch}: ours {ours * 1e3:.2f} ms, numpy + Adam "
              f"{reference * 1e3:.2f} ms, ratio {ours / reference:.2f}")


if __name__ == "__main__":
    main()
