"""Gradient rules of the broadcasting arithmetic ops Add, Sub, Mul, Div and of Neg."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def add(ctx: RuleContext) -> InputGradients:
    """Y = A + B: dA = dY and dB = dY, each summed to its input's shape."""
    return _to_input_shapes(ctx, [ctx.dy, ctx.dy])


def sub(ctx: RuleContext) -> InputGradients:
    """Y = A - B: dA = dY and dB = -dY."""
    db = ctx.emit.op("Neg", ctx.dy) if ctx.needs(1) else None
    return _to_input_shapes(ctx, [ctx.dy, db])


def mul(ctx: RuleContext) -> InputGradients:
    """Y = A * B: dA = dY * B and dB = dY * A."""
    e = ctx.emit
    a, b = ctx.inputs
    da = e.op("Mul", ctx.dy, b) if ctx.needs(0) else None
    db = e.op("Mul", ctx.dy, a) if ctx.needs(1) else None
    return _to_input_shapes(ctx, [da, db])


def div(ctx: RuleContext) -> InputGradients:
    """Y = A / B: dA = dY / B and dB = -dY * Y / B."""
    e = ctx.emit
    b = ctx.inputs[1]
    y = ctx.outputs[0]
    da = e.op("Div", ctx.dy, b) if ctx.needs(0) else None
    db = None
    if ctx.needs(1):
        db = e.op("Neg", e.op("Div", e.op("Mul", ctx.dy, y), b))
    return _to_input_shapes(ctx, [da, db])


def neg(ctx: RuleContext) -> InputGradients:
    """Y = -X: dX = -dY."""
    return [ctx.emit.op("Neg", ctx.dy)]


def _to_input_shapes(ctx: RuleContext, grads) -> InputGradients:
    """Undo broadcasting: sum each gradient (shaped like Y) to its input's shape."""
    y_dims = ctx.emit.info(ctx.outputs[0]).dims
    result = ctx.no_gradients()
    for index, grad in enumerate(grads):
        if grad is not None and ctx.needs(index):
            result[index] = ctx.emit.reduce_to(grad, ctx.inputs[index], y_dims)
    return result
