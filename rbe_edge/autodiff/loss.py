"""Loss functions appended to a forward graph as standard ONNX ops."""

import copy

import onnx
from onnx import helper

from rbe_edge.autodiff.emitter import GraphEmitter
from rbe_edge.autodiff.errors import AutodiffError
from rbe_edge.autodiff.graph import all_names, default_opset, tensor_names
from rbe_edge.autodiff.tensor_info import TensorInfo, collect_tensor_infos

LOSS_KINDS = ("cross_entropy", "mse")


def add_loss(
    model: onnx.ModelProto,
    output: str,
    kind: str,
    label_input_name: str,
    loss_name: str = "loss",
) -> onnx.ModelProto:
    """Return a copy of `model` with a scalar loss on `output` and a new label input.

    kind="cross_entropy": `output` contains logits [..., C] (classes on the last
    axis) and the label input is int64 class indices of shape `output.shape[:-1]`;
    the loss is the softmax cross-entropy averaged over all labelled positions.
    Labels outside [0, C) match no class and add 0 to the loss, so check them first.

    kind="mse": the label input is a target of `output`'s shape and type; the
    loss is the mean over all elements of (output - target)^2.

    The loss is appended to the graph outputs as `loss_name`.
    """
    if kind not in LOSS_KINDS:
        raise AutodiffError(f"unknown loss kind {kind!r}; expected one of {LOSS_KINDS}")
    infos = collect_tensor_infos(model)
    info = infos.get(output)
    taken_names = all_names(model.graph)
    _check_loss_names(model.graph, output, info, label_input_name, loss_name, taken_names)

    emitter = GraphEmitter(default_opset(model), infos, taken_names, root="loss")
    if kind == "cross_entropy":
        label = helper.make_tensor_value_info(
            label_input_name, onnx.TensorProto.INT64, _label_dims(info, drop_class_axis=True)
        )
        mean = _cross_entropy(emitter, output, label_input_name)
    else:
        dims = _label_dims(info, drop_class_axis=False)
        label = helper.make_tensor_value_info(label_input_name, info.elem_type, dims)
        mean = _mean_squared_error(emitter, output, label_input_name)

    result = copy.deepcopy(model)
    result.graph.node.extend(emitter.nodes)
    result.graph.node.append(
        helper.make_node("Identity", [mean], [loss_name], name=f"loss/{loss_name}")
    )
    result.graph.input.append(label)
    result.graph.output.append(helper.make_tensor_value_info(loss_name, info.elem_type, []))
    return result


def _cross_entropy(e: GraphEmitter, logits: str, labels: str) -> str:
    """-mean(sum(one_hot(labels) * log_softmax(logits), -1)).

    The one-hot mask is Equal(labels[..., None], range(C)) rather than OneHot,
    because onnxruntime's OneHot has no float64 output kernel.
    """
    log_probs = e.op("LogSoftmax", logits, axis=-1)
    classes = e.op("Gather", e.shape(logits), e.ints(-1))
    class_ids = e.op("Range", e.ints(0), classes, e.ints(1))
    matches = e.op("Equal", e.op("Unsqueeze", labels, e.ints([-1])), class_ids)
    one_hot = e.op("CastLike", matches, logits)
    picked = e.reduce_sum(e.op("Mul", one_hot, log_probs), [-1], keepdims=0)
    return e.op("Neg", e.reduce_mean(picked, None, keepdims=0))


def _mean_squared_error(e: GraphEmitter, predictions: str, targets: str) -> str:
    difference = e.op("Sub", predictions, targets)
    return e.reduce_mean(e.op("Mul", difference, difference), None, keepdims=0)


def _label_dims(info: TensorInfo, drop_class_axis: bool):
    if info.dims is None:
        return None
    return list(info.dims[:-1]) if drop_class_axis else list(info.dims)


def _check_loss_names(graph, output, info, label_input_name, loss_name, taken_names) -> None:
    if output not in tensor_names(graph):
        raise AutodiffError(f"output {output!r} is not in graph {graph.name!r}")
    if info is None or not info.is_float or info.elem_type == 0:
        raise AutodiffError(
            f"output {output!r} is not a float tensor of known type, so no loss can attach "
            f"to it; declare the graph's input types so that shape inference can type it"
        )
    for name in (label_input_name, loss_name):
        if name in taken_names:
            raise AutodiffError(
                f"graph {graph.name!r} already has a tensor or node named {name!r}; "
                f"choose another name"
            )
