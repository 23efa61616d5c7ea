"""Training a dense layer on its bitplanes: the backward pass without float weights.

A dense layer stored as a PackedTensor computes y = x @ M.T, where M is the
(rows, cols) matrix view of its decoded weight (for layout "kn", M is W.T
and y = x @ W). The functions here give the rest of a training step:

- gemm_t: the input gradient dx = dy @ M, decoded a small tile at a time.
- grad_sum_squares: the squared norm of the weight gradient dy.T @ x, for
  gradient clipping, without forming that gradient.
- dense_update: one upper-bitplane step from x and dy, computing the weight
  gradient a few rows at a time so no float matrix of the weight's size exists.
"""
from typing import Optional

import numpy as np

from rbe_edge import _native
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.update import MODES, _check_accumulator


def gemm_t(packed: PackedTensor, dy: np.ndarray, planes: Optional[int] = None, *,
           threads: int = 1, isa: str = "auto") -> np.ndarray:
    """Return dx = dy @ M, the input gradient of the layer, without decoding M.

    Args:
        packed: the layer's weight; M is its (rows, cols) matrix view decoded
            with the top `planes` planes (all by default).
        dy: gradient of the layer output, float, [batch, rows] or [rows].
        planes: planes to decode, 1..bits.
        threads: threads that split the output columns for this call.
        isa: kernel family ("auto", "scalar", "avx2", "avx512", "neon").

    Returns:
        float32 [batch, cols], or [cols] for a 1-D dy. Each element adds its
        float32 products in increasing row order, so the result is identical
        for every ISA and thread count and equals the float32 loop over
        packed.decode(planes).
    """
    used = packed._check_planes(planes, upper=packed.bits)
    batch = _as_rows(packed, dy, packed.rows, "dy", "gemm_t")
    _native.check_threads(threads)

    dx = np.empty((batch.shape[0], packed.cols), dtype=np.float32)
    pointers, keep = _native.plane_pointers(packed.planes[:used])
    status = _native.lib.rbe_gemm_t_f32(
        packed._layout(isa), pointers, used,
        _native.pointer(packed.scale, "float[]"),
        _native.pointer(packed.zero, "float[]"),
        _native.pointer(batch, "float[]"),
        batch.shape[0],
        _native.writable_pointer(dx, "float[]"),
        int(threads),
    )
    del keep
    _native.check(status, f"gemm_t with tensor '{packed.name}'")
    return dx[0] if np.ndim(dy) == 1 else dx


def grad_sum_squares(x: np.ndarray, dy: np.ndarray) -> float:
    """Return the squared Frobenius norm of the weight gradient dy.T @ x.

    x is [batch, cols] and dy [batch, rows] (or 1-D for one sample). The C
    core uses the Gram identity ||dy.T x||^2 = sum((dy dy.T) * (x x.T)) in
    double, at O(batch^2 * (rows + cols)) cost, and never forms the gradient.
    Non-finite inputs give a non-finite result.
    """
    x_rows = _as_float_matrix(x, "x")
    dy_rows = _as_float_matrix(dy, "dy")
    if x_rows.shape[0] != dy_rows.shape[0]:
        raise ValueError(
            f"x has {x_rows.shape[0]} samples and dy {dy_rows.shape[0]}; they must match"
        )

    result = _native.ffi.new("double *")
    status = _native.lib.rbe_dense_grad_sum_squares(
        dy_rows.shape[1], x_rows.shape[1],
        _native.pointer(x_rows, "float[]"),
        _native.pointer(dy_rows, "float[]"),
        x_rows.shape[0], result,
    )
    _native.check(status, "rbe_dense_grad_sum_squares")
    return float(result[0])


