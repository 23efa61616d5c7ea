"""Finite-difference checks of gradient graphs built by rbe_edge.autodiff, on onnxruntime."""

from typing import Dict, Optional, Sequence, Union

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from rbe_edge.autodiff import build_gradient_graph, gradient_name

# Central-difference step and tolerances per element type. float64 differences
# are accurate to about 1e-9; float32 ones lose about 1e-7 * |loss| / step to
# rounding and step^2 * |f'''| / 6 to truncation, about 1e-4 here.
STEPS = {np.float64: 1e-6, np.float32: 1e-2}
TOLERANCES = {np.float64: dict(rtol=1e-6, atol=1e-7), np.float32: dict(rtol=2e-3, atol=2e-3)}


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Dict[str, np.ndarray],
    outputs: Sequence[str],
    constants: Optional[Dict[str, np.ndarray]] = None,
    opset: int = 17,
    dynamic: Union[bool, Sequence[str]] = False,
    functions: Sequence[onnx.FunctionProto] = (),
    extra_opsets: Optional[Dict[str, int]] = None,
) -> onnx.ModelProto:
    """Build a model whose graph inputs are `inputs` and whose initializers are `constants`.

    With dynamic=True every input dim is a distinct symbolic dim, so shape
    inference finds ranks but no sizes. A list of names makes only those
    inputs dynamic.
    """
    input_infos = []
    for name, value in inputs.items():
        symbolic = dynamic is True or (not isinstance(dynamic, bool) and name in dynamic)
        shape = [f"{name}_d{axis}" for axis in range(value.ndim)] if symbolic else list(value.shape)
        elem_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        input_infos.append(helper.make_tensor_value_info(name, elem_type, shape))

    initializers = [numpy_helper.from_array(v, k) for k, v in (constants or {}).items()]
    output_infos = [onnx.ValueInfoProto(name=name) for name in outputs]
    graph = helper.make_graph(list(nodes), "check", input_infos, output_infos, initializers)
    opsets = [helper.make_opsetid("", opset)]
    opsets += [
        helper.make_opsetid(domain, version) for domain, version in (extra_opsets or {}).items()
    ]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = 8 if opset < 19 else 9
    return model


def run(model: onnx.ModelProto, feeds: Dict[str, np.ndarray]):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_inputs()]
    return session, session.run(None, {k: feeds[k] for k in names})


def with_projection_loss(
    model: onnx.ModelProto, output: str, weights: np.ndarray
) -> onnx.ModelProto:
    """Append loss = sum(output * weights), so every element of `output` matters."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    graph.initializer.append(numpy_helper.from_array(weights, "check.projection"))
    graph.node.append(helper.make_node("Mul", [output, "check.projection"], ["check.weighted"]))
    graph.node.append(helper.make_node("ReduceSum", ["check.weighted"], ["loss"], keepdims=0))
    del graph.output[:]
    elem_type = helper.np_dtype_to_tensor_dtype(weights.dtype)
    graph.output.append(helper.make_tensor_value_info("loss", elem_type, []))
    return result


def numeric_gradient(session, feeds: Dict[str, np.ndarray], name: str, step: float) -> np.ndarray:
    """Central differences of the session's first output with respect to feeds[name]."""
    base = feeds[name]
    grad = np.zeros(base.shape, dtype=np.float64)
    for index in np.ndindex(*base.shape):
        shifted = dict(feeds)
        values = base.copy()
        values[index] = base[index] + step
        shifted[name] = values
        plus = float(session.run(None, shifted)[0])
        values[index] = base[index] - step
        minus = float(session.run(None, shifted)[0])
        grad[index] = (plus - minus) / (2.0 * step)
    return grad


def check_gradients(
    nodes: Sequence[onnx.NodeProto],
    inputs: Dict[str, np.ndarray],
    wrt: Optional[Sequence[str]] = None,
    output: str = "y",
    seed: int = 0,
    **model_options,
) -> onnx.ModelProto:
    """Compare the gradient graph of sum(output * R), R random, with central differences.

    `wrt` defaults to every float input. Returns the gradient model.
    """
    forward = make_model(nodes, inputs, [output], **model_options)
    _, (y,) = run(forward, inputs)
    weights = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    loss_model = with_projection_loss(forward, output, weights)

    if wrt is None:
        wrt = [k for k, v in inputs.items() if np.issubdtype(v.dtype, np.floating)]
    gradient_model = build_gradient_graph(loss_model, "loss", list(wrt))
    onnx.checker.check_model(gradient_model, full_check=True)

    _, results = run(gradient_model, inputs)
    loss_session, _ = run(loss_model, inputs)
    dtype = y.dtype.type
    for name, analytic in zip(wrt, results[1:]):
        value = inputs[name]
        assert (
            analytic.shape == value.shape
        ), f"{gradient_name(name)} has shape {analytic.shape}, {name} has {value.shape}"
        assert (
            analytic.dtype == value.dtype
        ), f"{gradient_name(name)} is {analytic.dtype}, {name} is {value.dtype}"
        numeric = numeric_gradient(loss_session, inputs, name, STEPS[dtype])
        np.testing.assert_allclose(
            analytic,
            numeric,
            **TOLERANCES[dtype],
            err_msg=f"gradient of {name} ({nodes[-1].op_type})",
        )
    return gradient_model


def initializers_as_inputs(model: onnx.ModelProto, names: Sequence[str]):
    """Return a copy of `model` with initializers `names` as graph inputs, and their values."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    values = {}
    remaining = []
    for tensor in graph.initializer:
        if tensor.name in names:
            values[tensor.name] = numpy_helper.to_array(tensor)
            graph.input.append(
                helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
        else:
            remaining.append(tensor)
    del graph.initializer[:]
    graph.initializer.extend(remaining)
    return result, values


def check_model_gradients(
    model: onnx.ModelProto,
    feeds: Dict[str, np.ndarray],
    loss: str,
    wrt: Sequence[str],
    step: Optional[float] = None,
):
    """Check build_gradient_graph(model, loss, wrt) against central differences.

    `wrt` may name graph inputs or initializers. `step` overrides the
    central-difference step, for models whose kinks (Relu) lie within the
    default step of some input. Returns the gradient model and its outputs.
    """
    gradient_model = build_gradient_graph(model, loss, list(wrt))
    onnx.checker.check_model(gradient_model, full_check=True)
    _, results = run(gradient_model, feeds)

    loss_model = onnx.ModelProto()
    loss_model.CopyFrom(model)
    del loss_model.graph.output[:]
    loss_model.graph.output.append(onnx.ValueInfoProto(name=loss))
    loss_model, values = initializers_as_inputs(loss_model, wrt)
    all_feeds = {**feeds, **values}
    session, _ = run(loss_model, all_feeds)

    dtype = results[0].dtype.type
    for name, analytic in zip(wrt, results[1:]):
        numeric = numeric_gradient(session, all_feeds, name, step or STEPS[dtype])
        np.testing.assert_allclose(
            analytic, numeric, **TOLERANCES[dtype], err_msg=f"gradient of {name}"
        )
    return gradient_model, results
