"""Static element types and shapes of a model's tensors, from ONNX shape inference."""

import logging
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import onnx

logger = logging.getLogger(__name__)

# One dimension: an int when static, a str for a named symbolic dimension,
# None when nothing is known.
Dim = Union[int, str, None]

FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
    }
)


@dataclass(frozen=True)
class TensorInfo:
    """Element type (0 when unknown) and dims (None when the rank is unknown)."""

    elem_type: int = 0
    dims: Optional[Tuple[Dim, ...]] = None

    @property
    def rank(self) -> Optional[int]:
        return None if self.dims is None else len(self.dims)

    @property
    def is_float(self) -> bool:
        """True for float types, and for unknown types so that no gradient is lost."""
        return self.elem_type == 0 or self.elem_type in FLOAT_TYPES


def collect_tensor_infos(model: onnx.ModelProto) -> Dict[str, TensorInfo]:
    """Return the element type and shape of every tensor shape inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        logger.warning("shape inference failed, using declared types only: %s", error)
        inferred = model

    graph = inferred.graph
    infos: Dict[str, TensorInfo] = {}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        if value.type.HasField("tensor_type"):
            infos[value.name] = _info_from_type(value.type.tensor_type)
    for tensor in graph.initializer:
        infos[tensor.name] = TensorInfo(tensor.data_type, tuple(int(d) for d in tensor.dims))
    return infos


def _info_from_type(tensor_type: onnx.TypeProto.Tensor) -> TensorInfo:
    if not tensor_type.HasField("shape"):
        return TensorInfo(tensor_type.elem_type, None)

    dims = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorInfo(tensor_type.elem_type, tuple(dims))
