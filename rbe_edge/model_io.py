"""Loading ONNX models, making sample inputs and measuring output error with onnxruntime."""
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper

from rbe_edge.weights import PackError

logger = logging.getLogger(__name__)

Feed = Dict[str, np.ndarray]


def load_model(path) -> onnx.ModelProto:
    """Load an ONNX model and its external data, or raise PackError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PackError(f"{path}: the model file does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError) as error:
        raise PackError(f"{path}: not a valid ONNX model ({error.__class__.__name__}: {error}); "
                        "check that the file is complete and really an .onnx model") from None
    if not model.graph.node and not model.graph.output:
        raise PackError(f"{path}: not a valid ONNX model (no graph); check that the file is "
                        "complete and really an .onnx model")

    _check_external_data(model, path.parent, path)
    onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first_line = str(error).strip().splitlines()[0]
        raise PackError(f"{path}: not a valid ONNX model: {first_line}; check that the file is "
                        "complete (a truncated file parses partially)") from None
    return model


def _check_external_data(model: onnx.ModelProto, base: Path, path: Path) -> None:
    """Check that every external tensor's file exists and covers its byte range."""
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        info = onnx.external_data_helper.ExternalDataInfo(tensor)
        data_file = (base / info.location).resolve()
        if not data_file.is_file():
            raise PackError(f"{path}: tensor '{tensor.name}' stores its data in "
                            f"'{info.location}', which is missing; put that file next to the model")
        size = data_file.stat().st_size
        offset = info.offset or 0
        length = info.length if info.length is not None else size - offset
        if offset + length > size:
            raise PackError(f"{path}: tensor '{tensor.name}' needs bytes {offset}..{offset + length} "
                            f"of '{info.location}', which holds only {size}; the data file is "
                            "truncated")


def model_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    raise PackError("the model imports no ONNX opset")


def _numpy_dtype(elem_type: int):
    if elem_type == TensorProto.BFLOAT16:
        raise PackError("bfloat16 graph inputs cannot be generated; pass sample inputs")
    return helper.tensor_dtype_to_np_dtype(elem_type)


def graph_inputs(model: onnx.ModelProto) -> List[onnx.ValueInfoProto]:
    """Return the inputs a caller must feed (inputs with an initializer are optional)."""
    initialized = {tensor.name for tensor in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initialized]


def make_samples(model: onnx.ModelProto, count: int = 4, seed: int = 0) -> List[Feed]:
    """Generate `count` feeds from the input shapes: symbolic dimensions become 1,
    floats are standard normal and integers and booleans are zero."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        feed = {}
        for value in graph_inputs(model):
            tensor_type = value.type.tensor_type
            shape = [d.dim_value if d.dim_value > 0 else 1 for d in tensor_type.shape.dim]
            dtype = _numpy_dtype(tensor_type.elem_type)
            if np.issubdtype(dtype, np.floating):
                feed[value.name] = rng.standard_normal(shape).astype(dtype)
            else:
                feed[value.name] = np.zeros(shape, dtype=dtype)
        feeds.append(feed)
    return feeds


def load_samples(paths: Sequence) -> List[Feed]:
    """Load feeds from .npz files, one feed per file, keyed by input name."""
    feeds = []
    for path in paths:
        try:
            with np.load(path) as archive:
                feeds.append({name: archive[name] for name in archive.files})
        except (OSError, ValueError) as error:
            raise PackError(f"{path}: cannot read sample inputs ({error}); pass an .npz file "
                            "with one array per model input") from None
    return feeds


def make_session(model, what: str):
    """Return a CPU onnxruntime session for a ModelProto or serialized model."""
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own unrelated exception types
        raise PackError(f"{what}: onnxruntime cannot load the model: {error}") from None


def run_outputs(session, feeds: List[Feed], what: str) -> List[List[np.ndarray]]:
    results = []
    for feed in feeds:
        try:
            results.append(session.run(None, feed))
        except Exception as error:  # onnxruntime raises its own unrelated exception types
            raise PackError(f"{what}: running the model on the sample inputs failed: {error}; "
                            "check the sample inputs' names, shapes and dtypes, or, if none "
                            "were given, pass real ones (tools/pack.py --inputs, pack_model "
                            "samples=): generated samples set every symbolic dimension "
                            "to 1") from None
    return results


def relative_error(outputs: List[List[np.ndarray]], reference: List[List[np.ndarray]]) -> float:
    """Return the largest relative L2 error ||y - y_ref|| / ||y_ref|| over outputs and feeds."""
    worst = 0.0
    for got_list, want_list in zip(outputs, reference):
        for got, want in zip(got_list, want_list):
            if not np.issubdtype(np.asarray(want).dtype, np.floating):
                continue
            want64 = np.asarray(want, dtype=np.float64)
            diff = np.linalg.norm(np.asarray(got, dtype=np.float64) - want64)
            norm = np.linalg.norm(want64)
            worst = max(worst, float(diff / norm) if norm > 0 else float(diff))
    return worst


def weight_error(decoded: np.ndarray, original: np.ndarray) -> float:
    """Return ||w_P - w|| / ||w|| in float64."""
    original64 = np.asarray(original, dtype=np.float64)
    norm = np.linalg.norm(original64)
    diff = np.linalg.norm(np.asarray(decoded, dtype=np.float64) - original64)
    return float(diff / norm) if norm > 0 else float(diff)


def optional_inputs(feeds: Optional[List[Feed]], model: onnx.ModelProto, count: int) -> List[Feed]:
    return feeds if feeds else make_samples(model, count)
