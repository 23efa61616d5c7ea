"""Models for the native engine tests: chains of the layer kinds it runs, and one it cannot."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SQRT2 = np.float32(np.sqrt(2.0))


def _weight(rng, shape, name):
    return numpy_helper.from_array(
        (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32), name)


def _vector(rng, size, name, center=0.0):
    return numpy_helper.from_array(
        (center + 0.1 * rng.standard_normal(size)).astype(np.float32), name)


def _model(nodes, width, outputs, inits, opset=17):
    graph = helper.make_graph(
        nodes, "native_test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outputs])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _erf_gelu(x, out, prefix):
    """The node sequence that torch.onnx exports for GELU."""
    return [
        helper.make_node("Div", [x, "sqrt2"], [f"{prefix}_div"]),
        helper.make_node("Erf", [f"{prefix}_div"], [f"{prefix}_erf"]),
        helper.make_node("Add", [f"{prefix}_erf", "one"], [f"{prefix}_add"]),
        helper.make_node("Mul", [x, f"{prefix}_add"], [f"{prefix}_mul"]),
        helper.make_node("Mul", [f"{prefix}_mul", "half"], [out]),
    ]


def ffn_head(seed=0, width=32, hidden=160, classes=8):
    """x -> MatMul + bias -> GELU (erf nodes) -> MatMul + bias -> LayerNorm -> Tanh -> Gemm -> y.

    The hidden bias has shape [1, hidden], so with 128 or more values it is packed too.
    """
    rng = np.random.default_rng(seed)
    inits = [
        _weight(rng, (width, hidden), "w_up"), _vector(rng, (1, hidden), "b_up"),
        _weight(rng, (hidden, width), "w_down"), _vector(rng, width, "b_down"),
        _vector(rng, width, "ln_gamma", 1.0), _vector(rng, width, "ln_beta"),
        _weight(rng, (classes, width), "w_out"), _vector(rng, classes, "b_out"),
        numpy_helper.from_array(SQRT2, "sqrt2"),
        numpy_helper.from_array(np.float32(1.0), "one"),
        numpy_helper.from_array(np.float32(0.5), "half"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_up"], ["up"], name="up"),
        helper.make_node("Add", ["up", "b_up"], ["up_b"]),
        *_erf_gelu("up_b", "act", "gelu"),
        helper.make_node("MatMul", ["act", "w_down"], ["down"], name="down"),
        helper.make_node("Add", ["b_down", "down"], ["down_b"]),
        helper.make_node("LayerNormalization", ["down_b", "ln_gamma", "ln_beta"], ["ln"],
                         axis=-1, epsilon=1e-5, name="norm"),
        helper.make_node("Tanh", ["ln"], ["squashed"]),
        helper.make_node("Gemm", ["squashed", "w_out", "b_out"], ["y"], transB=1, name="out"),
    ]
    return _model(nodes, width, classes, inits)


def gelu_op_head(seed=0, approximate="tanh", width=24, hidden=48, classes=6):
    """x -> MatMul -> Gelu (opset 20 op) -> MatMul -> y."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (width, hidden), "w1"), _weight(rng, (hidden, classes), "w2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Gelu", ["h"], ["a"], approximate=approximate),
        helper.make_node("MatMul", ["a", "w2"], ["y"]),
    ]
    return _model(nodes, width, classes, inits, opset=20)


def residual_head(seed=0, width=32, classes=8):
    """x -> MatMul -> Relu -> Add(x) -> MatMul -> y: a residual connection."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (width, width), "w1"), _weight(rng, (width, classes), "w2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"]),
        helper.make_node("Add", ["a", "x"], ["r"], name="residual"),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    return _model(nodes, width, classes, inits)


def single_layer_head(node_kind, seed=0, width=32, classes=8):
    """x -> MatMul w1 -> Relu -> <node_kind> -> y, for the compiler's rejection tests.

    The last layer is trainable w2 (32 x 8) except where the case replaces it.
    """
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (width, width), "w1"), _weight(rng, (width, classes), "w2"),
             _weight(rng, (classes, width), "w2t"), _vector(rng, width, "gamma", 1.0),
             _weight(rng, (2, classes), "w_small"), _vector(rng, classes, "bias")]
    head = {
        "gemm_alpha": [helper.make_node("Gemm", ["a", "w2t"], ["y"], transB=1, alpha=0.5,
                                        name="scaled_gemm")],
        "gemm_trans_a": [helper.make_node("Transpose", ["a"], ["at"], name="flip"),
                         helper.make_node("Gemm", ["at", "w2t"], ["y"], transA=1, transB=1,
                                          name="gemm_ta")],
        "layer_norm_axis0": [helper.make_node("LayerNormalization", ["a", "gamma"], ["n"],
                                              axis=0, name="norm0"),
                             helper.make_node("MatMul", ["n", "w2"], ["y"])],
        "softmax": [helper.make_node("MatMul", ["a", "w2"], ["z"]),
                    helper.make_node("Softmax", ["z"], ["y"], name="probs")],
    }[node_kind]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["a"])] + head
    used = {name for node in nodes for name in node.input}
    return _model(nodes, width, classes, [i for i in inits if i.name in used])


def gelu_mul_dropout_head(seed=0, width=24, hidden=48, classes=6):
    """x -> MatMul -> GELU with Mul by 1/sqrt(2) -> Dropout (inference) -> MatMul -> y."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, (width, hidden), "w1"), _weight(rng, (hidden, classes), "w2"),
             numpy_helper.from_array(np.float32(1 / np.sqrt(2.0)), "inv_sqrt2"),
             numpy_helper.from_array(np.float32(1.0), "one"),
             numpy_helper.from_array(np.float32(0.5), "half"),
             numpy_helper.from_array(np.float32(0.1), "ratio")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Mul", ["h", "inv_sqrt2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["shifted"]),
        helper.make_node("Mul", ["h", "half"], ["halved"]),
        helper.make_node("Mul", ["halved", "shifted"], ["a"]),
        helper.make_node("Dropout", ["a", "ratio"], ["d"], name="drop"),
        helper.make_node("MatMul", ["d", "w2"], ["y"]),
    ]
    return _model(nodes, width, classes, inits)
