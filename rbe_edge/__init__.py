"""rbe_edge: bitplane weights, progressive decoding and on-device adaptation."""
from rbe_edge.errors import NativeError, RbeError
from rbe_edge.kernels import kernel_info
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.quantize import quantize

__version__ = "0.1.0"

__all__ = ["NativeError", "PackedTensor", "RbeError", "kernel_info", "quantize"]
