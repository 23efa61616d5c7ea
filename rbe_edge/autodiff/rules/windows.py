"""Sliding-window geometry shared by the Conv and pooling rules."""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

from rbe_edge.autodiff.context import RuleContext
from rbe_edge.autodiff.errors import AutodiffError


@dataclass
class Windows:
    """Strides, dilations and explicit pads (begins, then ends) of a windowed op."""

    strides: List[int]
    dilations: List[int]
    pads: List[int]

    @property
    def spatial(self) -> int:
        return len(self.strides)

    @property
    def pads_begin(self) -> List[int]:
        return self.pads[: self.spatial]

    @property
    def pads_end(self) -> List[int]:
        return self.pads[self.spatial :]


def resolve_windows(
    ctx: RuleContext, x: str, kernel: Optional[Sequence[int]], spatial: int
) -> Windows:
    """Read strides, dilations and pads, turning auto_pad into explicit pads.

    SAME_UPPER and SAME_LOWER pads depend on the input size, so they need
    static spatial dims of X and a static kernel shape.
    """
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    auto_pad = ctx.attr("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad

    if auto_pad == "NOTSET":
        return Windows(strides, dilations, list(ctx.attr("pads", [0] * 2 * spatial)))
    if auto_pad == "VALID":
        return Windows(strides, dilations, [0] * 2 * spatial)

    dims = ctx.emit.info(x).dims
    extent = None if dims is None else list(dims[2:])
    if kernel is None or extent is None or not all(isinstance(d, int) for d in extent):
        raise AutodiffError(
            f"node {ctx.label!r} ({ctx.node.op_type}): auto_pad={auto_pad} needs static spatial "
            f"dims of {x!r} and a static kernel shape; export the model with explicit pads"
        )
    return Windows(strides, dilations, _same_pads(auto_pad, extent, kernel, strides, dilations))


def _same_pads(auto_pad, extent, kernel, strides, dilations) -> List[int]:
    """Pads that make the output size ceil(input / stride); the odd pixel goes last for SAME_UPPER."""
    begins, ends = [], []
    for size, k, stride, dilation in zip(extent, kernel, strides, dilations):
        out = math.ceil(size / stride)
        total = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def fit_to_input(ctx: RuleContext, spread: str, x: str, windows: Windows) -> str:
    """Fit the output of an unpadded ConvTranspose to X: zero-extend to the padded extent, cut the pads.

    Without pads, ConvTranspose covers the (Y-1)*stride + (k-1)*dilation + 1
    leading positions of the padded input. The strided windows never reached
    the positions past that, so they get zero gradient.
    """
    e = ctx.emit
    spatial = windows.spatial
    x_extent = e.shape_slice(x, 2)
    total_pads = [b + a for b, a in zip(windows.pads_begin, windows.pads_end)]
    padded_extent = e.op("Add", x_extent, e.ints(total_pads))
    missing = e.op("Sub", padded_extent, e.shape_slice(spread, 2))
    pads = e.op("Concat", e.ints([0] * (2 + spatial + 2)), missing, axis=0)
    padded = e.op("Pad", spread, pads)

    axes = e.ints(list(range(2, 2 + spatial)))
    starts = e.ints(windows.pads_begin)
    ends = e.op("Add", x_extent, starts)
    return e.op("Slice", padded, starts, ends, axes)
