"""Which C kernels run on this machine."""
from typing import Dict

from rbe_edge import _native


def kernel_info() -> Dict[str, object]:
    """Describe the kernels that automatic dispatch chose on this CPU.

    Returns a dict with "isa" (the chosen family: "scalar", "avx2",
    "avx512" or "neon"), "available" (every family this CPU can run) and one
    entry per operation naming its kernel, for example "unpack":
    "unpack_avx2". A family may reuse another's kernel for some operations
    (the avx512 family decodes with the AVX2 kernels).
    """
    info: Dict[str, object] = {"isa": _native.selected_isa()}
    info["available"] = [
        isa for isa in ("scalar", "avx2", "avx512", "neon") if _native.isa_available(isa)
    ]
    for kernel in _native.KERNELS:
        info[kernel] = _native.kernel_name(kernel)
    return info
