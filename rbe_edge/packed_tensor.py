"""PackedTensor: one weight tensor stored as bitplanes with its scales and zero points."""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from rbe_edge import _native

# How a tensor's axes map to the (rows, cols) matrix of the C core.
#   "kn":     2-D MatMul right operand [K, N]; rows are the N columns.
#   "nk":     first axis is rows, the rest flattened into cols
#             (Gemm with transB, Conv [O, I, kh, kw]).
#   "vector": 1-D tensor, one row.
LAYOUTS = ("kn", "nk", "vector")


def matrix_shape(shape: Tuple[int, ...], layout: str) -> Tuple[int, int]:
    """Return (rows, cols) of the matrix view of a tensor."""
    if layout == "kn":
        return shape[1], shape[0]
    if layout == "nk":
        return shape[0], int(np.prod(shape[1:], dtype=np.int64))
    return 1, shape[0]


def to_matrix(tensor: np.ndarray, layout: str) -> np.ndarray:
    """Return the (rows, cols) matrix view of a tensor (a copy if needed)."""
    rows, cols = matrix_shape(tensor.shape, layout)
    if layout == "kn":
        return tensor.T
    return tensor.reshape(rows, cols)


@dataclass
class PackedTensor:
    """A weight tensor stored as bitplanes, most significant plane first.

    Attributes:
        name: tensor name, used in error messages and containers.
        shape: shape of the original tensor.
        layout: how the tensor maps to the matrix of rows x cols (see LAYOUTS).
        bits: code width B.
        group_size: columns sharing one scale and zero point.
        planes: uint8 array [bits, rows, row_stride]; planes[0] is the most
            significant plane.
        scale: float32 array [rows, cols // group_size].
        zero: float32 array [rows, cols // group_size] of integer zero points.
    """

    name: str
    shape: Tuple[int, ...]
    layout: str
    bits: int
    group_size: int
    planes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray

    def __post_init__(self) -> None:
        rows, cols = matrix_shape(tuple(self.shape), self.layout)
        groups = cols // self.group_size if self.group_size else 0
        expected = {
            "planes": (self.planes, np.uint8, (self.bits, rows, _native.row_stride(cols))),
            "scale": (self.scale, np.float32, (rows, groups)),
            "zero": (self.zero, np.float32, (rows, groups)),
        }
        for field, (array, dtype, shape) in expected.items():
            if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
                found = getattr(array, "dtype", type(array).__name__), getattr(array, "shape", None)
                raise ValueError(
                    f"tensor '{self.name}': {field} must be a {np.dtype(dtype)} array of shape "
                    f"{shape}, got {found[0]} {found[1]}"
                )
            if not array.flags.c_contiguous:
                setattr(self, field, np.ascontiguousarray(array))

    @property
    def rows(self) -> int:
        return matrix_shape(self.shape, self.layout)[0]

    @property
    def cols(self) -> int:
        return matrix_shape(self.shape, self.layout)[1]

    @property
    def nbytes(self) -> int:
        """Bytes of planes, scales and zero points."""
        return self.planes.nbytes + self.scale.nbytes + self.zero.nbytes

    def decode(
        self, planes: Optional[int] = None, *, out: Optional[np.ndarray] = None, isa: str = "auto"
    ) -> np.ndarray:
        """Decode with the top `planes` planes (all by default) to float32.

        The result has the original shape. For layout "kn" it is a transposed
        view of the C-contiguous [N, K] matrix the C core writes; pass it to
        `refine` as it is. `out`, if given, must be such a result (or have
        its memory layout); it is overwritten and returned, which saves the
        allocation when decoding repeatedly.
        """
        used = self._check_planes(planes, upper=self.bits)
        if out is None:
            matrix = np.empty((self.rows, self.cols), dtype=np.float32)
        else:
            matrix = self._matrix_of(out, "decode")
        layout = self._layout(isa)
        pointers, keep = _native.plane_pointers(self.planes[:used])

        status = _native.lib.rbe_decode_f32(
            layout, pointers, used,
            _native.pointer(self.scale, "float[]"),
            _native.pointer(self.zero, "float[]"),
            _native.writable_pointer(matrix, "float[]"),
        )
        del keep
        _native.check(status, f"decoding tensor '{self.name}'")
        return self._from_matrix(matrix) if out is None else out

    def refine(self, decoded: np.ndarray, planes: int, *, isa: str = "auto") -> np.ndarray:
        """Turn `decoded`, the result of decode(planes), into decode(planes + 1) in place.

        Reads only plane index `planes`. Returns `decoded`.
        """
        used = self._check_planes(planes, upper=self.bits - 1)
        matrix = self._matrix_of(decoded, "refine")
        layout = self._layout(isa)

        status = _native.lib.rbe_refine_f32(
            layout,
            _native.pointer(self.planes[used], "uint8_t[]"),
            used,
            _native.pointer(self.scale, "float[]"),
            _native.pointer(self.zero, "float[]"),
            _native.writable_pointer(matrix, "float[]"),
        )
        _native.check(status, f"refining tensor '{self.name}'")
        return decoded

    def decode_int8(self, planes: Optional[int] = None, *, isa: str = "auto") -> np.ndarray:
        """Decode to signed 8-bit codes in the original shape (B <= 8).

        The codes are q_P - 2^(B-1), where q_P is the top P bits plus
        2^(B-P-1) (nothing when P == B), the integer half a code above the
        center that decode() uses. So the weight is (code - z) * scale with
        z = zero - 2^(B-1) + 1/2 when P < B and z = zero - 2^(B-1) when P == B.
        """
        if self.bits > 8:
            raise ValueError(
                f"tensor '{self.name}' has {self.bits}-bit codes; int8 decoding needs bits <= 8"
            )
        used = self._check_planes(planes, upper=self.bits)
        matrix = np.empty((self.rows, self.cols), dtype=np.int8)
        pointers, keep = _native.plane_pointers(self.planes[:used])

        status = _native.lib.rbe_decode_i8(
            self._layout(isa), pointers, used, _native.writable_pointer(matrix, "int8_t[]")
        )
        del keep
        _native.check(status, f"decoding tensor '{self.name}' to int8")
        return self._from_matrix(matrix)

    def matmul(
        self, x: np.ndarray, planes: Optional[int] = None, *, threads: int = 1, isa: str = "auto"
    ) -> np.ndarray:
        """Return x @ decode(planes), computed from the planes without a float weight matrix.

        Only for 2-D tensors packed with layout "kn" (a MatMul right operand
        [K, N]). `x` is [M, K] or [K] and is converted to float32; the result
        is float32 [M, N] or [N]. With 1 plane, with 2 planes and up to 4
        rows of x, or with 3 planes and one row, it looks up sums of x in
        tables, one lookup per 4 weights and plane, so the time grows with
        `planes` (when every scale group starts on a 16-column boundary).
        Otherwise it rebuilds the codes of a few hundred columns at a time
        from the plane bits and multiplies, at a cost that depends little on
        `planes`.
        `threads` (1 to 256) splits the output columns between that many
        threads for this call. Results are identical for every ISA and
        thread count; a row of x alone may round differently than inside a
        larger batch. The error is that of float32 sums of x * code and of
        (center - zero) * x per group (see rbe_gemm_f32 in rbe_edge.h), so
        it grows where a zero point lies far from its codes.
        """
        if self.layout != "kn":
            raise ValueError(
                f"matmul of tensor '{self.name}' needs layout 'kn' (a 2-D MatMul right "
                f"operand [K, N]); this tensor has layout {self.layout!r}"
            )
        used = self._check_planes(planes, upper=self.bits)
        batch = self._as_activations(x)
        _native.check_threads(threads)

        y = np.empty((batch.shape[0], self.rows), dtype=np.float32)
        pointers, keep = _native.plane_pointers(self.planes[:used])
        status = _native.lib.rbe_gemm_f32(
            self._layout(isa), pointers, used,
            _native.pointer(self.scale, "float[]"),
            _native.pointer(self.zero, "float[]"),
            _native.pointer(batch, "float[]"),
            batch.shape[0],
            _native.writable_pointer(y, "float[]"),
            int(threads),
        )
        del keep
        _native.check(status, f"matmul with tensor '{self.name}'")
        return y[0] if np.ndim(x) == 1 else y

    def _as_activations(self, x) -> np.ndarray:
        array = np.asarray(x)
        if array.ndim not in (1, 2) or array.shape[-1] != self.cols:
            raise ValueError(
                f"matmul with tensor '{self.name}' of shape {self.shape} needs x of shape "
                f"[M, {self.cols}] or [{self.cols}], got {array.shape}"
            )
        if array.size == 0:
            raise ValueError(f"matmul with tensor '{self.name}': x is empty")
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"matmul with tensor '{self.name}': x must be float, got {array.dtype}")
        return np.ascontiguousarray(array.reshape(-1, self.cols), dtype=np.float32)

    def _layout(self, isa: str):
        return _native.make_layout(self.rows, self.cols, self.bits, self.group_size, isa)

    def _check_planes(self, planes: Optional[int], upper: int) -> int:
        if planes is None:
            return self.bits
        if isinstance(planes, bool) or not isinstance(planes, (int, np.integer)):
            raise TypeError(f"planes must be an int, got {type(planes).__name__}")
        if not 1 <= planes <= upper:
            raise ValueError(
                f"planes={planes} is out of range for tensor '{self.name}': expected 1..{upper}"
            )
        return int(planes)

    def _from_matrix(self, matrix: np.ndarray) -> np.ndarray:
        if self.layout == "kn":
            return matrix.T
        return matrix.reshape(self.shape)

    def _matrix_of(self, decoded: np.ndarray, operation: str) -> np.ndarray:
        """Return the writable C-contiguous matrix behind a decoded array."""
        if not isinstance(decoded, np.ndarray) or decoded.dtype != np.float32:
            raise TypeError(f"{operation} of tensor '{self.name}' needs a float32 numpy array")
        if tuple(decoded.shape) != tuple(self.shape):
            raise ValueError(
                f"{operation} of tensor '{self.name}': buffer shape {decoded.shape} "
                f"does not match the tensor shape {self.shape}"
            )
        # reshape of a non-contiguous array would copy, and the C core would
        # then write to the copy.
        view = decoded.T if self.layout == "kn" else decoded
        if not view.flags.c_contiguous or not view.flags.writeable:
            raise ValueError(
                f"{operation} of tensor '{self.name}' needs a writable array with the memory "
                "layout that decode() returns"
            )
        return view.reshape(self.rows, self.cols)
