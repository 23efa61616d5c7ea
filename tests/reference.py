"""Independent numpy reference of the bitplane format, for checking the C core."""
import numpy as np


def codes_from_planes(packed, planes_used: int) -> np.ndarray:
    """Return q_P (top bits plus 2^(B-P-1)) as int64 [rows, cols], read bit by bit."""
    bits = packed.bits
    unpacked = np.unpackbits(packed.planes, axis=2, bitorder="little")[:, :, : packed.cols]
    top = np.zeros((packed.rows, packed.cols), dtype=np.int64)
    for p in range(planes_used):
        top = (top << 1) | unpacked[p]

    shift = bits - planes_used
    midpoint = (1 << (shift - 1)) if planes_used < bits else 0
    return (top << shift) + midpoint


def decode_matrix(packed, planes_used: int) -> np.ndarray:
    """Decode to a float32 [rows, cols] matrix: (c_P - zero) * scale in float32.

    c_P, the center of the codes sharing the top P bits, is q_P - 1/2 when
    P < B; every step before the multiplication is exact.
    """
    center_shift = 0.5 if planes_used < packed.bits else 0.0
    codes = codes_from_planes(packed, planes_used).astype(np.float32) - np.float32(center_shift)
    scale = np.repeat(packed.scale, packed.group_size, axis=1)
    zero = np.repeat(packed.zero, packed.group_size, axis=1)
    return (codes - zero) * scale


def to_matrix(tensor: np.ndarray, layout: str) -> np.ndarray:
    if layout == "kn":
        return tensor.T
    return tensor.reshape(tensor.shape[0] if layout == "nk" else 1, -1)
