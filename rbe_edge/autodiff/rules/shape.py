"""Gradient rules of the ops that move elements without changing them."""

import onnx

from rbe_edge.autodiff.context import InputGradients, RuleContext
from rbe_edge.autodiff.errors import AutodiffError


def reshape_like_input(ctx: RuleContext) -> InputGradients:
    """Reshape, Flatten, Squeeze, Unsqueeze: dX = dY reshaped to X's shape."""
    grads = ctx.no_gradients()
    grads[0] = ctx.emit.op("Reshape", ctx.dy, ctx.emit.shape(ctx.inputs[0]))
    return grads


def identity(ctx: RuleContext) -> InputGradients:
    """Y = X: dX = dY."""
    return [ctx.dy]


def transpose(ctx: RuleContext) -> InputGradients:
    """Y = transpose(X, perm): dX = transpose(dY, inverse of perm); no perm reverses the axes."""
    perm = ctx.attr("perm")
    if perm is None:
        return [ctx.emit.op("Transpose", ctx.dy)]

    inverse = [0] * len(perm)
    for position, axis in enumerate(perm):
        inverse[axis] = position
    return [ctx.emit.op("Transpose", ctx.dy, perm=inverse)]


def concat(ctx: RuleContext) -> InputGradients:
    """Y = concat(X_0, ..., X_n, axis): dX_i is the slab of dY along `axis` where X_i sits."""
    e = ctx.emit
    axis = int(ctx.attr("axis"))
    axis_index = e.ints([axis])
    sizes = [e.op("Gather", e.shape(x), axis_index) for x in ctx.inputs]
    split = e.op("Concat", *sizes, axis=0)
    parts = e.op_multi("Split", [ctx.dy, split], len(ctx.inputs), axis=axis)
    return [part if ctx.needs(i) else None for i, part in enumerate(parts)]


def slice_(ctx: RuleContext) -> InputGradients:
    """Y = X[starts:ends:steps] on `axes`: dX is zero except at the sliced elements, which get dY.

    The same Slice applied to the flat index of every element of X gives
    where each element of Y came from; ScatterElements writes dY there.
    Sliced positions are distinct, so no two writes collide.
    """
    e = ctx.emit
    x = ctx.inputs[0]
    count = e.op("Size", x)
    flat_count = e.op("Reshape", count, e.ints([1]))
    positions = e.op("Reshape", e.op("Range", e.ints(0), count, e.ints(1)), e.shape(x))
    picked = e.op("Slice", positions, *ctx.inputs[1:])

    zeros = e.op("Expand", e.scalar(0.0, x), flat_count)
    flat_picked = e.op("Reshape", picked, e.ints([-1]))
    flat_dy = e.op("Reshape", ctx.dy, e.ints([-1]))
    scattered = e.op("ScatterElements", zeros, flat_picked, flat_dy, axis=0)

    grads = ctx.no_gradients()
    grads[0] = e.op("Reshape", scattered, e.shape(x))
    return grads


def dropout(ctx: RuleContext) -> InputGradients:
    """Dropout without a training_mode input is the identity: dX = dY."""
    if ctx.input(2):
        # NOTE: a training_mode input may be true at run time, which needs the mask output.
        raise AutodiffError(
            f"node {ctx.label!r} (Dropout) has a training_mode input; only inference-mode "
            f"Dropout is supported, so export the model in inference mode"
        )
    grads = ctx.no_gradients()
    grads[0] = ctx.dy
    return grads


def gather(ctx: RuleContext) -> InputGradients:
    """Y = Gather(X, indices, axis): dX adds each slice of dY back at its index.

    With `axis` moved to the front of X and the index dims to the front of dY,
    this is ScatterND with reduction="add" into zeros, so repeated indices
    sum their gradients.
    """
    e = ctx.emit
    data, indices = ctx.inputs
    rank = ctx.rank(data)
    index_rank = ctx.rank(indices)
    axis = int(ctx.attr("axis", 0)) % rank

    to_front = [axis] + [i for i in range(rank) if i != axis]
    front_shape = e.op("Gather", e.shape(data), e.ints(to_front))
    dy = ctx.dy
    if axis > 0:
        index_dims = list(range(axis, axis + index_rank))
        others = [i for i in range(rank - 1 + index_rank) if i not in index_dims]
        dy = e.op("Transpose", dy, perm=index_dims + others)

    # Negative indices count from the end of the axis, as Gather allows.
    positions = e.op("Cast", indices, to=onnx.TensorProto.INT64)
    extent = e.op("Gather", e.shape(data), e.ints(axis))
    wrapped = e.op("Add", positions, extent)
    positions = e.op("Where", e.op("Less", positions, e.ints(0)), wrapped, positions)

    zeros = e.op("Expand", e.scalar(0.0, data), front_shape)
    index_tuples = e.op("Unsqueeze", positions, e.ints([-1]))
    scattered = e.op("ScatterND", zeros, index_tuples, dy, reduction="add")

    grads = ctx.no_gradients()
    if axis == 0:
        grads[0] = scattered
    else:
        back = [to_front.index(i) for i in range(rank)]
        grads[0] = e.op("Transpose", scattered, perm=back)
    return grads