def dense_update(
    packed: PackedTensor,
    x: np.ndarray,
    dy: np.ndarray,
    *,
    upper_planes: int,
    learning_rate: float,
    mode: str = "accumulate",
    accum: Optional[np.ndarray] = None,
    grad_scale: float = 1.0,
    seed: int = 0,
    step: int = 0,
    fold: bool = False,
    isa: str = "auto",
) -> None:
    """Apply one upper-bitplane step to the layer from its input and output gradient.

    The weight gradient with respect to M is G = grad_scale * (dy.T @ x),
    computed in float32 with each element adding its batch products in
    increasing order, then scaled. The planes and accumulator end exactly as
    rbe_edge.update.update_upper would leave them given that G (for layout
    "kn", given G.T, the gradient in the tensor's shape). Only a tile of a
    few gradient rows is ever held in memory.

    Args:
        packed: the layer's weight; its planes change in place.
        x: the layer's forward input, float, [batch, cols] or [cols].
        dy: gradient of the layer output, float, [batch, rows] or [rows].
        upper_planes: U, the number of top planes a step may change (1..bits).
        learning_rate: positive step size, in weight units per gradient unit.
        mode: "accumulate" (needs `accum` from update.new_accumulator) or "sign".
        accum: int8 [rows, cols] state, updated in place in accumulate mode.
        grad_scale: positive factor on the gradient, for example a clipping
            factor from grad_sum_squares or 1 / batch for a mean loss.
        seed, step: select the stochastic rounding stream.
        fold: in accumulate mode, also fold the accumulator into the lower
            planes in the same pass, as a following update.fold_lsb would.
        isa: kernel family.

    Raises:
        ValueError: bad mode, shapes, learning rate, grad_scale or upper_planes;
            non-finite x or dy; or values so large that a gradient element
            could overflow float32 (2 * max(1, grad_scale) * batch *
            max|dy| * max|x| above the float32 maximum). Nothing is written then.
    """
    if mode not in MODES:
        raise ValueError(f"unknown update mode {mode!r}; expected one of {sorted(MODES)}")
    x_rows = _as_rows(packed, x, packed.cols, "x", "dense_update")
    dy_rows = _as_rows(packed, dy, packed.rows, "dy", "dense_update")
    if x_rows.shape[0] != dy_rows.shape[0]:
        raise ValueError(
            f"dense_update of tensor '{packed.name}': x has {x_rows.shape[0]} samples and "
            f"dy {dy_rows.shape[0]}; they must match"
        )
    if mode == "accumulate":
        _check_accumulator(packed, accum)

    layout = packed._layout(isa)
    workspace = np.empty(_native.lib.rbe_dense_update_workspace(layout), dtype=np.float32)
    params = _native.ffi.new("rbe_update_params *")
    params.upper_planes = int(upper_planes)
    params.mode = MODES[mode]
    params.learning_rate = float(learning_rate)
    params.seed = int(seed) & (2**64 - 1)
    params.step = int(step) & (2**64 - 1)
    pointers, keep = _native.plane_pointers(list(packed.planes), writable=True)
    accum_pointer = (_native.writable_pointer(accum, "int8_t[]") if mode == "accumulate"
                     else _native.ffi.NULL)

    status = _native.lib.rbe_dense_update(
        layout, pointers, _native.pointer(packed.scale, "float[]"),
        _native.pointer(x_rows, "float[]"), _native.pointer(dy_rows, "float[]"),
        x_rows.shape[0], float(grad_scale), accum_pointer, params, 1 if fold else 0,
        _native.writable_pointer(workspace, "float[]"), workspace.size,
    )
    del keep
    _raise_for_dense_update(status, packed, upper_planes, learning_rate, grad_scale)


def _as_rows(packed: PackedTensor, values, width: int, name: str, operation: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim not in (1, 2) or array.shape[-1] != width or array.size == 0:
        raise ValueError(
            f"{operation} with tensor '{packed.name}' needs {name} of shape "
            f"[batch, {width}] or [{width}], got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{operation} with tensor '{packed.name}': {name} must be float, "
                        f"got {array.dtype}")
    return np.ascontiguousarray(array.reshape(-1, width), dtype=np.float32)


def _as_float_matrix(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(f"{name} must be a non-empty [batch, features] or [features] array, "
                         f"got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must be float, got {array.dtype}")
    return np.ascontiguousarray(array.reshape(-1, array.shape[-1]), dtype=np.float32)


def _raise_for_dense_update(status: int, packed: PackedTensor, upper_planes, learning_rate,
                            grad_scale) -> None:
    if status == _native.lib.RBE_ERR_PLANES:
        raise ValueError(
            f"upper_planes={upper_planes} is out of range for tensor '{packed.name}': "
            f"expected 1..{packed.bits}"
        )
    if status == _native.lib.RBE_ERR_VALUE:
        raise ValueError(
            f"dense_update of tensor '{packed.name}' rejected: the learning rate "
            f"({learning_rate}) and grad_scale ({grad_scale}) must be positive and finite, "
            "x and dy finite, and 2 * max(1, grad_scale) * batch * max|dy| * max|x| at most "
            "the float32 maximum"
        )
    _native.check(status, f"dense_update of tensor '{packed.name}'")
