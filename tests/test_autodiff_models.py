"""Gradient graphs of whole models, losses, gradient stops at BitplaneDecode, and errors."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from autodiff_check import check_model_gradients, make_model, run
from rbe_edge.autodiff import (
    AutodiffError,
    UnsupportedOpError,
    add_loss,
    build_gradient_graph,
    find_cut_points,
)
from rbe_edge.errors import RbeError


def random(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def with_initializers(model, values):
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items())
    return model


def mlp(dtype=np.float64, opset=17):
    """x [N, 6] -> Gemm -> Relu -> MatMul + Add -> logits [N, 4]; weights are initializers."""
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["a"]),
        helper.make_node("MatMul", ["a", "w2"], ["z"]),
        helper.make_node("Add", ["z", "b2"], ["logits"]),
    ]
    x = random(5, 6, dtype=dtype)
    model = make_model(nodes, {"x": x}, ["logits"], opset=opset, dynamic=True)
    weights = {
        "w1": random(8, 6, dtype=dtype, seed=1),
        "b1": random(8, dtype=dtype, seed=2),
        "w2": random(8, 4, dtype=dtype, seed=3),
        "b2": random(4, dtype=dtype, seed=4),
    }
    return with_initializers(model, weights), x


@pytest.mark.parametrize("opset", [17, 18, 19, 20, 21])
def test_mlp_cross_entropy(opset):
    model, x = mlp(opset=opset)
    model = add_loss(model, "logits", "cross_entropy", "labels")
    labels = np.array([0, 3, 1, 1, 2], np.int64)

    gradient_model, results = check_model_gradients(
        model, {"x": x, "labels": labels}, "loss", ["w1", "b1", "w2", "b2"]
    )
    assert [o.name for o in gradient_model.graph.output] == [
        "loss",
        "grad.w1",
        "grad.b1",
        "grad.w2",
        "grad.b2",
    ]
    assert results[0].shape == ()


def test_cross_entropy_value():
    model, x = mlp()
    model = add_loss(model, "logits", "cross_entropy", "labels")
    labels = np.array([0, 3, 1, 1, 2], np.int64)
    _, (logits, loss) = run(model, {"x": x, "labels": labels})

    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_probs[np.arange(5), labels].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_mlp_mse_with_intermediate_wrt():
    model, x = mlp()
    model = add_loss(model, "logits", "mse", "target")
    target = random(5, 4, seed=9)
    _, (logits, loss) = run(model, {"x": x, "target": target})
    np.testing.assert_allclose(loss, np.mean((logits - target) ** 2), rtol=1e-12)

    gradient_model = build_gradient_graph(model, "loss", ["a", "w2"], keep_outputs=["logits"])
    onnx.checker.check_model(gradient_model, full_check=True)
    _, (loss_again, grad_a, grad_w2, logits_again) = run(gradient_model, {"x": x, "target": target})

    _, (a,) = run(make_output(model, "a"), {"x": x, "target": target})
    dlogits = 2.0 * (logits - target) / logits.size
    np.testing.assert_allclose(
        grad_a, dlogits @ numpy_helper.to_array(model.graph.initializer[2]).T, rtol=1e-10
    )
    np.testing.assert_allclose(grad_w2, a.T @ dlogits, rtol=1e-10)
    np.testing.assert_allclose(logits_again, logits)
    assert loss_again == loss


def make_output(model, name):
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.output[:]
    result.graph.output.append(onnx.ValueInfoProto(name=name))
    return result


def cnn(opset=17):
    """Conv -> Relu -> grouped strided Conv -> LeakyRelu -> GlobalAveragePool -> Flatten -> Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node(
            "Conv", ["r1", "c2.w"], ["c2"], group=2, strides=[2, 2], pads=[0, 0, 1, 1]
        ),
        helper.make_node("LeakyRelu", ["c2"], ["r2"], alpha=0.1),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"], transB=1),
    ]
    x = random(2, 3, 6, 6, dtype=np.float32)
    model = make_model(nodes, {"x": x}, ["logits"], opset=opset)
    weights = {
        "c1.w": random(4, 3, 3, 3, dtype=np.float32, seed=1),
        "c1.b": random(4, dtype=np.float32, seed=2),
        "c2.w": random(6, 2, 3, 3, dtype=np.float32, seed=3),
        "fc.w": random(5, 6, dtype=np.float32, seed=4),
        "fc.b": random(5, dtype=np.float32, seed=5),
    }
    return with_initializers(model, weights), x


