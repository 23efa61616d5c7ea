"""Quantization of float weights to B-bit codes and their bitplanes."""
from typing import Optional

import numpy as np

from rbe_edge import _native
from rbe_edge.packed_tensor import LAYOUTS, PackedTensor, matrix_shape, to_matrix

# The C core needs scales of at least twice the smallest normal float32, so
# that half a code step times the scale is still normal.
SMALLEST_SCALE = 2.0 * float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def quantize(
    w: np.ndarray,
    bits: int = 8,
    group_size: Optional[int] = None,
    *,
    name: str = "tensor",
    layout: Optional[str] = None,
) -> PackedTensor:
    """Quantize a float tensor to `bits`-bit codes stored as bitplanes.

    Each row (or group of `group_size` columns of a row) gets an affine
    scale and integer zero point covering its range extended to include 0,
    so zeros stay exact at full precision. Codes round to nearest.

    Args:
        w: float16, float32 or float64 array of 1 to 4 dimensions.
        bits: code width B, 2..16.
        group_size: columns per scale group; None for one group per row.
        name: tensor name used in error messages.
        layout: "kn" (default for 2-D: a MatMul right operand [K, N], one
            row per output column), "nk" (default for 3-D and 4-D: the
            first axis is rows, as in Gemm with transB or Conv weights) or
            "vector" (the only choice for 1-D).

    Raises:
        TypeError: `w` is not a float numpy array.
        ValueError: bad shape, bits, group size or layout, or NaN/Inf values.
    """
    tensor = _validate_tensor(w, name)
    layout = _resolve_layout(tensor.shape, layout, name)
    rows, cols = matrix_shape(tensor.shape, layout)
    bits = _validate_bits(bits, name)
    group = _validate_group_size(group_size, cols, name)

    matrix = np.ascontiguousarray(to_matrix(tensor, layout), dtype=np.float64)
    grouped = matrix.reshape(rows, cols // group, group)
    scale, zero = _choose_scale_zero(grouped, bits)
    codes = _round_codes(grouped, scale, zero, bits).reshape(rows, cols)

    planes = encode_codes(codes, bits, group, name)
    return PackedTensor(
        name=name,
        shape=tuple(int(d) for d in tensor.shape),
        layout=layout,
        bits=bits,
        group_size=group,
        planes=planes,
        scale=np.ascontiguousarray(scale, dtype=np.float32),
        zero=np.ascontiguousarray(zero, dtype=np.float32),
    )


def encode_codes(codes: np.ndarray, bits: int, group_size: int, name: str = "tensor") -> np.ndarray:
    """Pack a [rows, cols] array of integer codes into planes [bits, rows, row_stride]."""
    rows, cols = codes.shape
    codes16 = np.ascontiguousarray(codes, dtype=np.uint16)
    planes = np.empty((bits, rows, _native.row_stride(cols)), dtype=np.uint8)
    layout = _native.make_layout(rows, cols, bits, group_size)
    pointers, keep = _native.plane_pointers(list(planes))

    status = _native.lib.rbe_encode(layout, _native.pointer(codes16, "uint16_t[]"), pointers)
    del keep
    _native.check(status, f"encoding tensor '{name}'")
    return planes


def _validate_tensor(w, name: str) -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise TypeError(f"tensor '{name}' must be a numpy array, got {type(w).__name__}")
    if w.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(
            f"tensor '{name}' has dtype {w.dtype}; quantize takes float16, float32 or float64"
        )
    if not 1 <= w.ndim <= 4:
        raise ValueError(f"tensor '{name}' has {w.ndim} dimensions; quantize takes 1 to 4")
    if w.size == 0:
        raise ValueError(f"tensor '{name}' is empty (shape {w.shape})")

    bad = int(w.size - np.count_nonzero(np.isfinite(w)))
    if bad:
        raise ValueError(
            f"tensor '{name}' has {bad} NaN or Inf values out of {w.size}; "
            "fix the weights before quantizing"
        )
    return w


def _resolve_layout(shape, layout: Optional[str], name: str) -> str:
    if layout is None:
        return {1: "vector", 2: "kn"}.get(len(shape), "nk")
    if layout not in LAYOUTS:
        raise ValueError(f"tensor '{name}': unknown layout {layout!r}; expected one of {LAYOUTS}")
    if (layout == "vector") != (len(shape) == 1) or (layout == "kn" and len(shape) != 2):
        raise ValueError(
            f"tensor '{name}': layout {layout!r} does not fit a {len(shape)}-D tensor"
        )
    return layout


def _validate_bits(bits, name: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"tensor '{name}': bits must be an int, got {type(bits).__name__}")
    if not 2 <= bits <= 16:
        raise ValueError(f"tensor '{name}': bits={bits} is out of range; expected 2..16")
    return int(bits)


def _validate_group_size(group_size, cols: int, name: str) -> int:
    if group_size is None:
        return cols
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise TypeError(f"tensor '{name}': group_size must be an int or None")
    if group_size <= 0 or cols % group_size != 0:
        raise ValueError(
            f"tensor '{name}': group_size={group_size} must be positive and divide "
            f"the {cols} columns of each row"
        )
    return int(group_size)


def _choose_scale_zero(grouped: np.ndarray, bits: int):
    """Return float64 (scale, zero) of shape [rows, groups], representable in float32."""
    max_code = float(2**bits - 1)
    low = np.minimum(grouped.min(axis=2), 0.0)
    high = np.maximum(grouped.max(axis=2), 0.0)

    # All-zero groups get the smallest allowed scale so that even the
    # midpoint of a truncated decode stays within 2^-110 of zero.
    scale = (high - low) / max_code
    scale = np.where(scale > 0.0, scale, SMALLEST_SCALE)
    scale = np.maximum(scale.astype(np.float32).astype(np.float64), SMALLEST_SCALE)

    zero = np.clip(np.rint(-low / scale), 0.0, max_code)

    # Ranges close to +-FLOAT32_MAX would decode past it; shrink the scale so
    # the largest decoded magnitude stays finite (the extremes then clip).
    span = np.maximum(zero, max_code - zero)
    too_large = scale * span > FLOAT32_MAX
    if np.any(too_large):
        limited = (FLOAT32_MAX / span).astype(np.float32)
        limited = np.nextafter(limited, np.float32(0)).astype(np.float64)
        scale = np.where(too_large, limited, scale)
    return scale, zero


def _round_codes(grouped: np.ndarray, scale: np.ndarray, zero: np.ndarray, bits: int):
    max_code = float(2**bits - 1)
    codes = np.rint(grouped / scale[:, :, None] + zero[:, :, None])
    return np.clip(codes, 0.0, max_code).astype(np.uint16)
