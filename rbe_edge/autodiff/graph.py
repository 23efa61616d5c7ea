"""The backward pass: walk the gradient path in reverse and emit each node's rule."""

import copy
import logging
from typing import Dict, List, Optional, Sequence

import onnx
from onnx import helper

from rbe_edge.autodiff import path as gradient_path
from rbe_edge.autodiff.context import RuleContext
from rbe_edge.autodiff.emitter import GraphEmitter
from rbe_edge.autodiff.errors import AutodiffError
from rbe_edge.autodiff.rules import find_rule
from rbe_edge.autodiff.tensor_info import TensorInfo, collect_tensor_infos

logger = logging.getLogger(__name__)

GRADIENT_PREFIX = "grad."
MIN_OPSET = 17


def gradient_name(tensor: str) -> str:
    """Return the graph output name of the gradient of `tensor`."""
    return GRADIENT_PREFIX + tensor


def build_gradient_graph(
    model: onnx.ModelProto,
    loss: str,
    wrt: Sequence[str],
    keep_outputs: Sequence[str] = (),
) -> onnx.ModelProto:
    """Return a model computing `loss` and its gradient with respect to each `wrt` tensor.

    The result keeps every forward node and appends the backward nodes, all
    standard ONNX ops at the model's default-domain opset, so a stock
    onnxruntime runs it. Its outputs are `loss`, then "grad.<name>" for each
    name in `wrt` (same type and shape as that tensor), then `keep_outputs`.
    A non-scalar loss is differentiated as the sum of its elements.

    Args:
        model: forward model, default-domain opset 17 or newer.
        loss: float tensor of the graph to differentiate.
        wrt: initializers, graph inputs or intermediate tensors. The output
            of an rbe_edge.BitplaneDecode node is a valid `wrt` tensor; its
            inputs are not, since gradients stop at the decoded weight.
        keep_outputs: further tensors to expose, such as the logits.

    Raises:
        UnsupportedOpError: an op on the path from `wrt` to `loss` has no
            gradient rule. The error names the node, the op and the tensors
            where the graph could be cut instead.
        AutodiffError: unknown tensor names, a non-float `wrt` tensor, a
            `wrt` tensor the loss does not depend on, or an opset below 17.
    """
    opset = default_opset(model)
    infos = collect_tensor_infos(model)
    _check_names(model.graph, loss, wrt, keep_outputs, infos)

    path = gradient_path.analyze(model.graph, loss, wrt, infos)
    path.raise_for_unsupported()
    path.raise_for_unreachable(wrt)

    emitter = GraphEmitter(opset, infos, all_names(model.graph))
    gradients = _backward(model.graph, path, emitter, loss)
    return _assemble(model, emitter, gradients, loss, wrt, keep_outputs, infos)


def _backward(graph, path, emitter: GraphEmitter, loss: str) -> Dict[str, List[str]]:
    """Emit the backward nodes and return the gradient contributions of each tensor."""
    emitter.enter("grad/seed")
    seed = emitter.op("Expand", emitter.scalar(1.0, loss), emitter.shape(loss))
    contributions: Dict[str, List[str]] = {loss: [seed]}

    for index in reversed(path.nodes):
        node = graph.node[index]
        label = gradient_path.node_label(node, index)
        emitter.enter(f"grad/{label}")
        output_grads = [_accumulate(emitter, contributions, name) for name in node.output]
        if all(grad is None for grad in output_grads):
            continue

        needed = tuple(path.needs_gradient(node, i) for i in range(len(node.input)))
        context = RuleContext(node, label, emitter, needed, output_grads)
        input_grads = find_rule(node.domain, node.op_type).compute(context)
        for position, grad in enumerate(input_grads):
            if grad is not None and needed[position]:
                contributions.setdefault(node.input[position], []).append(grad)

        logger.debug("gradient rule of %s (%s) applied", label, node.op_type)
    return contributions


def _accumulate(emitter: GraphEmitter, contributions, name: str) -> Optional[str]:
    """Sum the gradient contributions of a tensor used by several nodes."""
    parts = contributions.get(name)
    if not parts:
        return None
    if len(parts) > 1:
        contributions[name] = [emitter.op("Sum", *parts)]
    return contributions[name][0]


def _assemble(model, emitter, contributions, loss, wrt, keep_outputs, infos) -> onnx.ModelProto:
    """Copy the forward model, append the backward nodes and set the outputs."""
    result = copy.deepcopy(model)
    graph = result.graph
    emitter.enter("grad/output")
    gradient_nodes = []
    for name in wrt:
        total = _accumulate(emitter, contributions, name)
        gradient_nodes.append(
            helper.make_node("Identity", [total], [gradient_name(name)], name=f"grad/output/{name}")
        )

    graph.node.extend(emitter.nodes)
    graph.node.extend(gradient_nodes)
    del graph.output[:]
    graph.output.append(_value_info(loss, infos[loss]))
    graph.output.extend(_value_info(gradient_name(name), infos[name]) for name in wrt)
    graph.output.extend(_value_info(name, infos.get(name, TensorInfo())) for name in keep_outputs)
    return result


def _value_info(name: str, info: TensorInfo) -> onnx.ValueInfoProto:
    if info.elem_type == 0:
        return onnx.ValueInfoProto(name=name)
    shape = None if info.dims is None else list(info.dims)
    return helper.make_tensor_value_info(name, info.elem_type, shape)


def default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            if opset.version < MIN_OPSET:
                raise AutodiffError(
                    f"the model imports default-domain opset {opset.version}; gradient graphs "
                    f"need opset {MIN_OPSET} or newer, so re-export the model or convert it "
                    f"with onnx.version_converter"
                )
            return opset.version
    raise AutodiffError("the model imports no default-domain (ai.onnx) opset")


def tensor_names(graph: onnx.GraphProto) -> set:
    """Return the names of every tensor the graph declares, reads or produces."""
    names = {
        value.name for value in list(graph.input) + list(graph.output) + list(graph.value_info)
    }
    names.update(tensor.name for tensor in graph.initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    names.discard("")
    return names


def all_names(graph: onnx.GraphProto) -> set:
    """Return the tensor and node names, which new names must avoid."""
    return tensor_names(graph) | {node.name for node in graph.node}


def _check_names(graph, loss, wrt, keep_outputs, infos: Dict[str, TensorInfo]) -> None:
    known = tensor_names(graph)
    for role, names in (("loss", [loss]), ("wrt", wrt), ("keep_outputs", keep_outputs)):
        for name in names:
            if not name or name not in known:
                raise AutodiffError(f"{role} tensor {name!r} is not in graph {graph.name!r}")

    if len(set(wrt)) != len(wrt):
        raise AutodiffError(f"wrt names a tensor twice: {list(wrt)}")
    for name in wrt:
        if gradient_name(name) in known:
            raise AutodiffError(f"the graph already has a tensor named {gradient_name(name)!r}")

    for name in [loss] + list(wrt):
        info = infos.get(name)
        if info is None or info.elem_type == 0:
            raise AutodiffError(
                f"the type of tensor {name!r} is unknown; declare the graph's input types "
                f"so that shape inference can type it"
            )
        if not info.is_float:
            raise AutodiffError(
                f"tensor {name!r} has element type {_type_name(info.elem_type)}; "
                f"only float tensors have gradients"
            )


def _type_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type)