def test_cnn_cross_entropy():
    model, x = cnn()
    model = add_loss(model, "logits", "cross_entropy", "labels")
    labels = np.array([4, 1], np.int64)
    wrt = ["c1.w", "c1.b", "c2.w", "fc.w", "fc.b"]
    check_model_gradients(model, {"x": x, "labels": labels}, "loss", wrt, step=1e-3)


def test_attention_block():
    """Scaled dot-product attention with LayerNormalization, Softmax and Gelu, at opset 20."""
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln.scale", "ln.bias"], ["xn"]),
        helper.make_node("MatMul", ["xn", "wq"], ["q"]),
        helper.make_node("MatMul", ["xn", "wk"], ["k"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Div", ["scores", "temperature"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["attention"], axis=-1),
        helper.make_node("MatMul", ["attention", "xn"], ["mixed"]),
        helper.make_node("Gelu", ["mixed"], ["y"]),
        helper.make_node("ReduceMean", ["y", "axes"], ["pooled"], keepdims=0),
    ]
    x = random(2, 3, 4, dtype=np.float32)
    model = make_model(nodes, {"x": x}, ["pooled"], opset=20)
    weights = {
        "ln.scale": random(4, dtype=np.float32, seed=1),
        "ln.bias": random(4, dtype=np.float32, seed=2),
        "wq": random(4, 4, dtype=np.float32, seed=3),
        "wk": random(4, 4, dtype=np.float32, seed=4),
        "temperature": np.array(2.0, np.float32),
        "axes": np.array([1], np.int64),
    }
    model = with_initializers(model, weights)
    model = add_loss(model, "pooled", "mse", "target")
    target = random(2, 4, dtype=np.float32, seed=7)
    check_model_gradients(
        model, {"x": x, "target": target}, "loss", ["ln.scale", "ln.bias", "wq", "wk", "x"]
    )


# Gradients stop at BitplaneDecode.


def bitplane_decode_function():
    """A stand-in for rbe_edge.BitplaneDecode as a model-local function: (planes - zero) * scale."""
    body = [
        helper.make_node("Cast", ["planes"], ["codes"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Sub", ["codes", "zero"], ["centered"]),
        helper.make_node("Mul", ["centered", "scale"], ["weight"]),
    ]
    return helper.make_function(
        "rbe_edge",
        "BitplaneDecode",
        ["planes", "scale", "zero"],
        ["weight"],
        body,
        opset_imports=[helper.make_opsetid("", 17)],
    )


def decoded_weight_model():
    nodes = [
        helper.make_node(
            "BitplaneDecode",
            ["w.planes", "w.scale", "w.zero"],
            ["w"],
            domain="rbe_edge",
            name="decode_w",
        ),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    x = random(2, 3, dtype=np.float32)
    model = make_model(
        nodes, {"x": x}, ["y"], functions=[bitplane_decode_function()], extra_opsets={"rbe_edge": 1}
    )
    codes = np.random.default_rng(3).integers(0, 256, size=(3, 4)).astype(np.uint8)
    weights = {
        "w.planes": codes,
        "w.scale": np.full((1, 4), 0.01, np.float32),
        "w.zero": np.full((1, 4), 128.0, np.float32),
    }
    model = with_initializers(model, weights)
    return add_loss(model, "y", "mse", "target"), x, codes


def test_gradient_stops_at_bitplane_decode():
    model, x, codes = decoded_weight_model()
    target = random(2, 4, dtype=np.float32, seed=5)
    gradient_model = build_gradient_graph(model, "loss", ["w"])
    onnx.checker.check_model(gradient_model, full_check=True)

    _, (loss, grad_w) = run(gradient_model, {"x": x, "target": target})
    w = (codes.astype(np.float32) - 128.0) * 0.01
    expected = x.T @ (2.0 * (x @ w - target) / target.size)
    np.testing.assert_allclose(grad_w, expected, rtol=1e-5, atol=1e-6)

    forward_nodes = len(model.graph.node)
    backward_inputs = {name for n in gradient_model.graph.node[forward_nodes:] for name in n.input}
    assert not backward_inputs & {
        "w.planes",
        "w.scale",
        "w.zero",
    }, "a backward node reads the decode's inputs"


def test_bitplane_decode_inputs_get_no_gradient():
    model, _, _ = decoded_weight_model()
    with pytest.raises(
        AutodiffError, match=r"'w.scale'.*'decode_w' \(rbe_edge.BitplaneDecode\).*'w'"
    ):
        build_gradient_graph(model, "loss", ["w.scale"])


# Unsupported ops and cut points.


def sine_model(parallel=False):
    """x -> MatMul w1 -> Sin -> MatMul w2 -> Relu -> loss; optionally a parallel Cos branch."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Sin", ["h"], ["sine"], name="sin_node"),
        helper.make_node("MatMul", ["sine", "w2"], ["z"]),
        helper.make_node("Relu", ["z"], ["out"]),
    ]
    if parallel:
        nodes += [
            helper.make_node("Cos", ["h"], ["wave"], name="cos_node"),
            helper.make_node("Add", ["out", "wave"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["out"], ["y"]))
    nodes.append(helper.make_node("ReduceSum", ["y"], ["loss"], keepdims=0))
    model = make_model(nodes, {"x": random(2, 3)}, ["loss"])
    return with_initializers(model, {"w1": random(3, 3, seed=1), "w2": random(3, 3, seed=2)})


def test_unsupported_op_names_node_and_cut_point():
    model = sine_model()
    with pytest.raises(UnsupportedOpError) as caught:
        build_gradient_graph(model, "loss", ["w1", "w2"])

    error = caught.value
    assert isinstance(error, RbeError)
    assert error.node == "sin_node"
    assert error.op_type == "Sin"
    assert error.cut_points == ["sine"]
    assert "'sin_node' (op Sin)" in str(error)
    assert "'sine'" in str(error)


def test_unsupported_op_off_path_is_fine():
    model = sine_model()
    x = random(2, 3)
    check_model_gradients(model, {"x": x}, "loss", ["w2"])


def test_cut_points_of_parallel_branches():
    model = sine_model(parallel=True)
    assert find_cut_points(model, "loss") == ["wave", "sine"]
    assert find_cut_points(model, "loss", ["w2"]) == []

    with pytest.raises(UnsupportedOpError) as caught:
        build_gradient_graph(model, "loss", ["w1"])
    assert caught.value.node == "cos_node"
    assert caught.value.cut_points == ["wave", "sine"]


# Bad input.


def test_unknown_names_rejected():
    model, _ = mlp()
    with pytest.raises(AutodiffError, match="loss tensor 'nope'"):
        build_gradient_graph(model, "nope", ["w1"])
    with pytest.raises(AutodiffError, match="wrt tensor 'w9'"):
        build_gradient_graph(model, "logits", ["w9"])


def test_integer_wrt_rejected():
    model = sine_model()
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "count"))
    model.graph.node.append(
        helper.make_node("Cast", ["count"], ["count_f"], to=onnx.TensorProto.DOUBLE)
    )
    with pytest.raises(AutodiffError, match="'count' has element type INT64"):
        build_gradient_graph(model, "loss", ["count"])


def test_wrt_not_affecting_loss_rejected():
    model = sine_model()
    model.graph.initializer.append(numpy_helper.from_array(random(3), "unused"))
    with pytest.raises(AutodiffError, match="'unused' does not affect the loss 'loss'"):
        build_gradient_graph(model, "loss", ["unused"])


def test_old_opset_rejected():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": random(2)}, ["y"], opset=16)
    with pytest.raises(AutodiffError, match="opset 16.*version_converter"):
        build_gradient_graph(model, "y", ["x"])


def test_unknown_loss_kind_rejected():
    model, _ = mlp()
    with pytest.raises(AutodiffError, match="unknown loss kind 'hinge'"):
        add_loss(model, "logits", "hinge", "labels")


def test_gradient_of_packed_weight():
    """A weight packed and decoded by rbe_edge.onnx_ops gets its gradient at the decoded weight."""
    from rbe_edge import onnx_ops, quantize

    rng = np.random.default_rng(11)
    packed = quantize(rng.standard_normal((5, 3)).astype(np.float32), bits=8, name="fc.w")
    names = ["fc.w.planes", "fc.w.scale", "fc.w.zero"]
    nodes = [
        onnx_ops.make_node(packed, 6, names, "fc.w", name="decode_fc"),
        helper.make_node("MatMul", ["x", "fc.w"], ["logits"]),
    ]
    x = rng.standard_normal((4, 5)).astype(np.float32)
    model = make_model(
        nodes,
        {"x": x},
        ["logits"],
        functions=[onnx_ops.make_function(17)],
        extra_opsets={onnx_ops.DOMAIN: onnx_ops.DOMAIN_VERSION},
    )
    model.graph.initializer.extend(onnx_ops.make_initializers(packed, 6, names))
    model = add_loss(model, "logits", "cross_entropy", "labels")
    labels = np.array([0, 2, 1, 2], np.int64)

    gradient_model = build_gradient_graph(model, "loss", ["fc.w"])
    onnx.checker.check_model(gradient_model, full_check=True)
    _, (loss, grad_w) = run(gradient_model, {"x": x, "labels": labels})

    w = packed.decode(planes=6)
    logits = x @ w
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(4), labels] -= 1.0
    np.testing.assert_allclose(grad_w, x.T @ probs / 4, rtol=1e-4, atol=1e-6)


def test_subgraph_reading_wrt_tensor_is_unsupported():
    """An If branch reading a wrt-dependent outer-scope tensor puts the If on the path."""
    branch_nodes = [helper.make_node("Relu", ["h"], ["branch_out"])]
    branch_output = [helper.make_tensor_value_info("branch_out", onnx.TensorProto.DOUBLE, None)]
    then_graph = helper.make_graph(branch_nodes, "then", [], branch_output)
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["branch_out"])], "else", [], branch_output
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node(
            "If",
            ["flag"],
            ["chosen"],
            name="choose",
            then_branch=then_graph,
            else_branch=else_graph,
        ),
        helper.make_node("ReduceSum", ["chosen"], ["loss"], keepdims=0),
    ]
    model = make_model(nodes, {"x": random(2, 3), "flag": np.array(True)}, ["loss"])
    model = with_initializers(model, {"w1": random(3, 3, seed=1)})

    with pytest.raises(UnsupportedOpError) as caught:
        build_gradient_graph(model, "loss", ["w1"])
    assert caught.value.node == "choose"
    assert caught.value.cut_points == ["chosen"]


def test_sentence_encoder_tail():
    """Masked mean pooling, L2 normalization and a linear head, as in a sentence encoder."""
    nodes = [
        helper.make_node("MatMul", ["hidden", "dense.w"], ["projected"]),
        helper.make_node("Add", ["projected", "dense.b"], ["biased"]),
        helper.make_node(
            "LayerNormalization", ["biased", "ln.scale", "ln.bias"], ["states"], epsilon=1e-12
        ),
        helper.make_node("Unsqueeze", ["mask", "last_axis"], ["mask3"]),
        helper.make_node("Mul", ["states", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "sequence_axis"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "sequence_axis"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "count_floor"], ["safe_count"]),
        helper.make_node("Div", ["total", "safe_count"], ["pooled"]),
        helper.make_node("ReduceL2", ["pooled"], ["norm"], axes=[-1], keepdims=1),
        helper.make_node("Max", ["norm", "norm_floor"], ["safe_norm"]),
        helper.make_node("Div", ["pooled", "safe_norm"], ["embedding"]),
        helper.make_node("Gemm", ["embedding", "head.w", "head.b"], ["logits"], transB=1),
    ]
    hidden = random(3, 5, 4)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], np.float64)
    model = make_model(nodes, {"hidden": hidden, "mask": mask}, ["logits"], dynamic=True)
    weights = {
        "dense.w": random(4, 4, seed=1),
        "dense.b": random(4, seed=2),
        "ln.scale": random(4, seed=3),
        "ln.bias": random(4, seed=4),
        "head.w": random(3, 4, seed=5),
        "head.b": random(3, seed=6),
        "last_axis": np.array([-1], np.int64),
        "sequence_axis": np.array([1], np.int64),
        "count_floor": np.array(1e-9),
        "norm_floor": np.array(1e-12),
    }
    model = add_loss(with_initializers(model, weights), "logits", "cross_entropy", "labels")
    feeds = {"hidden": hidden, "mask": mask, "labels": np.array([2, 0, 1], np.int64)}
    wrt = ["dense.w", "dense.b", "ln.scale", "ln.bias", "head.w", "head.b"]
    check_model_gradients(model, feeds, "loss", wrt)


@pytest.mark.parametrize(
    "op_node, message",
    [
        (
            helper.make_node("Dropout", ["h", "ratio", "training"], ["y"], name="drop"),
            "'drop' \\(Dropout\\) has a training_mode input",
        ),
        (
            helper.make_node(
                "BatchNormalization",
                ["h4", "s", "s", "s", "s"],
                ["y4", "mean", "var"],
                name="bn",
                training_mode=1,
            ),
            "'bn' \\(BatchNormalization\\): training_mode=1",
        ),
    ],
)
def test_training_mode_ops_rejected(op_node, message):
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Unsqueeze", ["h", "axes"], ["h4"]),
        op_node,
        helper.make_node("ReduceSum", [op_node.output[0]], ["loss"], keepdims=0),
    ]
    model = make_model(nodes, {"x": random(2, 3)}, ["loss"])
    constants = {
        "w1": random(3, 3, seed=1),
        "axes": np.array([2, 3], np.int64),
        "s": np.ones(3),
        "ratio": np.array(0.5),
        "training": np.array(True),
    }
    model = with_initializers(model, constants)
    with pytest.raises(AutodiffError, match=message):
        build_gradient_graph(model, "loss", ["w1"])


def test_add_loss_rejects_taken_names():
    model, _ = mlp()
    with pytest.raises(AutodiffError, match="already has a tensor or node named 'x'"):
        add_loss(model, "logits", "cross_entropy", "x")
    with pytest.raises(AutodiffError, match="already has a tensor or node named 'h'"):
        add_loss(model, "logits", "mse", "target", loss_name="h")


def test_add_loss_rejects_missing_output():
    model, _ = mlp()
    with pytest.raises(AutodiffError, match="output 'probabilities' is not in graph"):
        add_loss(model, "probabilities", "mse", "target")


@pytest.mark.parametrize(
    "op_node, message",
    [
        (
            helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad="SAME_UPPER"),
            "'c' \\(Conv\\): auto_pad=SAME_UPPER needs static spatial dims of 'x'",
        ),
        (
            helper.make_node(
                "MaxPool", ["x"], ["y"], name="m", kernel_shape=[2, 2], storage_order=1
            ),
            "'m' \\(MaxPool\\): storage_order=1",
        ),
        (
            helper.make_node(
                "AveragePool", ["x"], ["y"], name="a", kernel_shape=[2, 2], ceil_mode=1
            ),
            "'a' \\(AveragePool\\): ceil_mode=1",
        ),
    ],
)
def test_unsupported_window_attributes_rejected(op_node, message):
    nodes = [op_node, helper.make_node("ReduceSum", ["y"], ["loss"], keepdims=0)]
    inputs = {"x": random(1, 2, 5, 5, dtype=np.float32)}
    model = make_model(nodes, inputs, ["loss"], dynamic=True)
    model = with_initializers(model, {"w": random(3, 2, 3, 3, dtype=np.float32)})
    with pytest.raises(AutodiffError, match=message):
        build_gradient_graph(model, "loss", ["x"])
