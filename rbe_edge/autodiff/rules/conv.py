"""Gradient rule of Conv (any number of spatial axes, groups, strides, pads, dilations)."""

from rbe_edge.autodiff.context import InputGradients, RuleContext
from rbe_edge.autodiff.rules.windows import Windows, fit_to_input, resolve_windows


def conv(ctx: RuleContext) -> InputGradients:
    """Y = Conv(X, W, B): dX by ConvTranspose, dW by a Conv of X with dY, dB by summing dY."""
    x, w = ctx.input(0), ctx.input(1)
    bias = ctx.input(2)
    kernel = _kernel_shape(ctx, w)
    spatial = len(kernel) if kernel is not None else ctx.rank(w) - 2
    windows = resolve_windows(ctx, x, kernel, spatial)
    group = int(ctx.attr("group", 1))

    grads = ctx.no_gradients()
    if ctx.needs(0):
        grads[0] = _input_gradient(ctx, w, windows, group)
    if ctx.needs(1):
        grads[1] = _weight_gradient(ctx, x, w, windows, group)
    if bias and ctx.needs(2):
        grads[2] = ctx.emit.reduce_sum(ctx.dy, [0] + list(range(2, 2 + spatial)), keepdims=0)
    return grads


def _kernel_shape(ctx: RuleContext, w: str):
    """Return the static kernel shape, or None when neither the attribute nor W's shape gives it."""
    kernel_shape = ctx.attr("kernel_shape")
    if kernel_shape is not None:
        return list(kernel_shape)
    dims = ctx.emit.info(w).dims
    if dims is None or not all(isinstance(d, int) for d in dims[2:]):
        return None
    return list(dims[2:])


def _input_gradient(ctx: RuleContext, w: str, windows: Windows, group: int) -> str:
    """dX: ConvTranspose of dY with W, fitted to X's extent."""
    spread = ctx.emit.op(
        "ConvTranspose",
        ctx.dy,
        w,
        strides=windows.strides,
        dilations=windows.dilations,
        group=group,
    )
    return fit_to_input(ctx, spread, ctx.inputs[0], windows)


def _weight_gradient(ctx: RuleContext, x: str, w: str, windows: Windows, group: int) -> str:
    """dW[o, c, k] = sum over n and positions i of dY[n, o, i] * Xpad[n, c, i*stride + k*dilation].

    That is a Conv with the roles swapped: channels of X become the batch,
    the batch becomes channels, dY is the kernel, stride and dilation trade
    places. Groups stay groups once X and dY are regrouped so that each
    group's batch-as-channels block is contiguous. The result can run past
    the kernel extent at the end, so it is cut to W's shape.
    """
    e = ctx.emit
    spatial = windows.spatial
    spatial_perm = list(range(3, 3 + spatial))
    if group == 1:
        swap_first_two = [1, 0] + list(range(2, 2 + spatial))
        x_as_batch = e.op("Transpose", x, perm=swap_first_two)
        dy_as_kernel = e.op("Transpose", ctx.dy, perm=swap_first_two)
    else:
        x_as_batch = _regroup_input(ctx, x, group, spatial_perm)
        dy_as_kernel = _regroup_output_gradient(ctx, group, spatial_perm)

    swapped = e.op(
        "Conv",
        x_as_batch,
        dy_as_kernel,
        strides=windows.dilations,
        dilations=windows.strides,
        pads=windows.pads,
        group=group,
    )
    weight_layout = e.op("Transpose", swapped, perm=[1, 0] + list(range(2, 2 + spatial)))
    axes = e.ints(list(range(2, 2 + spatial)))
    return e.op("Slice", weight_layout, e.ints([0] * spatial), e.shape_slice(w, 2), axes)


def _regroup_input(ctx: RuleContext, x: str, group: int, spatial_perm) -> str:
    """[N, g*Cg, *S] -> [Cg, g*N, *S], where channel j*N + n is group j of example n."""
    e = ctx.emit
    batch = e.shape_slice(x, 0, 1)
    split_shape = e.op("Concat", batch, e.ints([group, -1]), e.shape_slice(x, 2), axis=0)
    grouped = e.op("Reshape", x, split_shape)
    moved = e.op("Transpose", grouped, perm=[2, 1, 0] + spatial_perm)
    merged_shape = e.op("Concat", e.ints([0, -1]), e.shape_slice(x, 2), axis=0)
    return e.op("Reshape", moved, merged_shape)


def _regroup_output_gradient(ctx: RuleContext, group: int, spatial_perm) -> str:
    """dY [N, g*Og, *S] -> [g*Og, N, *S], a kernel with N input channels per group."""
    e = ctx.emit
    dy = ctx.dy
    y = ctx.outputs[0]
    batch = e.shape_slice(y, 0, 1)
    split_shape = e.op("Concat", batch, e.ints([group, -1]), e.shape_slice(y, 2), axis=0)
    grouped = e.op("Reshape", dy, split_shape)
    moved = e.op("Transpose", grouped, perm=[1, 2, 0] + spatial_perm)
    merged_shape = e.op("Concat", e.ints([-1]), batch, e.shape_slice(y, 2), axis=0)
    return e.op("Reshape", moved, merged_shape)
