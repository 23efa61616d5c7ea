"""Gradient rules of LayerNormalization and BatchNormalization (inference mode)."""

from rbe_edge.autodiff.context import InputGradients, RuleContext
from rbe_edge.autodiff.errors import AutodiffError


def layer_normalization(ctx: RuleContext) -> InputGradients:
    """Y = (X - mean) * inv_std * Scale + B over the axes from `axis` to the last.

    With X flattened to [rows, cols] at `axis` and xhat = (X - mean) * inv_std:
    dxhat = dY * Scale, dX = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
    dScale = sum over rows of dY * xhat, dB = sum over rows of dY.
    mean and inv_std are recomputed from X in the input's own type, so a
    float64 graph stays float64 whatever the `stash_type` attribute is.
    """
    e = ctx.emit
    x, scale = ctx.input(0), ctx.input(1)
    bias = ctx.input(2)
    axis = int(ctx.attr("axis", -1))
    epsilon = float(ctx.attr("epsilon", 1e-5))

    x2 = e.op("Flatten", x, axis=axis)
    dy2 = e.op("Flatten", ctx.dy, axis=axis)
    centered = e.op("Sub", x2, e.reduce_mean(x2, [1], keepdims=1))
    variance = e.reduce_mean(e.op("Mul", centered, centered), [1], keepdims=1)
    inv_std = e.op("Reciprocal", e.op("Sqrt", e.op("Add", variance, e.scalar(epsilon, x))))
    xhat = e.op("Mul", centered, inv_std)
    grads = ctx.no_gradients()

    if ctx.needs(0):
        dxhat = e.op("Mul", dy2, e.op("Flatten", scale, axis=0))
        mean_dxhat = e.reduce_mean(dxhat, [1], keepdims=1)
        mean_dxhat_xhat = e.reduce_mean(e.op("Mul", dxhat, xhat), [1], keepdims=1)
        inner = e.op("Sub", e.op("Sub", dxhat, mean_dxhat), e.op("Mul", xhat, mean_dxhat_xhat))
        grads[0] = e.op("Reshape", e.op("Mul", inner, inv_std), e.shape(x))

    if ctx.needs(1):
        dscale = e.reduce_sum(e.op("Mul", dy2, xhat), [0], keepdims=0)
        grads[1] = e.op("Reshape", dscale, e.shape(scale))

    if bias and ctx.needs(2):
        grads[2] = e.op("Reshape", e.reduce_sum(dy2, [0], keepdims=0), e.shape(bias))
    return grads


def batch_normalization(ctx: RuleContext) -> InputGradients:
    """Inference mode: Y = (X - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1).

    The running mean and variance are statistics, not parameters, so they get
    no gradient. dX = dY * scale * inv_std, dScale = sum of dY * xhat and
    dB = sum of dY over every axis but the channel axis.
    """
    e = ctx.emit
    x, scale, bias, mean, variance = ctx.inputs[:5]
    if int(ctx.attr("training_mode", 0)):
        raise AutodiffError(
            f"node {ctx.label!r} (BatchNormalization): training_mode=1 is not supported; "
            f"export the model in inference mode"
        )
    epsilon = float(ctx.attr("epsilon", 1e-5))
    other_axes = [0] + list(range(2, ctx.rank(x)))

    def per_channel(vector: str) -> str:
        return e.op("Unsqueeze", vector, e.ints(other_axes))

    inv_std = e.op("Reciprocal", e.op("Sqrt", e.op("Add", variance, e.scalar(epsilon, variance))))
    grads = ctx.no_gradients()

    if ctx.needs(0):
        grads[0] = e.op("Mul", ctx.dy, per_channel(e.op("Mul", scale, inv_std)))
    if ctx.needs(1):
        xhat = e.op("Mul", e.op("Sub", x, per_channel(mean)), per_channel(inv_std))
        grads[1] = e.reduce_sum(e.op("Mul", ctx.dy, xhat), other_axes, keepdims=0)
    if ctx.needs(2):
        grads[2] = e.reduce_sum(ctx.dy, other_axes, keepdims=0)
    return grads
