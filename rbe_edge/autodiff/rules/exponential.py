"""Gradient rules of the power and exponential ops: Pow, Sqrt, Reciprocal, Exp, Log."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def pow_(ctx: RuleContext) -> InputGradients:
    """Y = A ^ B (broadcasting): dA = dY * B * A^(B - 1) and dB = dY * Y * log(A).

    dB is defined only where A > 0, so only a positive base should be trained
    through the exponent.
    """
    e = ctx.emit
    a, b = ctx.inputs
    y = ctx.outputs[0]
    y_dims = e.info(y).dims
    grads = ctx.no_gradients()

    if ctx.needs(0):
        b_like_a = e.op("CastLike", b, a)
        lowered = e.op("Pow", a, e.op("Sub", b_like_a, e.scalar(1.0, a)))
        slope = e.op("Mul", b_like_a, lowered)
        grads[0] = e.reduce_to(e.op("Mul", ctx.dy, slope), a, y_dims)

    if ctx.needs(1):
        log_base = e.op("CastLike", e.op("Log", a), b)
        db = e.op("Mul", e.op("CastLike", e.op("Mul", ctx.dy, y), b), log_base)
        grads[1] = e.reduce_to(db, b, y_dims)
    return grads


def sqrt(ctx: RuleContext) -> InputGradients:
    """Y = sqrt(X): dX = dY / (2 Y)."""
    e = ctx.emit
    y = ctx.outputs[0]
    return [e.op("Div", ctx.dy, e.op("Add", y, y))]


def reciprocal(ctx: RuleContext) -> InputGradients:
    """Y = 1 / X: dX = -dY * Y^2."""
    e = ctx.emit
    y = ctx.outputs[0]
    return [e.op("Neg", e.op("Mul", ctx.dy, e.op("Mul", y, y)))]


def exp(ctx: RuleContext) -> InputGradients:
    """Y = exp(X): dX = dY * Y."""
    return [ctx.emit.op("Mul", ctx.dy, ctx.outputs[0])]


def log(ctx: RuleContext) -> InputGradients:
    """Y = log(X): dX = dY / X."""
    return [ctx.emit.op("Div", ctx.dy, ctx.inputs[0])]
