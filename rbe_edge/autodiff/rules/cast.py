"""Gradient rules of Cast and CastLike between float types."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def cast(ctx: RuleContext) -> InputGradients:
    """Y = X converted to another float type: dX = dY converted back to X's type.

    Casts to integer or bool types have non-float outputs, which the gradient
    path never enters.
    """
    grads = ctx.no_gradients()
    grads[0] = ctx.emit.op("CastLike", ctx.dy, ctx.inputs[0])
    return grads
