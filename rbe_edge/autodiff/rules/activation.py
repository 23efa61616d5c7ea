"""Gradient rules of the elementwise activations and Clip."""

import math

from rbe_edge.autodiff.context import InputGradients, RuleContext

# Tanh approximation of Gelu: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))).
GELU_TANH_COEFF = 0.044715


def relu(ctx: RuleContext) -> InputGradients:
    """Y = max(X, 0): dX = dY where X > 0, else 0."""
    e = ctx.emit
    x = ctx.inputs[0]
    positive = e.op("Greater", x, e.scalar(0.0, x))
    return [e.op("Where", positive, ctx.dy, e.scalar(0.0, x))]


def leaky_relu(ctx: RuleContext) -> InputGradients:
    """Y = X if X > 0 else alpha * X: dX = dY or alpha * dY."""
    e = ctx.emit
    x = ctx.inputs[0]
    alpha = float(ctx.attr("alpha", 0.01))
    positive = e.op("Greater", x, e.scalar(0.0, x))
    return [e.op("Where", positive, ctx.dy, e.op("Mul", ctx.dy, e.scalar(alpha, x)))]


def sigmoid(ctx: RuleContext) -> InputGradients:
    """Y = 1 / (1 + exp(-X)): dX = dY * Y * (1 - Y)."""
    e = ctx.emit
    y = ctx.outputs[0]
    slope = e.op("Mul", y, e.op("Sub", e.scalar(1.0, y), y))
    return [e.op("Mul", ctx.dy, slope)]


def tanh(ctx: RuleContext) -> InputGradients:
    """Y = tanh(X): dX = dY * (1 - Y^2)."""
    e = ctx.emit
    y = ctx.outputs[0]
    slope = e.op("Sub", e.scalar(1.0, y), e.op("Mul", y, y))
    return [e.op("Mul", ctx.dy, slope)]


def erf(ctx: RuleContext) -> InputGradients:
    """Y = erf(X): dX = dY * 2 / sqrt(pi) * exp(-X^2)."""
    e = ctx.emit
    x = ctx.inputs[0]
    density = e.op("Exp", e.op("Neg", e.op("Mul", x, x)))
    slope = e.op("Mul", density, e.scalar(2.0 / math.sqrt(math.pi), x))
    return [e.op("Mul", ctx.dy, slope)]


def gelu(ctx: RuleContext) -> InputGradients:
    """Gelu (opset 20), exact or with approximate="tanh"."""
    if ctx.attr("approximate", b"none") in (b"tanh", "tanh"):
        return [ctx.emit.op("Mul", ctx.dy, _gelu_tanh_slope(ctx))]
    return [ctx.emit.op("Mul", ctx.dy, _gelu_exact_slope(ctx))]


def _gelu_exact_slope(ctx: RuleContext) -> str:
    """d/dx [x * Phi(x)] = Phi(x) + x * phi(x), Phi and phi the normal CDF and density."""
    e = ctx.emit
    x = ctx.inputs[0]
    scaled = e.op("Mul", x, e.scalar(1.0 / math.sqrt(2.0), x))
    cdf = e.op("Mul", e.op("Add", e.op("Erf", scaled), e.scalar(1.0, x)), e.scalar(0.5, x))
    half_square = e.op("Mul", e.op("Mul", x, x), e.scalar(-0.5, x))
    pdf = e.op("Mul", e.op("Exp", half_square), e.scalar(1.0 / math.sqrt(2.0 * math.pi), x))
    return e.op("Add", cdf, e.op("Mul", x, pdf))


def _gelu_tanh_slope(ctx: RuleContext) -> str:
    """With u = c * (x + k x^3) and t = tanh(u): 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)."""
    e = ctx.emit
    x = ctx.inputs[0]
    c = e.scalar(math.sqrt(2.0 / math.pi), x)
    square = e.op("Mul", x, x)
    inner = e.op("Add", x, e.op("Mul", e.op("Mul", square, x), e.scalar(GELU_TANH_COEFF, x)))
    t = e.op("Tanh", e.op("Mul", inner, c))

    cubic_slope = e.op("Mul", square, e.scalar(3.0 * GELU_TANH_COEFF, x))
    du = e.op("Mul", c, e.op("Add", e.scalar(1.0, x), cubic_slope))
    dt = e.op("Sub", e.scalar(1.0, x), e.op("Mul", t, t))
    half = e.scalar(0.5, x)
    outer = e.op("Mul", e.op("Add", e.scalar(1.0, x), t), half)
    return e.op("Add", outer, e.op("Mul", e.op("Mul", e.op("Mul", x, half), dt), du))


def clip(ctx: RuleContext) -> InputGradients:
    """Y = min(max(X, min), max), for min <= max.

    dX = dY where min <= X <= max; dY where X < min goes to min, where X > max to max.
    """
    e = ctx.emit
    x = ctx.inputs[0]
    low, high = ctx.input(1), ctx.input(2)
    zero = e.scalar(0.0, x)
    grads = ctx.no_gradients()

    inside = None
    if low:
        inside = e.op("GreaterOrEqual", x, low)
    if high:
        below_high = e.op("LessOrEqual", x, high)
        inside = below_high if inside is None else e.op("And", inside, below_high)

    if ctx.needs(0):
        grads[0] = ctx.dy if inside is None else e.op("Where", inside, ctx.dy, zero)
    if low and ctx.needs(1):
        clipped_low = e.op("Where", e.op("Less", x, low), ctx.dy, zero)
        grads[1] = e.reduce_to(clipped_low, low)
    if high and ctx.needs(2):
        clipped_high = e.op("Where", e.op("Greater", x, high), ctx.dy, zero)
        grads[2] = e.reduce_to(clipped_high, high)
    return grads


def abs_(ctx: RuleContext) -> InputGradients:
    """Y = |X|: dX = dY * sign(X), 0 at X = 0."""
    e = ctx.emit
    return [e.op("Mul", ctx.dy, e.op("Sign", ctx.inputs[0]))]
