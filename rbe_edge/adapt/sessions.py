"""onnxruntime sessions of the training graphs, with model.rbe references resolved."""
import logging
from typing import Dict, List, Optional

import numpy as np
import onnx

from rbe_edge.adapt.errors import AdaptError

logger = logging.getLogger(__name__)


def make_session(model: onnx.ModelProto, bundle_dir, what: str, threads: Optional[int] = None):
    """Return a CPU session of `model`, reading its external data from the bundle folder.

    `threads` sets the intra-op thread count; None keeps onnxruntime's default.
    """
    import onnxruntime as ort

    resolved = onnx.ModelProto()
    resolved.CopyFrom(model)
    onnx.external_data_helper.load_external_data_for_model(resolved, str(bundle_dir))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(resolved.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own unrelated exception types
        raise AdaptError(f"{bundle_dir}: onnxruntime cannot load the {what} graph: "
                         f"{error}") from None


def run_chunked(session, feeds: Dict[str, np.ndarray], fixed: Dict[str, np.ndarray],
                outputs: Optional[List[str]], limit: Optional[int], chunk: int = 256):
    """Run `session` over the examples of `feeds` (axis 0) in chunks; concatenate the outputs.

    `fixed` inputs (weights) go to every run unchanged; `limit` is 1 for
    models that take one example per run.
    """
    count = next(iter(feeds.values())).shape[0]
    size = limit or chunk
    parts = []
    for start in range(0, count, size):
        feed = {name: array[start:start + size] for name, array in feeds.items()}
        feed.update(fixed)
        parts.append(session.run(outputs, feed))
    return [np.concatenate([part[i] for part in parts]) for i in range(len(parts[0]))]
