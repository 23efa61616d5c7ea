"""Bundles for the adaptation tests: small MLPs packed with 8 bits and every plane."""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bundle_models import mlp
from rbe_edge import pack_model


def _weight(rng, shape, name):
    return numpy_helper.from_array(
        (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name)


def batched_mlp(seed=0):
    """x[N,16] -> MatMul 16x32 -> Relu -> MatMul 32x24 -> Relu -> MatMul 24x8 -> y[N,8]."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (16, 32), "w1"), _weight(rng, (32, 24), "w2"),
             _weight(rng, (24, 8), "w3"),
             numpy_helper.from_array(np.zeros(24, np.float32), "b2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
        helper.make_node("Add", ["h2", "b2"], ["h2b"]),
        helper.make_node("Relu", ["h2b"], ["a2"]),
        helper.make_node("MatMul", ["a2", "w3"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)


def two_input_mlp(seed=0):
    """a[N,16] + b[N,16] -> MatMul 16x32 -> Relu -> MatMul 32x8 -> y[N,8], and z = 2 * y."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (16, 32), "w1"), _weight(rng, (32, 8), "w2"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    nodes = [
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("MatMul", ["s", "w1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["y"]),
        helper.make_node("Mul", ["y", "two"], ["z"]),
    ]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 16]) for n in ("a", "b")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 8]) for n in ("y", "z")]
    return _model(nodes, inputs, outputs, inits)


def _model(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "adapt_test", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def make_bundle(folder: Path, model, name="bundle", **options) -> Path:
    """Pack `model` with 8 bits, no search, tensors of 128 values or more."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{name}.onnx"
    onnx.save(model, source)
    settings = {"bits": 8, "search": False, "min_elements": 128, **options}
    pack_model(source, folder / name, **settings).close()
    return folder / name


def fixed_batch_mlp():
    """bundle_models.mlp: x[1,64], outputs y[1,40], one example per run."""
    return mlp()


def snapshot(bundle: Path) -> dict:
    """Bytes of every file of a bundle, to show that a failed call changed nothing."""
    return {p.name: p.read_bytes() for p in sorted(bundle.iterdir()) if p.is_file()}
