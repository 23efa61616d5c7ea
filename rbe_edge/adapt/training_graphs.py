"""The training files of a bundle: backbone.onnx, train_step.onnx, the native program and
their manifest record.

The graphs keep the inference graph's references into model.rbe for frozen
weights, so they stay valid when adapted planes are saved (saving rewrites
model.rbe with the same layout). manifest.json records the trainable set
under "training"; it is written last, so a crash leaves either no record or
a record whose files are complete.
"""
import hashlib
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import onnx
from google.protobuf.message import DecodeError

from rbe_edge.adapt.errors import AdaptError
from rbe_edge.adapt.files import write_manifest
from rbe_edge.atomic_file import write_atomic
from rbe_edge.adapt.graph_cut import TrainingGraphs, choose_trainable, cut
from rbe_edge.adapt.native_program import (PARAMS_FILE, PROGRAM_FILE, NativeProgram,
                                           NativeUnsupportedError, compile_head, load_program)
from rbe_edge.bundle import Bundle

logger = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.onnx"
TRAIN_STEP_FILE = "train_step.onnx"
DEFAULT_LOSS = "cross_entropy"


def load_infer_graph(bundle: Bundle) -> onnx.ModelProto:
    """Return infer.onnx with its plane references into model.rbe left unresolved."""
    path = bundle.path / "infer.onnx"
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError) as error:
        raise AdaptError(f"{path}: not a valid ONNX model ({error}); "
                         "pack the model again") from None


def build_training_graphs(bundle: Bundle, trainable: Union[str, Sequence[str]],
                          loss: str = DEFAULT_LOSS, output: Optional[str] = None,
                          float_weights: bool = False) -> TrainingGraphs:
    """Cut the bundle's inference graph for `trainable` ("auto" or packed tensor names)."""
    check_full_precision(bundle)
    model = load_infer_graph(bundle)
    where = str(bundle.path / "infer.onnx")
    names = choose_trainable(model, trainable, bundle.tensor_names, where)
    return cut(model, names, output, loss, float_weights=float_weights, where=where)


def add_training_graphs(bundle: Bundle, trainable: Union[str, Sequence[str]] = "auto",
                        loss: str = DEFAULT_LOSS, output: Optional[str] = None,
                        require_native: bool = False) -> TrainingGraphs:
    """Write the training files into the bundle and record them in the manifest.

    The files are backbone.onnx (unless the cut starts at the model inputs),
    train_step.onnx and, when the head compiles for the native engine,
    native_program.json and .bin. With require_native, a head that does not
    compile raises NativeUnsupportedError before any file is written.
    """
    graphs = build_training_graphs(bundle, trainable, loss, output)
    program = _try_compile(bundle, graphs, require_native)
    files = {}
    if graphs.backbone is not None:
        files[BACKBONE_FILE] = _write_graph(bundle.path / BACKBONE_FILE, graphs.backbone)
    files[TRAIN_STEP_FILE] = _write_graph(bundle.path / TRAIN_STEP_FILE, graphs.train_step)
    if program is not None:
        files[PARAMS_FILE] = _write_file(bundle.path / PARAMS_FILE, bytes(program.params))
        files[PROGRAM_FILE] = _write_file(bundle.path / PROGRAM_FILE, program.to_json())

    manifest = dict(bundle.manifest)
    manifest["training"] = {
        "trainable": graphs.trainable, "loss": graphs.loss, "output": graphs.output,
        "boundary": graphs.boundary, "label_input": "rbe_labels", "loss_output": "rbe_loss",
        "gradients": {name: graphs.gradient_output(name) for name in graphs.trainable},
    }
    if PROGRAM_FILE in files:
        manifest["training"]["native_program"] = PROGRAM_FILE
    kept = {name: entry for name, entry in manifest["files"].items()
            if name not in (BACKBONE_FILE, TRAIN_STEP_FILE, PROGRAM_FILE, PARAMS_FILE)}
    manifest["files"] = {**kept, **files}
    write_manifest(bundle.path, manifest)
    bundle.manifest = manifest
    # Files of an earlier trainable set that the new one does not have are stale.
    for name in (BACKBONE_FILE, PROGRAM_FILE, PARAMS_FILE):
        if name not in files:
            (bundle.path / name).unlink(missing_ok=True)
    logger.info("%s: training graphs for %s written", bundle.path, graphs.trainable)
    return graphs


