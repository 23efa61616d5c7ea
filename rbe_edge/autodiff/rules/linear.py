"""Gradient rules of MatMul and Gemm."""

from rbe_edge.autodiff.context import InputGradients, RuleContext


def matmul(ctx: RuleContext) -> InputGradients:
    """Y = A @ B with numpy semantics: batched, broadcasting, 1-D operands promoted.

    dA = dY @ B^T and dB = A^T @ dY on the promoted operands, each summed
    over the batch dims it was broadcast along.
    """
    e = ctx.emit
    a, b = ctx.inputs
    rank_a, rank_b = ctx.rank(a), ctx.rank(b)

    # A 1-D left operand [K] acts as [1, K], a 1-D right operand [K] as [K, 1];
    # dY lacks the matching unit dims, so they are put back first.
    a2 = e.op("Unsqueeze", a, e.ints([0])) if rank_a == 1 else a
    b2 = e.op("Unsqueeze", b, e.ints([1])) if rank_b == 1 else b
    dy = ctx.dy
    if rank_b == 1:
        dy = e.op("Unsqueeze", dy, e.ints([-1]))
    if rank_a == 1:
        dy = e.op("Unsqueeze", dy, e.ints([-2]))

    rank_a2, rank_b2 = max(rank_a, 2), max(rank_b, 2)
    batch_dims = _batch_dims(ctx, max(rank_a2, rank_b2) - 2)
    grads = ctx.no_gradients()

    if ctx.needs(0):
        da = e.op("MatMul", dy, _swap_last_two(ctx, b2, rank_b2))
        da = e.reduce_to(da, a2, _gradient_dims(ctx, batch_dims, a, left=True))
        grads[0] = e.op("Reshape", da, e.shape(a)) if rank_a == 1 else da

    if ctx.needs(1):
        db = e.op("MatMul", _swap_last_two(ctx, a2, rank_a2), dy)
        db = e.reduce_to(db, b2, _gradient_dims(ctx, batch_dims, b, left=False))
        grads[1] = e.op("Reshape", db, e.shape(b)) if rank_b == 1 else db
    return grads


def gemm(ctx: RuleContext) -> InputGradients:
    """Y = alpha * A' @ B' + beta * C, with A' = A^T if transA and B' = B^T if transB.

    dA' = alpha * dY @ B'^T and dB' = alpha * A'^T @ dY, each written as one
    Gemm whose flags fold the transposes; dC = beta * dY summed to C's shape.
    """
    e = ctx.emit
    a, b = ctx.input(0), ctx.input(1)
    c = ctx.input(2)
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    trans_a = int(ctx.attr("transA", 0))
    trans_b = int(ctx.attr("transB", 0))
    dy = ctx.dy
    grads = ctx.no_gradients()

    if ctx.needs(0):
        if trans_a:
            grads[0] = e.op("Gemm", b, dy, alpha=alpha, transA=trans_b, transB=1)
        else:
            grads[0] = e.op("Gemm", dy, b, alpha=alpha, transB=1 - trans_b)

    if ctx.needs(1):
        if trans_b:
            grads[1] = e.op("Gemm", dy, a, alpha=alpha, transA=1, transB=trans_a)
        else:
            grads[1] = e.op("Gemm", a, dy, alpha=alpha, transA=1 - trans_a)

    if c and ctx.needs(2):
        dc = dy if beta == 1.0 else e.op("Mul", dy, e.scalar(beta, ctx.outputs[0]))
        grads[2] = e.reduce_to(dc, c, e.info(ctx.outputs[0]).dims)
    return grads


def _swap_last_two(ctx: RuleContext, x: str, rank: int) -> str:
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return ctx.emit.op("Transpose", x, perm=perm)


def _batch_dims(ctx: RuleContext, batch_rank: int):
    """Return the static batch dims of the output, or None when unknown."""
    out_dims = ctx.emit.info(ctx.outputs[0]).dims
    if out_dims is None or len(out_dims) < batch_rank:
        return None
    return tuple(out_dims[:batch_rank])


def _gradient_dims(ctx: RuleContext, batch_dims, operand: str, left: bool):
    """Return the static dims of a promoted operand's gradient before reduction, or None."""
    dims = ctx.emit.info(operand).dims
    if batch_dims is None or dims is None:
        return None
    if len(dims) == 1:
        matrix = (1,) + tuple(dims) if left else tuple(dims) + (1,)
    else:
        matrix = tuple(dims[-2:])
    return batch_dims + matrix
