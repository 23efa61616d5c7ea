"""Gradient rules of ReduceSum, ReduceMean and ReduceL2."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def reduce_sum(ctx: RuleContext) -> InputGradients:
    """Y = sum(X, axes): every element of X gets the dY of its reduced slot."""
    grads = ctx.no_gradients()
    grads[0] = _spread(ctx, ctx.dy, _axes_input(ctx))
    return grads


def reduce_mean(ctx: RuleContext) -> InputGradients:
    """Y = mean(X, axes): as ReduceSum, divided by the number of elements averaged."""
    grads = ctx.no_gradients()
    grads[0] = _divide_by_window(ctx, _spread(ctx, ctx.dy, _axes_input(ctx)))
    return grads


def reduce_l2(ctx: RuleContext) -> InputGradients:
    """Y = sqrt(sum(X^2, axes)): dX = dY * X / Y, and 0 where Y = 0 (X is all zeros there)."""
    e = ctx.emit
    x, y = ctx.inputs[0], ctx.outputs[0]
    axes = _axes_input(ctx)
    norm = _spread(ctx, y, axes)
    zero = e.scalar(0.0, x)
    is_zero = e.op("Equal", norm, zero)
    safe_norm = e.op("Where", is_zero, e.scalar(1.0, x), norm)
    direction = e.op("Where", is_zero, zero, e.op("Div", x, safe_norm))

    grads = ctx.no_gradients()
    grads[0] = e.op("Mul", _spread(ctx, ctx.dy, axes), direction)
    return grads


def _axes_input(ctx: RuleContext):
    """Return the reduced axes as a tensor name, a list from the attribute, or None for all axes.

    ReduceSum takes axes as an input from opset 13, ReduceMean and ReduceL2
    from opset 18. Before that they have an `axes` attribute.
    """
    if ctx.input(1):
        return ctx.input(1)
    axes = ctx.attr("axes")
    return list(axes) if axes is not None else None


def _spread(ctx: RuleContext, reduced: str, axes) -> str:
    """Broadcast a tensor shaped like Y (dY, or Y itself) back over the reduced axes of X."""
    e = ctx.emit
    x = ctx.inputs[0]
    if axes is None and int(ctx.attr("noop_with_empty_axes", 0)):
        return reduced

    if axes is not None and not int(ctx.attr("keepdims", 1)):
        axes_tensor = axes if isinstance(axes, str) else e.ints(axes)
        reduced = e.op("Unsqueeze", reduced, axes_tensor)
    return e.op("Expand", reduced, e.shape(x))


def _divide_by_window(ctx: RuleContext, grad: str) -> str:
    """Divide by the number of X elements behind each Y element: size(X) / size(Y)."""
    e = ctx.emit
    x, y = ctx.inputs[0], ctx.outputs[0]
    window = e.op("Div", e.count_as(x, x), e.count_as(y, x))
    return e.op("Div", grad, window)
