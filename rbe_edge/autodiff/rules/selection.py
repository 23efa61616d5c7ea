"""Gradient rules of the ops that pick elements among their inputs: Max, Min, Where."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def max_min(ctx: RuleContext) -> InputGradients:
    """Y = elementwise max (or min) of the inputs, broadcasting.

    Each input gets dY where it equals Y. Inputs tied for an element share
    its dY equally, so the total passed back equals dY.
    """
    e = ctx.emit
    y = ctx.outputs[0]
    y_dims = e.info(y).dims
    hits = [e.op("CastLike", e.op("Equal", x, y), y) for x in ctx.inputs]
    ties = hits[0] if len(hits) == 1 else e.op("Sum", *hits)
    share = e.op("Div", ctx.dy, ties)

    grads = ctx.no_gradients()
    for index, x in enumerate(ctx.inputs):
        if ctx.needs(index):
            grads[index] = e.reduce_to(e.op("Mul", share, hits[index]), x, y_dims)
    return grads


def where(ctx: RuleContext) -> InputGradients:
    """Y = Where(C, A, B): dA = dY where C, dB = dY where not C; C gets none."""
    e = ctx.emit
    condition, a, b = ctx.inputs
    y = ctx.outputs[0]
    y_dims = e.info(y).dims
    zero = e.scalar(0.0, y)
    grads = ctx.no_gradients()

    if ctx.needs(1):
        grads[1] = e.reduce_to(e.op("Where", condition, ctx.dy, zero), a, y_dims)
    if ctx.needs(2):
        grads[2] = e.reduce_to(e.op("Where", condition, zero, ctx.dy), b, y_dims)
    return grads
