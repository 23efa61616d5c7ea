"""Finding the weights of an ONNX model wherever exporters put them.

Weights are float initializers and `Constant` node values, in the main graph
and in the subgraphs of `If`, `Loop` and `Scan` (any graph attribute). A
subgraph may read a weight of an enclosing graph, so names resolve through
the chain of enclosing scopes, innermost first.
"""
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rbe_edge.errors import RbeError

logger = logging.getLogger(__name__)

FLOAT_TYPES = {
    TensorProto.FLOAT: np.float32,
    TensorProto.FLOAT16: np.float16,
    TensorProto.BFLOAT16: None,
    TensorProto.DOUBLE: np.float64,
}
UNSUPPORTED_FLOAT_TYPES = {
    getattr(TensorProto, name) for name in (
        "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT4E2M1",
        "FLOAT8E8M0", "COMPLEX64", "COMPLEX128",
    ) if hasattr(TensorProto, name)
}
# Operators whose weight input gets a known matrix layout: (op_type, input index).
MATRIX_OPS = {("MatMul", 1), ("Gemm", 1), ("Conv", 1), ("ConvTranspose", 1), ("Gather", 0)}


class PackError(RbeError, ValueError):
    """A model cannot be packed; the message names the file, tensor or node."""


@dataclass
class WeightSite:
    """One weight tensor and where it lives in the model."""

    name: str
    tensor: TensorProto
    graph: onnx.GraphProto
    graph_path: str
    kind: str                          # "initializer" or "constant"
    constant_node: Optional[onnx.NodeProto] = None
    consumers: List[str] = field(default_factory=list)
    layouts: List[str] = field(default_factory=list)

    @property
    def dtype_name(self) -> str:
        return TensorProto.DataType.Name(self.tensor.data_type).lower()

    @property
    def size(self) -> int:
        return int(np.prod(self.tensor.dims, dtype=np.int64)) if self.tensor.dims else 1

    def to_float32(self) -> np.ndarray:
        """Return the weight as float32 (bfloat16 and float16 widen exactly)."""
        array = numpy_helper.to_array(self.tensor)
        return np.asarray(array, dtype=np.float32)


def iterate_graphs(graph: onnx.GraphProto, path: str = "main"):
    """Yield (graph, path) for `graph` and every subgraph below it."""
    yield graph, path
    for index, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}_{index}"
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from iterate_graphs(attribute.g, f"{path}/{label}.{attribute.name}")
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for number, sub in enumerate(attribute.graphs):
                    yield from iterate_graphs(sub, f"{path}/{label}.{attribute.name}[{number}]")


def find_weights(model: onnx.ModelProto) -> List[WeightSite]:
    """Return every float initializer and Constant tensor, with its consumers and layouts."""
    sites: List[WeightSite] = []
    _visit(model.graph, "main", [], sites)
    return sites


def _visit(graph: onnx.GraphProto, path: str, scopes: List[Dict], sites: List[WeightSite]):
    scope: Dict[str, Optional[WeightSite]] = {}
    for value in graph.input:
        scope[value.name] = None
    for tensor in graph.initializer:
        site = WeightSite(tensor.name, tensor, graph, path, "initializer")
        scope[tensor.name] = site
        sites.append(site)
    for node in graph.node:
        site = _constant_site(node, graph, path)
        if site is not None:
            sites.append(site)
        for output in node.output:
            scope[output] = site
    chain = scopes + [scope]

    for index, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}_{index}"
        for position, name in enumerate(node.input):
            site = _resolve(chain, name)
            if site is not None:
                _record_use(site, node, position, f"{path}/{label}")
        for attribute in node.attribute:
            for number, sub in enumerate(_subgraphs(attribute)):
                suffix = f"[{number}]" if attribute.type == onnx.AttributeProto.GRAPHS else ""
                _visit(sub, f"{path}/{label}.{attribute.name}{suffix}", chain, sites)


def _subgraphs(attribute: onnx.AttributeProto) -> list:
    if attribute.type == onnx.AttributeProto.GRAPH:
        return [attribute.g]
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return list(attribute.graphs)
    return []


def _constant_site(node: onnx.NodeProto, graph, path: str) -> Optional[WeightSite]:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return None
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
            return WeightSite(node.output[0], attribute.t, graph, path, "constant", node)
    return None


def _resolve(chain: List[Dict], name: str) -> Optional[WeightSite]:
    for scope in reversed(chain):
        if name in scope:
            return scope[name]
    return None


def _record_use(site: WeightSite, node: onnx.NodeProto, position: int, where: str) -> None:
    site.consumers.append(f"{where} ({node.op_type} input {position})")
    if (node.op_type, position) not in MATRIX_OPS or node.domain not in ("", "ai.onnx"):
        return
    if node.op_type == "MatMul" and len(site.tensor.dims) == 2:
        site.layouts.append("kn")
    elif node.op_type == "Gemm":
        trans_b = next((helper.get_attribute_value(a) for a in node.attribute
                        if a.name == "transB"), 0)
        site.layouts.append("nk" if trans_b else "kn")
    elif node.op_type in ("Conv", "ConvTranspose", "Gather"):
        site.layouts.append("nk")


def select_weights(sites: List[WeightSite], min_elements: int) -> List[WeightSite]:
    """Return the weights to pack: float tensors of 2 to 4 dimensions with at least
    `min_elements` values that some node reads. Biases, norms and small tensors stay float.

    Raises PackError for a MatMul, Gemm or Conv weight of a float type the
    codec cannot read (float8, float4, complex).
    """
    chosen = []
    for site in sites:
        data_type = site.tensor.data_type
        if data_type in UNSUPPORTED_FLOAT_TYPES and site.layouts:
            raise PackError(
                f"tensor '{site.name}' ({site.graph_path}) has unsupported dtype "
                f"{site.dtype_name}, read by {site.consumers[0]}; convert the model's weights "
                "to float32, float16 or bfloat16 before packing")
        if data_type not in FLOAT_TYPES or not site.consumers:
            continue
        if not 2 <= len(site.tensor.dims) <= 4 or site.size < min_elements:
            continue
        chosen.append(site)
    logger.info("packing %d of %d float tensors", len(chosen), len(sites))
    return chosen


def layout_of(site: WeightSite) -> str:
    """Return the matrix layout of a weight: the first known role, else rows = first axis."""
    if site.layouts:
        return site.layouts[0]
    return "nk"
