#!/usr/bin/env python3
"""Benchmark of the bit-serial product against numpy and onnxruntime's MatMulNBits.

Prints one table measured in one run: y = x @ W for x of M rows (1, 8, 32),
one and two threads, (N, K) in (768, 768), (3072, 768), (4096, 4096) and
(8192, 8192), and P in 2, 3, 4, 6, 8 planes of 8-bit codes (one scale per
row). Beside each: numpy float32 `x @ W` and onnxruntime's
com.microsoft.MatMulNBits with 4-bit weights (block 32), both limited to
the same thread count, plus 2- and 8-bit MatMulNBits once per shape. The
last lines print the three target ratios at (8192, 8192), M = 1, one thread,
and how much a batch of 8 or 32 saves against as many products with M = 1.

Each thread count runs in its own worker process, because OpenBLAS reads
its thread count when numpy is imported.

Usage: python tools/bench_gemm.py [--shapes 768x768 ...] [--min-time 0.3] [--no-slow-nbits]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

SHAPES = ["768x768", "3072x768", "4096x4096", "8192x8192"]
PLANES = [2, 3, 4, 6, 8]
BATCHES = [1, 8, 32]
THREADS = [1, 2]
BLOCK = 32


def best_seconds(run, min_time):
    run()
    best, total, repeats = float("inf"), 0.0, 0
    while total < min_time or repeats < 3:
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        best, total, repeats = min(best, elapsed), total + elapsed, repeats + 1
    return best


def nbits_session(n, k, bits, threads, rng):
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    blocks = (k + BLOCK - 1) // BLOCK
    weights = rng.integers(0, 256, size=(n, blocks, BLOCK * bits // 8), dtype=np.uint8)
    scales = rng.uniform(1e-3, 1e-2, size=n * blocks).astype(np.float32)
    node = helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
                            K=k, N=n, bits=bits, block_size=BLOCK)
    graph = helper.make_graph(
        [node], "nbits",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(weights, "B"), numpy_helper.from_array(scales, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def packed_weights(n, k, rng):
    """A random 8-bit [K, N] tensor; random codes avoid quantizing a 256 MB matrix."""
    import numpy as np
    from rbe_edge.packed_tensor import PackedTensor
    from rbe_edge.quantize import encode_codes

    codes = rng.integers(0, 256, size=(n, k), dtype=np.uint16)
    return PackedTensor(name="bench", shape=(k, n), layout="kn", bits=8, group_size=k,
                        planes=encode_codes(codes, 8, k),
                        scale=rng.uniform(1e-3, 1e-2, size=(n, 1)).astype(np.float32),
                        zero=rng.integers(0, 256, size=(n, 1)).astype(np.float32))


def worker(threads, shapes, min_time, slow_nbits):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for shape in shapes:
        n, k = (int(v) for v in shape.split("x"))
        packed = packed_weights(n, k, rng)
        dense = np.ascontiguousarray(packed.decode(8))
        sessions = {4: nbits_session(n, k, 4, threads, rng)}
        if slow_nbits:
            sessions.update({b: nbits_session(n, k, b, threads, rng) for b in (2, 8)})

        for batch in BATCHES:
            x = rng.standard_normal((batch, k)).astype(np.float32)
            numpy_s = best_seconds(lambda: x @ dense, min_time)
            nbits_s = {b: best_seconds(lambda s=s: s.run(None, {"A": x}), min_time)
                       for b, s in sessions.items()}
            for planes in PLANES:
                ours = best_seconds(lambda: packed.matmul(x, planes, threads=threads), min_time)
                rows.append({"n": n, "k": k, "m": batch, "threads": threads, "planes": planes,
                             "ours": ours, "numpy": numpy_s, "nbits": nbits_s})
        del dense, packed
    print(json.dumps(rows))


def print_table(rows):
    print(f"{'N':>5} {'K':>5} {'M':>2} {'thr':>3} {'P':>2} {'ours ms':>9} {'numpy ms':>9} "
          f"{'nbits4 ms':>9} {'ours/numpy':>10} {'ours/nbits4':>11} {'nbits2 ms':>9} {'nbits8 ms':>9}")
    for r in rows:
        nb = {int(b): v for b, v in r["nbits"].items()}
        slow = "".join(f" {nb[b] * 1e3:9.3f}" if b in nb else f" {'-':>9}" for b in (2, 8))
        print(f"{r['n']:5d} {r['k']:5d} {r['m']:2d} {r['threads']:3d} {r['planes']:2d} "
              f"{r['ours'] * 1e3:9.3f} {r['numpy'] * 1e3:9.3f} {nb[4] * 1e3:9.3f} "
              f"{r['ours'] / r['numpy']:10.2f} {r['ours'] / nb[4]:11.2f}{slow}")


def print_targets(rows):
    target = {r["planes"]: r for r in rows
              if (r["n"], r["k"], r["m"], r["threads"]) == (8192, 8192, 1, 1)}
    if not {2, 4, 8} <= set(target):
        print("targets: (8192, 8192) M=1 one thread was not measured")
        return
    nbits4 = {int(b): v for b, v in target[4]["nbits"].items()}[4]
    print(f"target P=4 / MatMulNBits 4-bit: {target[4]['ours'] / nbits4:.2f} (at most 1.0)")
    print(f"target P=8 / numpy float32:     {target[8]['ours'] / target[8]['numpy']:.2f} (at most 0.6)")
    print(f"target P=2 / P=4:               {target[2]['ours'] / target[4]['ours']:.2f} (at most 0.6)")

    single = {r["planes"]: r["ours"] for r in rows
              if (r["n"], r["k"], r["m"], r["threads"]) == (8192, 8192, 1, 1)}
    for batch in (8, 32):
        for planes in (4, 8):
            batched = [r["ours"] for r in rows if (r["n"], r["k"], r["m"], r["threads"],
                                                   r["planes"]) == (8192, 8192, batch, 1, planes)]
            if batched and planes in single:
                print(f"batch M={batch:<2d} P={planes} / {batch} x (M=1):    "
                      f"{batched[0] / (batch * single[planes]):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=SHAPES,
                        help="NxK shapes of W^T to measure (default: all four)")
    parser.add_argument("--min-time", type=float, default=0.3,
                        help="minimum seconds of repeats per measurement (default: 0.3)")
    parser.add_argument("--no-slow-nbits", action="store_true",
                        help="skip 2- and 8-bit MatMulNBits, which take seconds at 8192x8192")
    parser.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker_threads:
        worker(args.worker_threads, args.shapes, args.min_time, not args.no_slow_nbits)
        return

    import rbe_edge
    info = rbe_edge.kernel_info()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; rbe_edge kernel {info['gemm_f32']}")
    rows = []
    for threads in THREADS:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        command = [sys.executable, __file__, "--worker-threads", str(threads),
                   "--min-time", str(args.min_time), "--shapes", *args.shapes]
        if args.no_slow_nbits:
            command.append("--no-slow-nbits")
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        rows.extend(json.loads(output.stdout.strip().splitlines()[-1]))
    print_table(rows)
    print_targets(rows)


if __name__ == "__main__":
    main()
