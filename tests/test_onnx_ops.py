"""rbe_edge.BitplaneDecode: its standard-op function equals the C decode bit for bit."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import rbe_edge
from rbe_edge import onnx_ops

CASES = [
    # shape, layout, group size, bits
    ((70, 33), "kn", None, 8),
    ((64, 128), "kn", 32, 4),
    ((6, 3, 3, 3), "nk", 9, 8),
    ((5, 7), "nk", None, 2),
    ((130,), "vector", 65, 11),
    ((3, 200), "nk", 8, 16),
]


def decode_model(packed, planes, opset=17):
    names = ["planes", "scale", "zero"]
    node = onnx_ops.make_node(packed, planes, names, "weight", "decode")
    graph = helper.make_graph(
        [node], "decode", [],
        [helper.make_tensor_value_info("weight", TensorProto.FLOAT, list(packed.shape))],
        initializer=onnx_ops.make_initializers(packed, planes, names))
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", opset), helper.make_opsetid(onnx_ops.DOMAIN, 1)])
    model.ir_version = 8
    model.functions.append(onnx_ops.make_function(opset))
    return model


def run(model):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {})[0]


@pytest.mark.parametrize("shape,layout,group,bits", CASES)
def test_decode_matches_c_at_every_plane_count(shape, layout, group, bits):
    rng = np.random.default_rng(bits)
    weight = (rng.standard_normal(shape) * 3).astype(np.float32)
    packed = rbe_edge.quantize(weight, bits, group, layout=layout)
    for planes in range(1, bits + 1):
        got = run(decode_model(packed, planes))
        expected = np.ascontiguousarray(packed.decode(planes))
        assert got.shape == expected.shape
        mismatch = np.count_nonzero(got.view(np.uint32) != expected.view(np.uint32))
        assert mismatch == 0, f"{mismatch} values differ from the C decode at P={planes}"


@pytest.mark.parametrize("opset", [12, 13, 17, 21])
def test_function_passes_full_check(opset):
    packed = rbe_edge.quantize(np.linspace(-1, 1, 96, dtype=np.float32).reshape(8, 12), 8)
    model = decode_model(packed, 5, opset)
    onnx.checker.check_model(model, full_check=True)
    assert np.array_equal(run(model), packed.decode(5))


def test_old_opset_rejected():
    with pytest.raises(ValueError, match="opset 12 or newer"):
        onnx_ops.make_function(11)


def test_node_reads_as_one_op():
    packed = rbe_edge.quantize(np.ones((4, 64), np.float32), 8, layout="nk")
    node = onnx_ops.make_node(packed, 3, ["p", "s", "z"], "w", "w.rbe_decode")
    assert (node.domain, node.op_type) == ("rbe_edge", "BitplaneDecode")
    assert onnx_ops.attribute(node, "planes") == 3
    onnx_ops.set_planes(node, 7)
    assert onnx_ops.attribute(node, "planes") == 7
