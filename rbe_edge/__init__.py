"""rbe_edge: bitplane weights, progressive decoding and on-device adaptation."""
from rbe_edge.errors import NativeError, RbeError
from rbe_edge.kernels import kernel_info
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.quantize import quantize
from rbe_edge.container import ContainerError
from rbe_edge.weights import PackError
from rbe_edge.bundle import Bundle, BundleError
from rbe_edge.pack import pack_model
from rbe_edge.adapt import Adapter, AdaptError

__version__ = "0.1.0"

__all__ = [
    "AdaptError", "Adapter", "Bundle", "BundleError", "ContainerError", "NativeError",
    "PackError", "PackedTensor",
    "RbeError", "kernel_info", "pack_model", "quantize",
]
