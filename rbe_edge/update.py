"""Upper-bitplane updates: the training step that changes only the top planes.

A weight's code q splits into an upper part (the top `upper_planes` planes)
and a lower part. A step moves the upper part by whole units against the
gradient, clamped so codes never wrap. The lower planes do not change until
`fold_lsb` folds the accumulated remainder into them.
"""
from typing import Optional

import numpy as np

from rbe_edge import _native
from rbe_edge.packed_tensor import PackedTensor

MODES = {"accumulate": 0, "sign": 1}


def new_accumulator(packed: PackedTensor) -> np.ndarray:
    """Return the zeroed int8 training state of a tensor: one byte per weight."""
    return np.zeros((packed.rows, packed.cols), dtype=np.int8)


def update_upper(
    packed: PackedTensor,
    grad: np.ndarray,
    *,
    upper_planes: int,
    learning_rate: float,
    mode: str = "accumulate",
    accum: Optional[np.ndarray] = None,
    seed: int = 0,
    step: int = 0,
    isa: str = "auto",
) -> None:
    """Apply one upper-bitplane step to `packed.planes` in place.

    Args:
        packed: the tensor to train; its planes change in place.
        grad: gradient of the loss with respect to the decoded weight, in
            the tensor's original shape.
        upper_planes: U, the number of top planes a step may change (1..bits).
        learning_rate: positive step size, in weight units per gradient unit.
        mode: "accumulate" (needs `accum` from new_accumulator) or "sign".
        accum: int8 [rows, cols] state, updated in place in accumulate mode.
        seed, step: select the stochastic rounding stream; the same seed and
            step repeat the same result.

    Raises:
        ValueError: bad mode, shapes, learning rate or non-finite gradients
            (the C core checks before writing anything).
    """
    if mode not in MODES:
        raise ValueError(f"unknown update mode {mode!r}; expected one of {sorted(MODES)}")
    matrix_grad = _gradient_matrix(packed, grad)
    if mode == "accumulate":
        _check_accumulator(packed, accum)

    params = _native.ffi.new("rbe_update_params *")
    params.upper_planes = int(upper_planes)
    params.mode = MODES[mode]
    params.learning_rate = float(learning_rate)
    params.seed = int(seed) & (2**64 - 1)
    params.step = int(step) & (2**64 - 1)
    pointers, keep = _native.plane_pointers(list(packed.planes), writable=True)
    accum_pointer = (_native.writable_pointer(accum, "int8_t[]") if mode == "accumulate"
                     else _native.ffi.NULL)

    status = _native.lib.rbe_update_upper(
        packed._layout(isa), pointers, _native.pointer(packed.scale, "float[]"),
        _native.pointer(matrix_grad, "float[]"), accum_pointer, params,
    )
    del keep
    _raise_for_update(status, packed, upper_planes, learning_rate)


def fold_lsb(packed: PackedTensor, accum: np.ndarray, *, upper_planes: int,
             isa: str = "auto") -> None:
    """Fold accumulated remainders into the lower planes (LSB re-estimation), in place."""
    _check_accumulator(packed, accum)
    pointers, keep = _native.plane_pointers(list(packed.planes), writable=True)
    status = _native.lib.rbe_fold_lsb(
        packed._layout(isa), pointers, _native.writable_pointer(accum, "int8_t[]"),
        int(upper_planes),
    )
    del keep
    _raise_for_update(status, packed, upper_planes, None)


def _gradient_matrix(packed: PackedTensor, grad) -> np.ndarray:
    grad = np.asarray(grad)
    if grad.shape != tuple(packed.shape):
        raise ValueError(
            f"gradient for tensor '{packed.name}' has shape {grad.shape}; "
            f"expected the tensor shape {packed.shape}"
        )
    matrix = grad.T if packed.layout == "kn" else grad.reshape(packed.rows, packed.cols)
    return np.ascontiguousarray(matrix, dtype=np.float32)


def _check_accumulator(packed: PackedTensor, accum) -> None:
    expected = (packed.rows, packed.cols)
    if not isinstance(accum, np.ndarray) or accum.dtype != np.int8 or accum.shape != expected:
        raise ValueError(
            f"tensor '{packed.name}' needs an int8 accumulator of shape {expected} "
            "(see new_accumulator)"
        )
    if not accum.flags.c_contiguous or not accum.flags.writeable:
        raise ValueError(f"the accumulator of tensor '{packed.name}' must be writable and contiguous")


def _raise_for_update(status: int, packed: PackedTensor, upper_planes, learning_rate) -> None:
    if status == _native.lib.RBE_ERR_PLANES:
        raise ValueError(
            f"upper_planes={upper_planes} is out of range for tensor '{packed.name}': "
            f"expected 1..{packed.bits}"
        )
    if status == _native.lib.RBE_ERR_VALUE:
        raise ValueError(
            f"update of tensor '{packed.name}' rejected: the learning rate "
            f"({learning_rate}) must be positive and finite and every gradient finite"
        )
    _native.check(status, f"updating tensor '{packed.name}'")
