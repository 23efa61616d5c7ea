#!/usr/bin/env python3
"""Packing benchmark: rbe_edge.pack_model beside onnxruntime's quantize_dynamic.

Builds a transformer-style model of about 21 M float32 parameters (3 blocks,
width 768, MLP width 3072, random weights), then measures in one run, on the
same model and the same inputs:
  - pack_model: packing time, bundle size, output error at P = 8, 6, 4;
  - quantize_dynamic (8-bit weights): time, model size, output error.
Output error is the relative L2 error against the float model, max over 4
random inputs.

Usage: tools/bench_pack.py [--blocks N] [--dim D] [--budget FRACTION]
"""
import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rbe_edge.model_io import make_samples, make_session, relative_error, run_outputs
from rbe_edge.pack import pack_model


def build_model(blocks: int, dim: int, hidden: int, seq: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name, shape):
        values = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[0])
        inits.append(numpy_helper.from_array(values.astype(np.float32), name))
        return name

    inits.append(numpy_helper.from_array(np.ones(dim, np.float32), "ln.g"))
    inits.append(numpy_helper.from_array(np.zeros(dim, np.float32), "ln.b"))
    inits.append(numpy_helper.from_array(np.array(1 / np.sqrt(dim), np.float32), "inv_sqrt_d"))
    x = "x"
    for b in range(blocks):
        p = f"b{b}."
        nodes += [
            helper.make_node("LayerNormalization", [x, "ln.g", "ln.b"], [p + "n"], axis=-1),
            helper.make_node("MatMul", [p + "n", weight(p + "wq", (dim, dim))], [p + "q"]),
            helper.make_node("MatMul", [p + "n", weight(p + "wk", (dim, dim))], [p + "k"]),
            helper.make_node("MatMul", [p + "n", weight(p + "wv", (dim, dim))], [p + "v"]),
            helper.make_node("Transpose", [p + "k"], [p + "kt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", [p + "q", p + "kt"], [p + "s"]),
            helper.make_node("Mul", [p + "s", "inv_sqrt_d"], [p + "s2"]),
            helper.make_node("Softmax", [p + "s2"], [p + "a"], axis=-1),
            helper.make_node("MatMul", [p + "a", p + "v"], [p + "c"]),
            helper.make_node("MatMul", [p + "c", weight(p + "wo", (dim, dim))], [p + "o"]),
            helper.make_node("Add", [x, p + "o"], [p + "h"]),
            helper.make_node("LayerNormalization", [p + "h", "ln.g", "ln.b"], [p + "n2"], axis=-1),
            helper.make_node("MatMul", [p + "n2", weight(p + "up", (dim, hidden))], [p + "u"]),
            helper.make_node("Relu", [p + "u"], [p + "r"]),
            helper.make_node("MatMul", [p + "r", weight(p + "down", (hidden, dim))], [p + "d"]),
            helper.make_node("Add", [p + "h", p + "d"], [p + "y"]),
        ]
        x = p + "y"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    shape = [1, seq, dim]
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=3, help="transformer blocks (default: 3)")
    parser.add_argument("--dim", type=int, default=768, help="model width (default: 768)")
    parser.add_argument("--budget", type=float, default=0.005,
                        help="pack_model error budget, a fraction (default: 0.005)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = build_model(args.blocks, args.dim, 4 * args.dim, seq=16)
    parameters = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    work = Path(tempfile.mkdtemp(prefix="bench_pack."))
    model_path = work / "model.onnx"
    onnx.save(model, str(model_path))
    feeds = make_samples(model, 4, seed=42)
    reference = run_outputs(make_session(model, "float"), feeds, "float")
    print(f"model: {parameters / 1e6:.1f} M parameters, {model_path.stat().st_size / 1e6:.1f} MB "
          f"float32; outputs compared on 4 random inputs [1, 16, {args.dim}]")

    rows = []
    for label, options in (("pack_model (default search)", {"max_error": args.budget}),
                           ("pack_model 8 bits, per row", {"bits": 8, "search": False})):
        start = time.perf_counter()
        bundle = pack_model(model_path, work / f"bundle{len(rows)}", **options)
        seconds = time.perf_counter() - start
        errors = {p: relative_error(run_outputs(bundle.session(p), feeds, label), reference)
                  for p in (bundle.bits, 8, 6, 4) if p <= bundle.bits}
        size = folder_size(bundle.path)
        rbe = (bundle.path / "model.rbe").stat().st_size
        error_text = ", ".join(f"P={p}: {e:.4f}" for p, e in sorted(errors.items(), reverse=True))
        rows.append((f"{label} -> {bundle.bits} bits, group {bundle.manifest['group_size'] or 'row'}",
                     seconds, size, f"model.rbe {rbe / 1e6:.1f} MB; {error_text}"))
        bundle.close()

    quantized = work / "quantize_dynamic.onnx"
    start = time.perf_counter()
    quantize_dynamic(str(model_path), str(quantized), weight_type=QuantType.QInt8)
    seconds = time.perf_counter() - start
    error = relative_error(run_outputs(make_session(onnx.load(str(quantized)), "qd"), feeds, "qd"),
                           reference)
    rows.append(("onnxruntime quantize_dynamic QInt8", seconds, quantized.stat().st_size,
                 f"output error {error:.4f}"))

    original = model_path.stat().st_size
    print(f"{'method':52} {'time s':>7} {'size MB':>8} {'size %':>7}  errors")
    for label, seconds, size, detail in rows:
        print(f"{label:52} {seconds:7.2f} {size / 1e6:8.1f} {size / original:7.1%}  {detail}")


if __name__ == "__main__":
    main()
