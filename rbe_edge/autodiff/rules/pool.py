"""Gradient rules of MaxPool, AveragePool and GlobalAveragePool."""

import math

import onnx
from onnx import helper

from rbe_edge.autodiff.context import InputGradients, RuleContext
from rbe_edge.autodiff.errors import AutodiffError
from rbe_edge.autodiff.rules.windows import fit_to_input, resolve_windows


def max_pool(ctx: RuleContext) -> InputGradients:
    """Y = max over each window: each dY element goes to the input position that held the max.

    MaxPool's Indices output gives that position as a flat index into X
    (batch and channel included), so a ScatterElements with reduction="add"
    into a flat X puts every dY in place, summing where windows overlap.
    The forward node's Indices output is reused when present, else a second
    MaxPool computes it.
    """
    e = ctx.emit
    x = ctx.inputs[0]
    if int(ctx.attr("storage_order", 0)):
        raise AutodiffError(
            f"node {ctx.label!r} (MaxPool): storage_order=1 is not supported; use the default "
            f"row-major order"
        )

    if len(ctx.outputs) > 1 and ctx.outputs[1]:
        indices = ctx.outputs[1]
    else:
        indices = e.op_multi("MaxPool", [x], 2, **_attributes(ctx.node))[1]

    count = e.op("Reshape", e.op("Size", x), e.ints([1]))
    zeros = e.op("Expand", e.scalar(0.0, x), count)
    flat_indices = e.op("Reshape", indices, e.ints([-1]))
    flat_dy = e.op("Reshape", ctx.dy, e.ints([-1]))
    scattered = e.op("ScatterElements", zeros, flat_indices, flat_dy, axis=0, reduction="add")
    return [e.op("Reshape", scattered, e.shape(x))]


def average_pool(ctx: RuleContext) -> InputGradients:
    """Y = mean over each window: each dY element, divided by its window's count, goes to every position of the window.

    The spreading is a ConvTranspose with a kernel of ones, one channel at a
    time. The count is the kernel size, or with count_include_pad=0 the
    number of non-pad positions, found by pooling ones with pads counted.
    """
    e = ctx.emit
    x = ctx.inputs[0]
    kernel = list(ctx.attr("kernel_shape"))
    spatial = len(kernel)
    if int(ctx.attr("ceil_mode", 0)):
        raise AutodiffError(
            f"node {ctx.label!r} (AveragePool): ceil_mode=1 is not supported; export the "
            f"model with ceil_mode=0"
        )
    windows = resolve_windows(ctx, x, kernel, spatial)
    window_size = math.prod(kernel)

    if int(ctx.attr("count_include_pad", 0)) or not any(windows.pads):
        scaled = e.op("Div", ctx.dy, e.scalar(float(window_size), x))
    else:
        ones = e.op("Expand", e.scalar(1.0, x), e.shape(x))
        attributes = {**_attributes(ctx.node), "count_include_pad": 1}
        padded_mean = e.op("AveragePool", ones, **attributes)
        counts = e.op("Mul", padded_mean, e.scalar(float(window_size), x))
        scaled = e.op("Div", ctx.dy, counts)

    # One channel at a time: [N, C, *S] -> [N*C, 1, *S].
    per_channel = e.op("Concat", e.ints([-1, 1]), e.shape_slice(ctx.outputs[0], 2), axis=0)
    kernel_ones = e.op("Expand", e.scalar(1.0, x), e.ints([1, 1] + kernel))
    spread = e.op(
        "ConvTranspose",
        e.op("Reshape", scaled, per_channel),
        kernel_ones,
        strides=windows.strides,
        dilations=windows.dilations,
    )
    fitted = fit_to_input(ctx, spread, x, windows)
    return [e.op("Reshape", fitted, e.shape(x))]


def global_average_pool(ctx: RuleContext) -> InputGradients:
    """Y = mean of X over the spatial axes (keepdims): dX = dY / (H * W ...) everywhere."""
    e = ctx.emit
    x, y = ctx.inputs[0], ctx.outputs[0]
    spread = e.op("Expand", ctx.dy, e.shape(x))
    window = e.op("Div", e.count_as(x, x), e.count_as(y, x))
    return [e.op("Div", spread, window)]


def _attributes(node: onnx.NodeProto) -> dict:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
