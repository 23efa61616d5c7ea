"""Small ONNX models built with onnx.helper for the packing, bundle and CLI tests."""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _weight(rng, shape, name, scale=None, dtype=np.float32):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
    scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(dtype), name)


def _model(nodes, inputs, outputs, initializers, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp(seed=0, dtype=np.float32):
    """x[1,64] -> MatMul 64x128 -> Relu -> Gemm(transB) 128->32 -> Relu -> MatMul 32x10."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [
        _weight(rng, (64, 128), "w1", dtype=dtype),
        numpy_helper.from_array((rng.standard_normal(128) * 0.1).astype(dtype), "b1"),
        _weight(rng, (32, 128), "w2", 1 / np.sqrt(128), dtype=dtype),
        numpy_helper.from_array((rng.standard_normal(32) * 0.1).astype(dtype), "b2"),
        _weight(rng, (32, 40), "w3", dtype=dtype),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], transB=1),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("MatMul", ["a2", "w3"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", elem, [1, 64])],
                  [helper.make_tensor_value_info("y", elem, [1, 40])], inits, "mlp")


def cnn(seed=0):
    """x[1,3,16,16] -> Conv 3->16 3x3 -> Relu -> Conv 16->32 3x3 -> Relu -> Flatten -> Gemm -> y[1,10]."""
    rng = np.random.default_rng(seed)
    inits = [
        _weight(rng, (16, 3, 3, 3), "conv1.w"),
        numpy_helper.from_array(np.zeros(16, np.float32), "conv1.b"),
        _weight(rng, (32, 16, 3, 3), "conv2.w"),
        _weight(rng, (32 * 4 * 4, 10), "fc.w", 1 / np.sqrt(512)),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc.b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits, "cnn")


def transformer_block(seed=0, dim=64, seq=8, hidden=256):
    """One pre-norm attention + MLP block on x[1, seq, dim], MatMul weights throughout."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (dim, dim), n) for n in ("wq", "wk", "wv", "wo")]
    inits += [_weight(rng, (dim, hidden), "w_up"), _weight(rng, (hidden, dim), "w_down")]
    inits += [
        numpy_helper.from_array(np.ones(dim, np.float32), "ln.g"),
        numpy_helper.from_array(np.zeros(dim, np.float32), "ln.b"),
        numpy_helper.from_array(np.array(1 / np.sqrt(dim), np.float32), "inv_sqrt_d"),
    ]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln.g", "ln.b"], ["n"], axis=-1),
        helper.make_node("MatMul", ["n", "wq"], ["q"]),
        helper.make_node("MatMul", ["n", "wk"], ["k"]),
        helper.make_node("MatMul", ["n", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "inv_sqrt_d"], ["s2"]),
        helper.make_node("Softmax", ["s2"], ["a"], axis=-1),
        helper.make_node("MatMul", ["a", "v"], ["ctx"]),
        helper.make_node("MatMul", ["ctx", "wo"], ["o"]),
        helper.make_node("Add", ["x", "o"], ["h"]),
        helper.make_node("LayerNormalization", ["h", "ln.g", "ln.b"], ["n2"], axis=-1),
        helper.make_node("MatMul", ["n2", "w_up"], ["u"]),
        helper.make_node("Relu", ["u"], ["ur"]),
        helper.make_node("MatMul", ["ur", "w_down"], ["d"]),
        helper.make_node("Add", ["h", "d"], ["y"]),
    ]
    shape = [1, seq, dim]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits,
                  "transformer_block")


def save(model, folder, name="model.onnx") -> Path:
    path = Path(folder) / name
    onnx.save(model, str(path))
    return path
