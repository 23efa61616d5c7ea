"""Exception types of the gradient graph builder."""

from typing import Sequence

from rbe_edge.errors import RbeError


class AutodiffError(RbeError, ValueError):
    """A gradient graph cannot be built from the given model, loss or tensor names."""


class UnsupportedOpError(AutodiffError):
    """A node on the gradient path has an op type without a gradient rule.

    Attributes:
        node: name of the node (or "<op_type>#<index>" when the node has no name).
        op_type: the node's op type, prefixed by its domain when that is not the
            default ONNX domain.
        cut_points: tensors at which the graph can be cut so that every op on
            the gradient path after them has a rule. The first one is the
            latest cut point for this node.
    """

    def __init__(self, node: str, op_type: str, cut_points: Sequence[str], loss: str):
        self.node = node
        self.op_type = op_type
        self.cut_points = list(cut_points)
        where = ", ".join(repr(name) for name in self.cut_points)
        super().__init__(
            f"node {node!r} (op {op_type}) lies on the gradient path to {loss!r} "
            f"but has no gradient rule. Cut the graph at tensor {where} instead "
            f"(every op after that point has a rule) and train only weights used "
            f"after it, or replace the op; docs/autodiff.md lists the supported ops."
        )
