"""Cutting a bundle's inference graph into a frozen backbone and a training suffix.

The cut sits just before the first node that reads a trainable weight. The
backbone computes every tensor the suffix reads from before the cut (its
outputs are cached once per example); the suffix recomputes the rest of the
forward pass from those tensors and the trainable weights' planes, scales
and zero points, which become graph inputs because they change every step.
"""
import copy
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import onnx
from onnx import TensorProto, helper

from rbe_edge import onnx_ops
from rbe_edge.adapt.errors import AdaptError
from rbe_edge.autodiff import add_loss, build_gradient_graph, gradient_name

logger = logging.getLogger(__name__)

AUTO_LAYERS = 2              # "auto" trains the weights of the last two weight-bearing layers
LABEL_INPUT = "rbe_labels"
LOSS_OUTPUT = "rbe_loss"


@dataclass
class DecodeSite:
    """The decode chain of one packed weight in the main graph."""

    weight: str                  # the tensor name the model's layers read
    decoded: str                 # float32 output of BitplaneDecode (== weight for float32)
    decode_node: onnx.NodeProto
    chain: List[int]             # node indices of Concat, BitplaneDecode and Cast
    first_use: Optional[int]     # index of the first layer node that reads `weight`


@dataclass
class TrainingGraphs:
    """The graphs of one trainable set, loss and output."""

    trainable: List[str]
    output: str
    loss: str
    boundary: List[str]                       # tensors the suffix reads from before the cut
    backbone: Optional[onnx.ModelProto]       # None when the boundary is the model's inputs
    head: onnx.ModelProto                     # suffix forward: boundary + weights -> output
    train_step: onnx.ModelProto               # head + loss + gradients
    decoded: Dict[str, str] = field(default_factory=dict)   # weight -> decoded tensor name

    def gradient_output(self, weight: str) -> str:
        return gradient_name(self.decoded[weight])


def parameter_inputs(weight: str) -> List[str]:
    """Names of the planes, scale and zero point inputs of a trainable weight."""
    return [f"{weight}.rbe_planes", f"{weight}.rbe_scale", f"{weight}.rbe_zero"]


def decode_sites(model: onnx.ModelProto) -> Dict[str, DecodeSite]:
    """Return the decode chain of every packed weight of the main graph, by weight name."""
    graph = model.graph
    producers = {out: i for i, node in enumerate(graph.node) for out in node.output}
    sites = {}
    for index, node in enumerate(graph.node):
        if node.domain != onnx_ops.DOMAIN or node.op_type != onnx_ops.OP_TYPE:
            continue
        weight = node.name[: -len(".rbe_decode")]
        chain = [producers[node.input[0]], index] if node.input[0] in producers else [index]
        decoded = node.output[0]
        final = decoded
        for later, candidate in enumerate(graph.node):
            if candidate.op_type == "Cast" and list(candidate.input) == [decoded]:
                chain.append(later)
                final = candidate.output[0]
        sites[weight] = DecodeSite(weight, decoded, node, chain, None)
        if final != weight:
            logger.debug("decode chain of '%s' ends in '%s'", weight, final)

    for site in sites.values():
        chain = set(site.chain)
        readers = [i for i, node in enumerate(graph.node)
                   if i not in chain and site.weight in node.input]
        site.first_use = min(readers) if readers else None
    return sites


def choose_trainable(model: onnx.ModelProto, trainable: Union[str, Sequence[str]],
                     packed_names: Sequence[str], where: str) -> List[str]:
    """Resolve "auto" or a list of names to packed weights of the main graph, in graph order."""
    sites = decode_sites(model)
    if isinstance(trainable, str) and trainable == "auto":
        used = sorted((s for s in sites.values() if s.first_use is not None),
                      key=lambda s: s.first_use)
        if not used:
            raise AdaptError(f"{where}: the model has no packed weight that a layer reads, so "
                             "there is nothing to train")
        return [s.weight for s in used[-AUTO_LAYERS:]]

    names = [trainable] if isinstance(trainable, str) else list(trainable)
    if not names:
        raise AdaptError(f"{where}: the trainable set is empty; name packed weights or pass 'auto'")
    for name in names:
        if name not in packed_names:
            raise AdaptError(f"{where}: trainable tensor '{name}' does not exist; packed tensors "
                             f"are {list(packed_names)[:20]} (small tensors such as biases stay "
                             "float and cannot be trained as bitplanes)")
        if name not in sites or sites[name].first_use is None:
            raise AdaptError(f"{where}: trainable tensor '{name}' is not read by a layer of the "
                             "main graph (weights inside If/Loop/Scan bodies cannot be trained)")
    if len(set(names)) != len(names):
        raise AdaptError(f"{where}: the trainable set names a tensor twice: {names}")
    return sorted(names, key=lambda name: sites[name].first_use)