def compile_native_program(bundle: Bundle, graphs: TrainingGraphs) -> NativeProgram:
    """Compile the head of `graphs` for the native engine, or raise NativeUnsupportedError."""
    def packed_info(name: str):
        entry = bundle.container.entry(name)
        return entry.layout, entry.rows, entry.cols

    return compile_head(graphs.head, graphs.boundary, graphs.output, graphs.trainable,
                        packed_info, str(bundle.path / "infer.onnx"))


def stored_native_training(bundle: Bundle, trainable: Sequence[str], output: str
                           ) -> Optional[Tuple[NativeProgram, Optional[onnx.ModelProto], List[str]]]:
    """Return (program, backbone, boundary) stored for this trainable set and output, or None.

    The files are checked against their SHA-256 in manifest.json.
    """
    record = training_record(bundle) or {}
    if record.get("native_program") != PROGRAM_FILE or record.get("output") != output or \
            sorted(record["trainable"]) != sorted(trainable):
        return None
    document = _read_checked(bundle, PROGRAM_FILE)
    params = _read_checked(bundle, PARAMS_FILE)
    program = load_program(document, params, list(record["trainable"]), output,
                           str(bundle.path / PROGRAM_FILE), regenerate_hint(bundle))
    backbone = None
    if BACKBONE_FILE in bundle.manifest["files"]:
        backbone = onnx.ModelProto.FromString(_read_checked(bundle, BACKBONE_FILE))
    return program, backbone, list(record["boundary"])


def _try_compile(bundle: Bundle, graphs: TrainingGraphs,
                 require_native: bool) -> Optional[NativeProgram]:
    """Return the native program of the head, or None (raising instead when it is required)."""
    try:
        return compile_native_program(bundle, graphs)
    except NativeUnsupportedError as error:
        if require_native:
            raise
        logger.info("no native program: %s", error)
        return None


def training_record(bundle: Bundle) -> Optional[Dict]:
    """Return the manifest's "training" record, or None for a bundle packed without one."""
    record = bundle.manifest.get("training")
    if record is None:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("trainable"), list):
        raise AdaptError(f"{bundle.path / 'manifest.json'}: the 'training' record is malformed; "
                         "add the training graphs again with "
                         f"rbe_edge.adapt.add_training_graphs('{bundle.path}', [names])")
    return record


def regenerate_hint(bundle: Bundle) -> str:
    """Return how to write the training files of the bundle's trainable set again."""
    record = bundle.manifest.get("training") or {}
    names = record.get("trainable", "[names]")
    return (f"write the training files again with rbe_edge.adapt.add_training_graphs("
            f"'{bundle.path}', {names})")


def load_train_step(bundle: Bundle) -> onnx.ModelProto:
    """Read train_step.onnx, checking it against the SHA-256 in manifest.json."""
    return onnx.ModelProto.FromString(_read_checked(bundle, TRAIN_STEP_FILE))


def _read_checked(bundle: Bundle, name: str) -> bytes:
    """Read a training file of the bundle, checking it against the SHA-256 in manifest.json."""
    path = bundle.path / name
    expected = bundle.manifest["files"].get(name, {}).get("sha256")
    if not path.is_file():
        raise AdaptError(f"{path}: missing although manifest.json lists a trainable set; "
                         f"{regenerate_hint(bundle)}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise AdaptError(f"{path}: its SHA-256 does not match manifest.json (changed or "
                         f"corrupted); {regenerate_hint(bundle)}")
    return data


def _write_graph(path: Path, model: onnx.ModelProto) -> Dict:
    return _write_file(path, model.SerializeToString())


def _write_file(path: Path, data: bytes) -> Dict:
    write_atomic(path, data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_full_precision(bundle: Bundle) -> None:
    """Raise AdaptError unless model.rbe holds every plane, which folding writes to."""
    if bundle.planes_available < bundle.bits:
        raise AdaptError(f"{bundle.path / 'model.rbe'}: holds {bundle.planes_available} of "
                         f"{bundle.bits} planes; adaptation changes the lower planes too, so "
                         "pack the bundle with all planes")
