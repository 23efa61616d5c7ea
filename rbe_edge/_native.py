"""The bridge to the C core: loads the cffi extension, converts numpy arrays
to pointers and status codes to exceptions. No other module touches cffi.
"""
from pathlib import Path
from typing import Sequence

import numpy as np

from rbe_edge.errors import NativeError

def _missing_extension_message() -> str:
    package = Path(__file__).resolve().parent
    if (package.parent / "pyproject.toml").is_file():
        # A source checkout on sys.path (the current folder) hides an
        # installed copy that has the compiled extension.
        return (f"rbe_edge was imported from the source checkout {package.parent}, whose C "
                "extension is not built; run from another folder to use the installed "
                "package, or build it in place with `pip install -e .`")
    return ("rbe_edge's C extension is missing; install the package with `pip install .` "
            "(or `pip install -e .`) so that cffi compiles native/")


try:
    from rbe_edge._native_lib import ffi, lib
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(_missing_extension_message()) from error

ISA_BY_NAME = {
    "auto": lib.RBE_ISA_AUTO,
    "scalar": lib.RBE_ISA_SCALAR,
    "avx2": lib.RBE_ISA_AVX2,
    "neon": lib.RBE_ISA_NEON,
    "avx512": lib.RBE_ISA_AVX512,
}
ISA_NAMES = {value: name for name, value in ISA_BY_NAME.items()}

KERNELS = {
    "encode": lib.RBE_KERNEL_ENCODE,
    "unpack": lib.RBE_KERNEL_UNPACK,
    "dequant_f32": lib.RBE_KERNEL_DEQUANT_F32,
    "refine_f32": lib.RBE_KERNEL_REFINE_F32,
    "dequant_i8": lib.RBE_KERNEL_DEQUANT_I8,
    "gemm_f32": lib.RBE_KERNEL_GEMM_F32,
    "update_upper": lib.RBE_KERNEL_UPDATE_UPPER,
    "gemm_t_f32": lib.RBE_KERNEL_GEMM_T_F32,
    "dense_grad": lib.RBE_KERNEL_DENSE_GRAD,
    "fold_lsb": lib.RBE_KERNEL_FOLD_LSB,
}


def check(status: int, operation: str) -> None:
    """Raise NativeError unless `status` is RBE_OK."""
    if status != lib.RBE_OK:
        message = ffi.string(lib.rbe_status_message(status)).decode("utf-8")
        if status == lib.RBE_ERR_MEMORY:
            raise MemoryError(f"{operation} failed: {message}")
        if status == lib.RBE_ERR_ISA:
            message += f"; this CPU runs {', '.join(_available_isas())} (or use isa='auto')"
        raise NativeError(operation, int(status), message)


def _available_isas() -> list:
    """Return the ISA families this CPU runs, without raising."""
    names = []
    available = ffi.new("int *")
    for name, value in ISA_BY_NAME.items():
        if value == lib.RBE_ISA_AUTO:
            continue
        if lib.rbe_isa_available(value, available) == lib.RBE_OK and available[0]:
            names.append(name)
    return names


def check_threads(threads) -> None:
    """Raise ValueError unless `threads` is an int from 1 to RBE_MAX_THREADS."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise ValueError(f"threads must be an int from 1 to {lib.RBE_MAX_THREADS}, got {threads!r}")
    if not 1 <= threads <= lib.RBE_MAX_THREADS:
        raise ValueError(f"threads must be from 1 to {lib.RBE_MAX_THREADS}, got {threads}")


def isa_value(isa: str) -> int:
    if isa not in ISA_BY_NAME:
        raise ValueError(f"unknown isa {isa!r}; expected one of {sorted(ISA_BY_NAME)}")
    return ISA_BY_NAME[isa]


def make_layout(rows: int, cols: int, bits: int, group_size: int, isa: str = "auto"):
    """Return an initialized `rbe_layout *` for a rows x cols matrix."""
    layout = ffi.new("rbe_layout *")
    check(lib.rbe_layout_init(layout, rows, cols, bits, group_size), "rbe_layout_init")
    layout.isa = isa_value(isa)
    return layout


def row_stride(cols: int) -> int:
    """Bytes per row inside one plane, as the C core lays it out."""
    return ((cols + 63) // 64) * 8


def pointer(array: np.ndarray, ctype: str):
    """Return a cffi pointer to a C-contiguous array's data."""
    if not array.flags.c_contiguous:
        raise ValueError("internal error: array passed to the C core is not C-contiguous")
    return ffi.from_buffer(ctype, array, require_writable=False)


def writable_pointer(array: np.ndarray, ctype: str):
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError("output buffer must be a writable C-contiguous array")
    return ffi.from_buffer(ctype, array, require_writable=True)


def plane_pointers(planes: Sequence[np.ndarray], writable: bool = False):
    """Return (`uint8_t *[]`, keep-alive list) for a sequence of plane buffers."""
    buffers = [ffi.from_buffer("uint8_t[]", plane, require_writable=writable) for plane in planes]
    array = ffi.new("uint8_t *[]", len(buffers))
    for index, buffer in enumerate(buffers):
        array[index] = buffer
    return array, buffers


def selected_isa() -> str:
    value = ffi.new("rbe_isa *")
    check(lib.rbe_selected_isa(value), "rbe_selected_isa")
    return ISA_NAMES[value[0]]


def isa_available(isa: str) -> bool:
    available = ffi.new("int *")
    check(lib.rbe_isa_available(isa_value(isa), available), "rbe_isa_available")
    return bool(available[0])


def kernel_name(kernel: str, isa: str = "auto") -> str:
    name = ffi.new("const char **")
    check(lib.rbe_kernel_name(KERNELS[kernel], isa_value(isa), name), "rbe_kernel_name")
    return ffi.string(name[0]).decode("utf-8")


def crc32c(data, crc: int = 0) -> int:
    """Return the CRC32C of a bytes-like object, continuing from `crc`."""
    view = np.frombuffer(data, dtype=np.uint8)
    if view.size == 0:
        return crc
    value = ffi.new("uint32_t *", crc)
    check(lib.rbe_crc32c(ffi.from_buffer("uint8_t[]", view, require_writable=False), view.size, value),
          "rbe_crc32c")
    return int(value[0])
