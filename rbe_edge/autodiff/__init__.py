"""Reverse-mode automatic differentiation over ONNX graphs, emitting standard ONNX ops.

    model = add_loss(forward, "logits", "cross_entropy", "labels")
    train = build_gradient_graph(model, "loss", ["fc.weight", "fc.bias"])

`train` computes the loss and "grad.fc.weight", "grad.fc.bias" on a stock
onnxruntime; docs/autodiff.md lists the supported ops and the limits.
"""

from typing import List, Optional, Sequence

import onnx

from rbe_edge.autodiff.errors import AutodiffError, UnsupportedOpError
from rbe_edge.autodiff.graph import GRADIENT_PREFIX, build_gradient_graph, gradient_name
from rbe_edge.autodiff.loss import LOSS_KINDS, add_loss
from rbe_edge.autodiff import path as _path
from rbe_edge.autodiff.rules import RULES
from rbe_edge.autodiff.tensor_info import collect_tensor_infos


def find_cut_points(
    model: onnx.ModelProto, loss: str, wrt: Optional[Sequence[str]] = None
) -> List[str]:
    """Return the tensors after which every op on the gradient path has a rule, latest first.

    An empty list means the whole path from `wrt` to `loss` is differentiable.
    `wrt` defaults to every float graph input and initializer.
    """
    infos = collect_tensor_infos(model)
    if wrt is None:
        sources = [value.name for value in model.graph.input]
        sources += [tensor.name for tensor in model.graph.initializer]
        wrt = [name for name in sources if name in infos and infos[name].is_float]
    return _path.analyze(model.graph, loss, wrt, infos).cut_points()


__all__ = [
    "AutodiffError",
    "GRADIENT_PREFIX",
    "LOSS_KINDS",
    "RULES",
    "UnsupportedOpError",
    "add_loss",
    "build_gradient_graph",
    "find_cut_points",
    "gradient_name",
]
