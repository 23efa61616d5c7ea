"""The view of a node that its gradient rule receives: inputs, attributes, output gradients."""

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import onnx
from onnx import helper

from rbe_edge.autodiff.emitter import GraphEmitter
from rbe_edge.autodiff.errors import AutodiffError

# A rule returns one gradient name (or None) per input of its node.
InputGradients = List[Optional[str]]


@dataclass
class RuleContext:
    """One forward node during the backward pass.

    Attributes:
        node: the forward node.
        label: the node's name for messages and gradient scopes.
        emit: the emitter that appends gradient nodes.
        needed: per input, whether the caller needs its gradient.
        output_grads: per output, the gradient of the loss with respect to it, or None.
    """

    node: onnx.NodeProto
    label: str
    emit: GraphEmitter
    needed: Tuple[bool, ...]
    output_grads: Sequence[Optional[str]]

    @property
    def inputs(self) -> List[str]:
        return list(self.node.input)

    @property
    def outputs(self) -> List[str]:
        return list(self.node.output)

    @property
    def dy(self) -> str:
        """Gradient with respect to the first output."""
        if self.output_grads[0] is None:
            raise AutodiffError(
                f"node {self.label!r} ({self.node.op_type}): the loss depends only on "
                f"outputs other than the first, which this gradient rule does not handle"
            )
        return self.output_grads[0]

    def input(self, index: int) -> str:
        """Return input `index`, or "" when the optional input is absent."""
        return self.node.input[index] if index < len(self.node.input) else ""

    def needs(self, index: int) -> bool:
        return index < len(self.needed) and self.needed[index]

    def attr(self, name: str, default=None):
        for attribute in self.node.attribute:
            if attribute.name == name:
                return helper.get_attribute_value(attribute)
        return default

    def rank(self, name: str) -> int:
        """Return the static rank of tensor `name`; raise AutodiffError when it is unknown."""
        rank = self.emit.info(name).rank
        if rank is None:
            raise AutodiffError(
                f"node {self.label!r} ({self.node.op_type}): the rank of tensor {name!r} is "
                f"unknown; give the graph inputs a shape (dims may be symbolic) so that "
                f"shape inference can find it"
            )
        return rank

    def no_gradients(self) -> InputGradients:
        return [None] * len(self.node.input)


@dataclass(frozen=True)
class Rule:
    """A gradient rule and the input positions gradients can flow into (None: all)."""

    compute: Callable[[RuleContext], InputGradients]
    differentiable: Optional[Tuple[int, ...]] = None

    def is_differentiable(self, index: int) -> bool:
        return self.differentiable is None or index in self.differentiable