def cut(model: onnx.ModelProto, trainable: Sequence[str], output: Optional[str], loss: str,
        *, float_weights: bool = False, where: str = "infer.onnx") -> TrainingGraphs:
    """Build the backbone, head and train_step graphs of `model` for `trainable`.

    With float_weights, the suffix reads each trainable weight as a float32
    graph input (the decoded tensor) instead of planes, scales and zero
    points: the float baseline of the same step.
    """
    model = onnx.shape_inference.infer_shapes(model)
    sites = decode_sites(model)
    output = _resolve_output(model, output, where)
    cut_index = min(sites[name].first_use for name in trainable)

    boundary = _boundary(model, cut_index, output, where)
    backbone = _extract(model, _graph_input_names(model), _non_inputs(model, boundary), "backbone")
    prepared = _expose_weights(model, [sites[name] for name in trainable], float_weights)
    extra = []
    for name in trainable:
        extra += [sites[name].decoded] if float_weights else parameter_inputs(name)
    head = _extract(prepared, boundary + extra, [output], "head")
    _check_head_reads_trainable(head, trainable, sites, float_weights, output, where)

    decoded = {name: sites[name].decoded for name in trainable}
    with_loss = add_loss(head, output, loss, LABEL_INPUT, LOSS_OUTPUT)
    train_step = build_gradient_graph(with_loss, LOSS_OUTPUT, list(decoded.values()),
                                      keep_outputs=[output])
    train_step.graph.name = "train_step"
    logger.info("cut before node %d: %d boundary tensors, trainable %s", cut_index,
                len(boundary), list(trainable))
    return TrainingGraphs(list(trainable), output, loss, boundary, backbone, head, train_step,
                          decoded)


def _resolve_output(model: onnx.ModelProto, output: Optional[str], where: str) -> str:
    names = [value.name for value in model.graph.output]
    if output is None:
        return names[0]
    if output not in names:
        raise AdaptError(f"{where}: output '{output}' does not exist; the model's outputs are "
                         f"{names}")
    return output


def _graph_input_names(model: onnx.ModelProto) -> List[str]:
    initialized = {tensor.name for tensor in model.graph.initializer}
    return [value.name for value in model.graph.input if value.name not in initialized]


def _non_inputs(model: onnx.ModelProto, names: List[str]) -> List[str]:
    inputs = set(_graph_input_names(model))
    return [name for name in names if name not in inputs]


def _dynamic_tensors(model: onnx.ModelProto) -> set:
    """Tensors that depend on a graph input (the rest are constants of the weights)."""
    dynamic = set(_graph_input_names(model))
    for node in model.graph.node:
        if any(name in dynamic for name in node.input):
            dynamic.update(node.output)
    return dynamic


def _boundary(model: onnx.ModelProto, cut_index: int, output: str, where: str) -> List[str]:
    """Dynamic tensors made before the cut (or graph inputs) that nodes after it read."""
    dynamic = _dynamic_tensors(model)
    made_before = set(_graph_input_names(model))
    for node in model.graph.node[:cut_index]:
        made_before.update(node.output)
    if output in made_before:
        raise AdaptError(f"{where}: output '{output}' is computed before the first trainable "
                         "layer, so training those weights cannot change it; choose later "
                         "layers or another output")

    boundary = []
    for node in model.graph.node[cut_index:]:
        for name in node.input:
            if name in dynamic and name in made_before and name not in boundary:
                boundary.append(name)
    return boundary


def _expose_weights(model: onnx.ModelProto, sites: List[DecodeSite], float_weights: bool):
    """Return a copy of `model` whose trainable weights come from graph inputs."""
    result = copy.deepcopy(model)
    graph = result.graph
    shapes = {value.name: value for value in graph.value_info}
    for site in sites:
        if float_weights:
            info = shapes[site.decoded]
            graph.input.append(helper.make_tensor_value_info(
                site.decoded, TensorProto.FLOAT,
                [d.dim_value for d in info.type.tensor_type.shape.dim]))
            continue
        planes, scale, zero = parameter_inputs(site.weight)
        initializers = {tensor.name: tensor for tensor in graph.initializer}
        rows_groups = list(initializers[scale].dims)
        planes_dims = [d.dim_value for d in shapes[planes].type.tensor_type.shape.dim]
        graph.input.extend([
            helper.make_tensor_value_info(planes, TensorProto.UINT8, planes_dims),
            helper.make_tensor_value_info(scale, TensorProto.FLOAT, rows_groups),
            helper.make_tensor_value_info(zero, TensorProto.FLOAT, rows_groups),
        ])
        kept = [tensor for tensor in graph.initializer if tensor.name not in (scale, zero)]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return result


def _extract(model: onnx.ModelProto, inputs: List[str], outputs: List[str],
             name: str) -> Optional[onnx.ModelProto]:
    if not outputs:
        return None
    extracted = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    extracted.graph.name = name
    # The Extractor drops the model-level fields the checker needs.
    extracted.ir_version = model.ir_version
    del extracted.opset_import[:]
    extracted.opset_import.extend(model.opset_import)
    used = {(node.domain, node.op_type) for node in extracted.graph.node}
    del extracted.functions[:]
    extracted.functions.extend(f for f in model.functions if (f.domain, f.name) in used)
    return extracted


def _check_head_reads_trainable(head, trainable, sites, float_weights, output, where) -> None:
    read = {name for node in head.graph.node for name in node.input}
    for name in trainable:
        marker = sites[name].decoded if float_weights else parameter_inputs(name)[0]
        if marker not in read:
            raise AdaptError(f"{where}: output '{output}' does not depend on trainable tensor "
                             f"'{name}'; choose weights on the path to that output")
