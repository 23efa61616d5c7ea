"""One finite-difference check per gradient rule, on real onnxruntime sessions.

The checks run in float64 wherever onnxruntime's CPU kernels take it.
LeakyRelu, Erf, Gelu, Conv, AveragePool and GlobalAveragePool run only in
float32, with the looser tolerance stated in autodiff_check.TOLERANCES.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from autodiff_check import check_gradients, make_model, run
from rbe_edge.autodiff import RULES, build_gradient_graph


def random(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape).astype(dtype)


def away_from(values, point=0.0, margin=0.05):
    """Move values within `margin` of a kink to `point +- margin`, to keep differences one-sided."""
    close = np.abs(values - point) < margin
    return np.where(close, point + np.copysign(margin, values - point), values).astype(values.dtype)


def node(op_type, inputs, outputs=("y",), **attrs):
    return helper.make_node(op_type, list(inputs), list(outputs), **attrs)


# MatMul and Gemm.


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (2, 4, 5)),
        ((2, 3, 4), (4,)),
        ((4,), (4,)),
    ],
)
@pytest.mark.parametrize("dynamic", [False, True, ["a"]])
def test_matmul(a_shape, b_shape, dynamic):
    inputs = {"a": random(*a_shape), "b": random(*b_shape, seed=1)}
    check_gradients([node("MatMul", ["a", "b"])], inputs, dynamic=dynamic)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (3, 5), (5,), (1, 5), (3, 1), ()])
@pytest.mark.parametrize("dynamic", [False, ["a"]])
def test_gemm(trans_a, trans_b, c_shape, dynamic):
    a = random(4, 3) if trans_a else random(3, 4)
    b = random(5, 4, seed=1) if trans_b else random(4, 5, seed=1)
    inputs = {"a": a, "b": b}
    if c_shape is not None:
        inputs["c"] = random(*c_shape, seed=2)
    gemm = node("Gemm", list(inputs), transA=trans_a, transB=trans_b, alpha=0.7, beta=-1.3)
    check_gradients([gemm], inputs, dynamic=dynamic)


# Broadcasting arithmetic.

BROADCAST_SHAPES = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),
    ((1, 3, 1), (2, 1, 5)),
]


@pytest.mark.parametrize("op_type", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("a_shape, b_shape", BROADCAST_SHAPES)
@pytest.mark.parametrize("dynamic", [False, True, ["a"]])
def test_arithmetic_broadcasting(op_type, a_shape, b_shape, dynamic):
    b = random(*b_shape, seed=1)
    if op_type == "Div":
        b = away_from(b, 0.0, 0.5)
    inputs = {"a": random(*a_shape), "b": b}
    check_gradients([node(op_type, ["a", "b"])], inputs, dynamic=dynamic)


def test_neg():
    check_gradients([node("Neg", ["x"])], {"x": random(2, 3)})


def test_identity():
    check_gradients([node("Identity", ["x"])], {"x": random(2, 3)})


def test_cast_between_float_types():
    check_gradients([node("Cast", ["x"], to=1)], {"x": random(2, 3)})


def test_cast_like():
    constants = {"like": np.zeros((), np.float32)}
    check_gradients([node("CastLike", ["x", "like"])], {"x": random(2, 3)}, constants=constants)


@pytest.mark.parametrize("a_shape, b_shape", [((2, 3), (2, 3)), ((2, 3), (3,)), ((3,), ())])
def test_pow(a_shape, b_shape):
    inputs = {"a": np.abs(random(*a_shape)) + 0.5, "b": random(*b_shape, seed=1)}
    check_gradients([node("Pow", ["a", "b"])], inputs)


def test_pow_integer_exponent():
    constants = {"b": np.array(3, np.int64)}
    check_gradients([node("Pow", ["a", "b"])], {"a": random(2, 3)}, constants=constants)


@pytest.mark.parametrize("op_type", ["Sqrt", "Reciprocal", "Log"])
def test_positive_domain_op(op_type):
    check_gradients([node(op_type, ["x"])], {"x": np.abs(random(3, 4)) + 0.5})


def test_exp():
    check_gradients([node("Exp", ["x"])], {"x": random(3, 4)})


def test_abs():
    check_gradients([node("Abs", ["x"])], {"x": away_from(random(3, 4))})


@pytest.mark.parametrize("op_type", ["Max", "Min"])
@pytest.mark.parametrize("shapes", [[(2, 3)], [(2, 3), (2, 3)], [(2, 3), (3,), ()]])
def test_max_min(op_type, shapes):
    inputs = {f"x{i}": random(*shape, seed=10 * i) for i, shape in enumerate(shapes)}
    check_gradients([node(op_type, list(inputs))], inputs)


def test_max_ties_share_gradient():
    """Where both inputs hold the max, each gets half of dY, so the sum is dY."""
    inputs = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 5.0, 3.0])}
    model = make_model([node("Max", ["a", "b"])], inputs, ["y"])
    gradient_model = build_gradient_graph(model, "y", ["a", "b"])
    _, (_, grad_a, grad_b) = run(gradient_model, inputs)
    np.testing.assert_allclose(grad_a, [0.5, 0.0, 0.5])
    np.testing.assert_allclose(grad_b, [0.5, 1.0, 0.5])


@pytest.mark.parametrize("a_shape, b_shape", [((2, 3), (2, 3)), ((2, 3), ()), ((3,), (2, 1))])
def test_where(a_shape, b_shape):
    constants = {"condition": np.array([True, False, True])}
    inputs = {"a": random(*a_shape), "b": random(*b_shape, seed=1)}
    check_gradients([node("Where", ["condition", "a", "b"])], inputs, constants=constants)


def test_tensor_used_twice_sums_gradients():
    inputs = {"x": random(3, 4)}
    nodes = [node("Mul", ["x", "x"], ["sq"]), node("Add", ["sq", "x"], ["y"])]
    check_gradients(nodes, inputs)


# Activations and Clip.


@pytest.mark.parametrize("op_type", ["Relu", "Sigmoid", "Tanh"])
def test_activation_float64(op_type):
    check_gradients([node(op_type, ["x"])], {"x": away_from(random(3, 5))})


@pytest.mark.parametrize("alpha", [None, 0.2])
def test_leaky_relu(alpha):
    attrs = {} if alpha is None else {"alpha": alpha}
    x = away_from(random(3, 5, dtype=np.float32))
    check_gradients([node("LeakyRelu", ["x"], **attrs)], {"x": x})


def test_erf():
    check_gradients([node("Erf", ["x"])], {"x": random(3, 5, dtype=np.float32)})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("opset", [20, 21])
def test_gelu(approximate, opset):
    x = random(3, 5, dtype=np.float32) * 2
    check_gradients([node("Gelu", ["x"], approximate=approximate)], {"x": x}, opset=opset)


def test_gelu_erf_subgraph():
    """The exported form x * 0.5 * (1 + erf(x / sqrt(2))) differentiates through its parts."""
    x = random(3, 5, dtype=np.float32) * 2
    constants = {
        "sqrt2": np.array(np.sqrt(2.0), np.float32),
        "one": np.array(1.0, np.float32),
        "half": np.array(0.5, np.float32),
    }
    nodes = [
        node("Div", ["x", "sqrt2"], ["scaled"]),
        node("Erf", ["scaled"], ["erf"]),
        node("Add", ["erf", "one"], ["shifted"]),
        node("Mul", ["x", "shifted"], ["product"]),
        node("Mul", ["product", "half"], ["y"]),
    ]
    check_gradients(nodes, {"x": x}, constants=constants)


@pytest.mark.parametrize("bounds", ["none", "min", "max", "both"])
def test_clip(bounds):
    x = random(4, 5) * 2
    inputs = {"x": away_from(away_from(x, -0.5), 0.8)}
    names = ["x", "", ""]
    if bounds in ("min", "both"):
        inputs["low"] = np.array(-0.5)
        names[1] = "low"
    if bounds in ("max", "both"):
        inputs["high"] = np.array(0.8)
        names[2] = "high"
    while names[-1] == "":
        names.pop()
    check_gradients([node("Clip", names)], inputs)


# Softmax family and LayerNormalization.


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("opset", [17, 21])
def test_softmax(op_type, axis, opset):
    attrs = {} if axis is None else {"axis": axis}
    check_gradients([node(op_type, ["x"], **attrs)], {"x": random(2, 3, 4)}, opset=opset)


@pytest.mark.parametrize("axis", [-1, 1, -2])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("opset", [17, 18])
def test_layer_normalization(axis, with_bias, opset):
    x = random(2, 3, 4)
    normalized = x.shape[axis:] if axis > 0 else x.shape[len(x.shape) + axis :]
    inputs = {"x": x, "scale": random(*normalized, seed=1)}
    if with_bias:
        inputs["bias"] = random(*normalized, seed=2)
    layer_norm = node("LayerNormalization", list(inputs), axis=axis, epsilon=1e-3)
    check_gradients([layer_norm], inputs, opset=opset)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5), (2, 3, 5)])
def test_batch_normalization(shape):
    channels = shape[1]
    inputs = {
        "x": random(*shape),
        "scale": random(channels, seed=1),
        "bias": random(channels, seed=2),
    }
    constants = {
        "mean": random(channels, seed=3),
        "variance": np.abs(random(channels, seed=4)) + 0.5,
    }
    batch_norm = node(
        "BatchNormalization", ["x", "scale", "bias", "mean", "variance"], epsilon=1e-3
    )
    check_gradients([batch_norm], inputs, constants=constants)


# Ops that move elements.


def test_dropout_inference_mode():
    constants = {"ratio": np.array(0.3, np.float32)}
    check_gradients([node("Dropout", ["x", "ratio"])], {"x": random(2, 3)}, constants=constants)


@pytest.mark.parametrize(
    "data_shape, indices, axis",
    [
        ((5, 3), [[0, 4], [4, 1]], 0),
        ((5, 3), [2, -1, 2], 0),
        ((2, 5, 3), [1, 0, 1], 1),
        ((2, 3, 4), [[3, 0]], -1),
        ((2, 4, 3), 2, 1),
    ],
)
def test_gather(data_shape, indices, axis):
    constants = {"indices": np.array(indices, np.int64)}
    inputs = {"x": random(*data_shape)}
    check_gradients([node("Gather", ["x", "indices"], axis=axis)], inputs, constants=constants)


@pytest.mark.parametrize("target", [[6, 4], [0, -1], [2, 2, 2, 3]])
@pytest.mark.parametrize("dynamic", [False, True])
def test_reshape(target, dynamic):
    constants = {"shape": np.array(target, np.int64)}
    check_gradients(
        [node("Reshape", ["x", "shape"])],
        {"x": random(2, 3, 4)},
        constants=constants,
        dynamic=dynamic,
    )


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_flatten(axis):
    check_gradients([node("Flatten", ["x"], axis=axis)], {"x": random(2, 3, 4)})


@pytest.mark.parametrize("perm", [None, [1, 0, 2], [2, 0, 1]])
def test_transpose(perm):
    attrs = {} if perm is None else {"perm": perm}
    check_gradients([node("Transpose", ["x"], **attrs)], {"x": random(2, 3, 4)})


@pytest.mark.parametrize("axes", [None, [1], [-1, 1]])
def test_squeeze(axes):
    inputs = {"x": random(2, 1, 3, 1)}
    if axes is None:
        check_gradients([node("Squeeze", ["x"])], inputs)
        return
    constants = {"axes": np.array(axes, np.int64)}
    check_gradients([node("Squeeze", ["x", "axes"])], inputs, constants=constants)


@pytest.mark.parametrize("axes", [[0], [1, -1], [3, 0]])
@pytest.mark.parametrize("opset", [17, 21])
def test_unsqueeze(axes, opset):
    constants = {"axes": np.array(axes, np.int64)}
    check_gradients(
        [node("Unsqueeze", ["x", "axes"])], {"x": random(2, 3)}, constants=constants, opset=opset
    )


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dynamic", [False, True])
def test_concat(axis, dynamic):
    shapes = {0: [(1, 3, 2), (2, 3, 2), (3, 3, 2)], 1: [(2, 1, 2), (2, 3, 2), (2, 2, 2)]}
    shapes[-1] = [(2, 3, 1), (2, 3, 3), (2, 3, 2)]
    inputs = {f"x{i}": random(*shape, seed=i) for i, shape in enumerate(shapes[axis])}
    check_gradients([node("Concat", list(inputs), axis=axis)], inputs, dynamic=dynamic)


def test_concat_with_constant_part():
    inputs = {"x": random(2, 3)}
    constants = {"fixed": random(2, 2, seed=3)}
    check_gradients([node("Concat", ["fixed", "x", "fixed"], axis=1)], inputs, constants=constants)


@pytest.mark.parametrize(
    "starts, ends, axes, steps",
    [
        ([1], [3], [1], None),
        ([0, 1], [2, 4], None, None),
        ([-1], [-100], [2], [-2]),
        ([5, 0], [0, 4], [1, 2], [-2, 3]),
    ],
)
def test_slice(starts, ends, axes, steps):
    constants = {"starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64)}
    names = ["x", "starts", "ends"]
    if axes is not None or steps is not None:
        constants["axes"] = np.array(
            axes if axes is not None else list(range(len(starts))), np.int64
        )
        names.append("axes")
    if steps is not None:
        constants["steps"] = np.array(steps, np.int64)
        names.append("steps")
    check_gradients([node("Slice", names)], {"x": random(3, 6, 5)}, constants=constants)


# Reductions.


@pytest.mark.parametrize("axes", [None, [1], [0, -1]])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [17, 18])
def test_reduce_mean(axes, keepdims, opset):
    inputs = {"x": random(2, 3, 4)}
    if axes is None:
        reduce = node("ReduceMean", ["x"], keepdims=keepdims)
        check_gradients([reduce], inputs, opset=opset)
    elif opset < 18:
        reduce = node("ReduceMean", ["x"], axes=axes, keepdims=keepdims)
        check_gradients([reduce], inputs, opset=opset)
    else:
        constants = {"axes": np.array(axes, np.int64)}
        reduce = node("ReduceMean", ["x", "axes"], keepdims=keepdims)
        check_gradients([reduce], inputs, opset=opset, constants=constants)


@pytest.mark.parametrize("axes", [None, [1], [0, -1], []])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_sum(axes, keepdims, noop):
    inputs = {"x": random(2, 3, 4)}
    if axes is None:
        reduce = node("ReduceSum", ["x"], keepdims=keepdims, noop_with_empty_axes=noop)
        check_gradients([reduce], inputs)
        return
    constants = {"axes": np.array(axes, np.int64)}
    reduce = node("ReduceSum", ["x", "axes"], keepdims=keepdims, noop_with_empty_axes=noop)
    check_gradients([reduce], inputs, constants=constants)


@pytest.mark.parametrize("axes", [None, [1], [0, -1]])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [17, 18])
def test_reduce_l2(axes, keepdims, opset):
    inputs = {"x": random(2, 3, 4)}
    if axes is None:
        check_gradients([node("ReduceL2", ["x"], keepdims=keepdims)], inputs, opset=opset)
    elif opset < 18:
        check_gradients(
            [node("ReduceL2", ["x"], axes=axes, keepdims=keepdims)], inputs, opset=opset
        )
    else:
        constants = {"axes": np.array(axes, np.int64)}
        reduce = node("ReduceL2", ["x", "axes"], keepdims=keepdims)
        check_gradients([reduce], inputs, opset=opset, constants=constants)


def test_reduce_l2_of_zero_row():
    """A row of zeros has norm 0, where the gradient is defined as 0 instead of NaN."""
    x = np.array([[0.0, 0.0, 0.0], [3.0, -4.0, 1.0]])
    model = make_model([node("ReduceL2", ["x"], axes=[1], keepdims=0)], {"x": x}, ["y"])
    gradient_model = build_gradient_graph(model, "y", ["x"])
    _, (_, grad) = run(gradient_model, {"x": x})
    np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(grad[1], x[1] / np.sqrt(26.0), rtol=1e-12)


def distinct_values(*shape, dtype=np.float64, seed=0):
    """Values at least 0.1 apart, so no step of a difference changes which is the max."""
    order = np.random.default_rng(seed).permutation(int(np.prod(shape)))
    return (order.reshape(shape) * 0.1 - 1.0).astype(dtype)


POOL_CASES = [
    # x shape, attributes, opset
    ((2, 3, 4, 4), {"kernel_shape": [2, 2], "strides": [2, 2]}, 17),
    ((1, 2, 5, 6), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 0]}, 17),
    ((1, 2, 5, 5), {"kernel_shape": [2, 2]}, 17),
    ((1, 2, 7, 6), {"kernel_shape": [2, 2], "strides": [2, 1], "dilations": [2, 2]}, 19),
    ((1, 2, 5, 6), {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, 17),
    ((2, 2, 9), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, 17),
]


@pytest.mark.parametrize("x_shape, attrs, opset", POOL_CASES)
def test_max_pool(x_shape, attrs, opset):
    inputs = {"x": distinct_values(*x_shape)}
    check_gradients([node("MaxPool", ["x"], **attrs)], inputs, opset=opset)


def test_max_pool_with_indices_output():
    inputs = {"x": distinct_values(1, 2, 6, 6)}
    pool = node("MaxPool", ["x"], ["y", "indices"], kernel_shape=[3, 3], strides=[2, 2])
    check_gradients([pool], inputs)


@pytest.mark.parametrize("x_shape, attrs, opset", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(x_shape, attrs, opset, count_include_pad):
    inputs = {"x": random(*x_shape, dtype=np.float32)}
    pool = node("AveragePool", ["x"], count_include_pad=count_include_pad, **attrs)
    check_gradients([pool], inputs, opset=opset)


def test_global_average_pool():
    x = random(2, 3, 4, 5, dtype=np.float32)
    check_gradients([node("GlobalAveragePool", ["x"])], {"x": x})


# Conv.

CONV_CASES = [
    # x shape, w shape, attributes
    ((2, 3, 6, 6), (4, 3, 3, 3), {}),
    ((1, 3, 7, 6), (4, 3, 3, 2), {"strides": [2, 2]}),
    ((1, 2, 8, 7), (3, 2, 3, 3), {"strides": [2, 3], "pads": [1, 0, 2, 1]}),
    ((1, 2, 9, 9), (2, 2, 3, 3), {"dilations": [2, 3], "pads": [2, 1, 0, 3]}),
    ((2, 4, 6, 6), (6, 2, 3, 3), {"group": 2, "strides": [2, 1], "pads": [1, 1, 1, 1]}),
    ((1, 4, 5, 5), (4, 1, 3, 3), {"group": 4, "dilations": [2, 1], "pads": [1, 1, 1, 1]}),
    ((2, 3, 9), (4, 3, 3), {"strides": [2], "pads": [1, 2]}),
    (
        (1, 2, 4, 5, 4),
        (2, 1, 2, 3, 2),
        {"group": 2, "strides": [1, 2, 1], "pads": [0, 1, 1, 1, 0, 0]},
    ),
    ((1, 2, 5, 5), (3, 2, 2, 2), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 2, 6, 5), (3, 2, 2, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 5, 6), (3, 2, 3, 2), {"auto_pad": "SAME_LOWER", "strides": [2, 1]}),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv(x_shape, w_shape, attrs, with_bias):
    inputs = {
        "x": random(*x_shape, dtype=np.float32),
        "w": random(*w_shape, dtype=np.float32, seed=1),
    }
    if with_bias:
        inputs["b"] = random(w_shape[0], dtype=np.float32, seed=2)
    check_gradients([node("Conv", list(inputs), **attrs)], inputs)


def test_conv_dynamic_shapes():
    inputs = {
        "x": random(2, 4, 7, 6, dtype=np.float32),
        "w": random(6, 2, 3, 3, dtype=np.float32, seed=1),
    }
    conv = node("Conv", ["x", "w"], group=2, strides=[2, 2], pads=[1, 0, 1, 2])
    check_gradients([conv], inputs, dynamic=True)


def test_every_rule_has_a_test():
    """Every registered op type is named by a test here or in test_autodiff_models.py."""
    test_dir = Path(__file__).parent
    sources = (test_dir / "test_autodiff_rules.py").read_text() + (
        test_dir / "test_autodiff_models.py"
    ).read_text()
    # Op types appear quoted, in node(...) calls or in parametrize lists.
    quoted = set(re.findall(r'"(\w+)"', sources))
    untested = {op_type for _, op_type in RULES} - quoted
    assert not untested, f"rules without a finite-difference test: {sorted(untested)}"
