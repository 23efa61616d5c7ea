"""The gradient path of a graph: nodes between the `wrt` tensors and the loss, and cut points."""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Set

import onnx

from rbe_edge.autodiff.errors import AutodiffError, UnsupportedOpError
from rbe_edge.autodiff.rules import find_rule
from rbe_edge.autodiff.tensor_info import TensorInfo


def node_label(node: onnx.NodeProto, index: int) -> str:
    """Return the node's name, or "<op_type>#<index>" for an unnamed node."""
    return node.name or f"{node.op_type}#{index}"


def op_label(node: onnx.NodeProto) -> str:
    domain = node.domain if node.domain not in ("", "ai.onnx") else ""
    return f"{domain}.{node.op_type}" if domain else node.op_type


@dataclass
class GradientPath:
    """Nodes whose outputs depend differentiably on a `wrt` tensor and feed the loss.

    Attributes:
        graph: the forward graph.
        loss: the loss tensor.
        nodes: indices of the path nodes in topological order.
        active: tensors that depend differentiably on a `wrt` tensor.
        useful: tensors the loss depends on.
    """

    graph: onnx.GraphProto
    loss: str
    nodes: List[int]
    active: Set[str]
    useful: Set[str]

    def needs_gradient(self, node: onnx.NodeProto, index: int) -> bool:
        """True when input `index` of a path node must receive a gradient."""
        name = node.input[index]
        if not name or name not in self.active:
            return False
        rule = find_rule(node.domain, node.op_type)
        return rule is None or rule.is_differentiable(index)

    def unsupported_nodes(self) -> List[int]:
        return [i for i in self.nodes if _rule_of(self.graph.node[i]) is None]

    def cut_points(self) -> List[str]:
        """Return the tensors after the last unsupported ops, latest first.

        A cut point is an output (on the way to the loss) of an unsupported
        path node with no unsupported path node after it. Cutting the graph
        at all of them leaves only ops with rules between the cut and the loss.
        """
        unsupported = set(self.unsupported_nodes())
        blocked: Set[str] = set()
        cuts: List[str] = []
        for index in reversed(self.nodes):
            node = self.graph.node[index]
            downstream_blocked = any(name in blocked for name in node.output)
            if index in unsupported and not downstream_blocked:
                cuts.extend(name for name in node.output if name in self.useful)
            if index in unsupported or downstream_blocked:
                blocked.update(name for name in node.input if name)
        return cuts

    def raise_for_unsupported(self) -> None:
        """Raise UnsupportedOpError for the latest unsupported node on the path, if any."""
        unsupported = self.unsupported_nodes()
        if not unsupported:
            return

        index = unsupported[-1]
        node = self.graph.node[index]
        own = [name for name in node.output if name in self.useful]
        others = [name for name in self.cut_points() if name not in own]
        raise UnsupportedOpError(node_label(node, index), op_label(node), own + others, self.loss)

    def raise_for_unreachable(self, wrt: Sequence[str]) -> None:
        """Raise AutodiffError for a `wrt` tensor that no gradient reaches."""
        fed = {self.loss}
        for index in self.nodes:
            node = self.graph.node[index]
            fed.update(
                node.input[i] for i in range(len(node.input)) if self.needs_gradient(node, i)
            )

        for name in wrt:
            if name in fed:
                continue
            if name not in self.useful:
                raise AutodiffError(f"tensor {name!r} does not affect the loss {self.loss!r}")
            raise AutodiffError(_stopped_message(self.graph, name, self.loss))


def analyze(
    graph: onnx.GraphProto, loss: str, wrt: Sequence[str], infos: Dict[str, TensorInfo]
) -> GradientPath:
    """Find the gradient path from the `wrt` tensors to the loss."""
    _check_topological_order(graph)

    implicit = {index: _outer_scope_names(node) for index, node in enumerate(graph.node)}
    active = set(wrt)
    fed_nodes = []
    for index, node in enumerate(graph.node):
        rule = _rule_of(node)
        fed = any(
            name in active and (rule is None or rule.is_differentiable(i))
            for i, name in enumerate(node.input)
        )
        if fed or any(name in active for name in implicit[index]):
            fed_nodes.append(index)
            active.update(o for o in node.output if infos.get(o, TensorInfo()).is_float)

    useful = {loss}
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if any(name in useful for name in node.output):
            useful.update(name for name in node.input if name)
            useful.update(implicit[index])

    nodes = [i for i in fed_nodes if any(o in useful and o in active for o in graph.node[i].output)]
    return GradientPath(graph, loss, nodes, active, useful)


def _outer_scope_names(node: onnx.NodeProto) -> Set[str]:
    """Return the outer-scope tensors that the subgraphs of a node (If, Loop, Scan) read.

    They are inputs in all but name: a node reading a `wrt`-dependent tensor
    this way is on the gradient path, and no rule covers it.
    """
    names: Set[str] = set()
    for attribute in node.attribute:
        subgraphs = (
            [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        )
        for subgraph in subgraphs:
            names |= _free_names(subgraph)
    return names


def _free_names(graph: onnx.GraphProto) -> Set[str]:
    defined = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer}
    used: Set[str] = set()
    for node in graph.node:
        used.update(name for name in node.input if name)
        used |= _outer_scope_names(node)
        defined.update(node.output)
    return used - defined


def _rule_of(node: onnx.NodeProto):
    return find_rule(node.domain, node.op_type)


def _check_topological_order(graph: onnx.GraphProto) -> None:
    node_outputs = {name for node in graph.node for name in node.output}
    produced: Set[str] = set()
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name in node_outputs and name not in produced:
                raise AutodiffError(
                    f"node {node_label(node, index)!r} reads {name!r} before it is produced; "
                    f"sort the graph's nodes topologically"
                )
        produced.update(node.output)


def _stopped_message(graph: onnx.GraphProto, name: str, loss: str) -> str:
    for index, node in enumerate(graph.node):
        rule = _rule_of(node)
        for position, input_name in enumerate(node.input):
            if input_name == name and rule is not None and not rule.is_differentiable(position):
                outputs = ", ".join(repr(o) for o in node.output)
                return (
                    f"tensor {name!r} reaches the loss {loss!r} only through input {position} of "
                    f"node {node_label(node, index)!r} ({op_label(node)}), which passes no "
                    f"gradient; ask for the gradient of its output {outputs} instead"
                )
    return f"tensor {name!r} reaches the loss {loss!r} only through non-differentiable inputs"
