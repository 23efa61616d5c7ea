"""Export of an adapted bundle as a plain float ONNX model (no rbe_edge ops)."""
import logging
from pathlib import Path
from typing import Callable

import onnx
from onnx import numpy_helper

from rbe_edge import onnx_ops
from rbe_edge.adapt.errors import AdaptError
from rbe_edge.atomic_file import write_atomic
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.weights import iterate_graphs

logger = logging.getLogger(__name__)


def float_model(infer: onnx.ModelProto,
                packed_of: Callable[[str], PackedTensor]) -> onnx.ModelProto:
    """Return a copy of `infer` whose BitplaneDecode nodes became float32 initializers.

    `packed_of(name)` returns the current planes of a weight; each decode
    node is replaced by the decode of those planes at the node's precision.
    """
    model = onnx.ModelProto()
    model.CopyFrom(infer)
    for graph, _ in iterate_graphs(model.graph):
        _replace_decodes(graph, packed_of)

    kept = [opset for opset in model.opset_import if opset.domain != onnx_ops.DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    remaining = [f for f in model.functions if f.domain != onnx_ops.DOMAIN]
    del model.functions[:]
    model.functions.extend(remaining)
    return model


def _replace_decodes(graph: onnx.GraphProto, packed_of) -> None:
    producers = {out: node for node in graph.node for out in node.output}
    dropped_nodes, dropped_tensors, added = set(), set(), []
    for node in graph.node:
        if node.domain != onnx_ops.DOMAIN or node.op_type != onnx_ops.OP_TYPE:
            continue
        weight = node.name[: -len(".rbe_decode")]
        packed = packed_of(weight)
        planes = onnx_ops.attribute(node, "planes")
        added.append(numpy_helper.from_array(packed.decode(planes), node.output[0]))

        dropped_nodes.add(id(node))
        dropped_tensors.update(node.input)
        concat = producers.get(node.input[0])
        if concat is not None and concat.op_type == "Concat":
            dropped_nodes.add(id(concat))
            dropped_tensors.update(concat.input)

    nodes = [node for node in graph.node if id(node) not in dropped_nodes]
    del graph.node[:]
    graph.node.extend(nodes)
    initializers = [t for t in graph.initializer if t.name not in dropped_tensors]
    del graph.initializer[:]
    graph.initializer.extend(initializers + added)


def check_export_path(path) -> Path:
    """Raise AdaptError unless `path` can receive an exported model file."""
    path = Path(path)
    if path.is_dir():
        raise AdaptError(f"{path}: is a folder; give the path of the .onnx file to write")
    if not path.parent.is_dir():
        raise AdaptError(f"{path}: the folder {path.parent} does not exist; create it first")
    return path


def write_float_model(model: onnx.ModelProto, path, where: str) -> Path:
    """Check `model` with onnx.checker and onnxruntime, then write it atomically to `path`."""
    import onnxruntime as ort

    path = check_export_path(path)
    try:
        onnx.checker.check_model(model, full_check=True)
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # the checker and onnxruntime raise their own types
        raise AdaptError(f"{where}: the exported float model does not load ({error})") from None
    write_atomic(path, model.SerializeToString())
    logger.info("exported the adapted model to %s", path)
    return path
