"""Gradient rules of Softmax and LogSoftmax (opset 13 and later: one axis)."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def softmax(ctx: RuleContext) -> InputGradients:
    """Y = softmax(X, axis): dX = Y * (dY - sum(dY * Y, axis))."""
    e = ctx.emit
    y = ctx.outputs[0]
    axis = int(ctx.attr("axis", -1))
    dot = e.reduce_sum(e.op("Mul", ctx.dy, y), [axis], keepdims=1)
    return [e.op("Mul", y, e.op("Sub", ctx.dy, dot))]


def log_softmax(ctx: RuleContext) -> InputGradients:
    """Y = log_softmax(X, axis): dX = dY - exp(Y) * sum(dY, axis)."""
    e = ctx.emit
    y = ctx.outputs[0]
    axis = int(ctx.attr("axis", -1))
    total = e.reduce_sum(ctx.dy, [axis], keepdims=1)
    return [e.op("Sub", ctx.dy, e.op("Mul", e.op("Exp", y), total))]
