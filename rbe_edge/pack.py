"""pack_model: an ONNX model to a bundle (model.rbe, infer.onnx, manifest.json).

Packing chooses bits and group size by measured output error: it runs the
float model and candidate quantizations on sample inputs with onnxruntime
and keeps the smallest candidate within the error budget.
"""
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tqdm import tqdm

from rbe_edge import onnx_ops
from rbe_edge.container import Container, TensorEntry, write_container
from rbe_edge.model_io import (Feed, graph_inputs, load_model, load_samples, make_samples,
                               make_session, model_opset, relative_error, run_outputs)
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.quantize import quantize
from rbe_edge.weights import (PackError, WeightSite, find_weights, iterate_graphs, layout_of,
                              select_weights)

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
GROUP_CANDIDATES = (None, 128, 64, 32)
MIN_IR_VERSION = 8          # model-local functions need IR version 8
CONTAINER_FILE = "model.rbe"


@dataclass
class Candidate:
    bits: int
    group_size: Optional[int]          # None: one group per row
    error: float = float("nan")

    def describe(self) -> str:
        group = "per-row" if self.group_size is None else f"groups of {self.group_size}"
        return f"{self.bits} bits, {group}"


def pack_model(model_path, bundle_dir, bits: int = 8, *, group_size: Optional[int] = None,
               planes: Optional[int] = None, max_error: float = 0.005, search: bool = True,
               samples: Optional[Sequence] = None, min_elements: int = 1024,
               overwrite: bool = False, report: bool = False, progress: bool = False,
               trainable=None):
    """Pack the ONNX model at `model_path` into the bundle folder `bundle_dir`.

    Args:
        bits: code width B (2..16) to start from.
        group_size: columns per scale group; None lets the search choose among
            per-row and groups of 128, 64 and 32. A tensor whose row length
            this does not divide gets one group per row.
        planes: keep only the top `planes` planes in the bundle (default: all B).
        max_error: budget for the relative L2 output error at full precision,
            max over outputs and sample inputs (0.005 = 0.5%, which leaves
            room for inputs other than the samples).
        search: try finer groups, then more bits, until the error fits the
            budget. With search off, the given bits and group size are used.
        samples: sample input feeds (dicts of arrays) or paths of .npz files;
            None generates 4 feeds from the input shapes.
        min_elements: tensors with fewer values stay float.
        overwrite: replace an existing bundle folder.
        report: also write the report (report.json, report.md, output_error.png).
        progress: show progress bars on stderr.
        trainable: None, "auto" or packed tensor names: also write the
            training graphs for them (rbe_edge.adapt.add_training_graphs).

    Returns the opened Bundle. Raises PackError (bad model, inputs or
    options); nothing is left at `bundle_dir` on failure.
    """
    from rbe_edge.bundle import Bundle

    model_path = Path(model_path)
    bundle_dir = Path(bundle_dir)
    _check_options(bits, group_size, planes, max_error, bundle_dir, overwrite)
    model = load_model(model_path)
    opset = model_opset(model)
    if opset < onnx_ops.MIN_OPSET:
        raise PackError(f"{model_path}: opset {opset} is older than {onnx_ops.MIN_OPSET}; convert "
                        f"it with onnx.version_converter.convert_version(model, 17)")

    sites = select_weights(find_weights(model), min_elements)
    _check_unique(sites, model_path)
    _check_trainable_names(trainable, sites, model_path)
    feeds = _resolve_samples(model, samples)
    originals = {site.name: site.to_float32() for site in sites}
    reference = run_outputs(make_session(model, str(model_path)), feeds, str(model_path))

    chosen, packed = _choose(model, sites, originals, feeds, reference, bits, group_size,
                             max_error, search, progress, str(model_path))
    stored_planes = planes if planes is not None else chosen.bits

    _write_bundle(model, model_path, bundle_dir, sites, packed, chosen, stored_planes,
                  max_error, overwrite)
    bundle = Bundle.open(bundle_dir)
    if trainable is not None:
        _add_training_graphs(bundle, trainable)
    if report:
        from rbe_edge.report import write_report
        write_report(bundle, model_path, originals, feeds, reference, progress=progress)
    return bundle


def _check_trainable_names(trainable, sites: List[WeightSite], model_path: Path) -> None:
    """Reject unknown trainable names before the quantization search, which can take long."""
    if trainable is None or trainable == "auto":
        return
    names = [trainable] if isinstance(trainable, str) else list(trainable)
    packed = sorted(site.name for site in sites)
    for name in names:
        if name not in packed:
            raise PackError(f"{model_path}: trainable tensor '{name}' is not among the tensors "
                            f"that will be packed ({', '.join(packed)}); check the name")


def _add_training_graphs(bundle, trainable) -> None:
    """Write the training graphs, or remove the new bundle if they cannot be built."""
    from rbe_edge.adapt.training_graphs import add_training_graphs

    try:
        add_training_graphs(bundle, trainable)
    except BaseException:
        bundle.close()
        shutil.rmtree(bundle.path, ignore_errors=True)
        raise


def _check_options(bits, group_size, planes, max_error, bundle_dir: Path, overwrite: bool):
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise PackError(f"bits={bits!r} is invalid; expected an integer in 2..16")
    if group_size is not None and (not isinstance(group_size, int) or group_size <= 0):
        raise PackError(f"group_size={group_size!r} is invalid; expected a positive integer")
    if planes is not None and (not isinstance(planes, int) or not 1 <= planes <= bits):
        raise PackError(f"planes={planes!r} is invalid; expected an integer in 1..{bits}")
    if not max_error > 0:
        raise PackError(f"max_error={max_error!r} is invalid; expected a positive fraction")
    if bundle_dir.exists() and not overwrite:
        if not bundle_dir.is_dir() or any(bundle_dir.iterdir()):
            raise PackError(f"{bundle_dir}: already exists; choose another folder or overwrite it")


def _check_unique(sites: List[WeightSite], model_path: Path) -> None:
    seen = set()
    for site in sites:
        if site.name in seen:
            raise PackError(f"{model_path}: two weights are named '{site.name}' in different "
                            "graphs; rename one of them")
        seen.add(site.name)


def _resolve_samples(model, samples) -> List[Feed]:
    """Return feeds from None, a feed, a list of feeds, arrays of a one-input model, or .npz paths."""
    if samples is None:
        return make_samples(model)
    if isinstance(samples, (dict, np.ndarray)):
        samples = [samples]
    samples = list(samples)
    if samples and all(isinstance(sample, np.ndarray) for sample in samples):
        return [_feed_of_array(model, sample) for sample in samples]
    if samples and not isinstance(samples[0], dict):
        return load_samples(samples)
    return samples


def _feed_of_array(model, array: np.ndarray) -> Feed:
    inputs = [value.name for value in graph_inputs(model)]
    if len(inputs) != 1:
        raise PackError(f"a sample given as an array needs a model with one input; this one has "
                        f"{inputs}, so pass dicts that map each input name to an array")
    return {inputs[0]: array}


# ---- Choosing bits and group size ----


def _candidates(bits: int, group_size: Optional[int], search: bool) -> List[Candidate]:
    if not search:
        return [Candidate(bits, group_size)]
    groups = [group_size] if group_size is not None else list(GROUP_CANDIDATES)
    found = [Candidate(bits, group) for group in groups]
    finest = groups[-1]
    for wider in range(bits + 1, 17):
        found.append(Candidate(wider, finest))
    return found


def _choose(model, sites, originals, feeds, reference, bits, group_size, max_error, search,
            progress, what):
    """Return (Candidate, packed tensors) for the first candidate within the budget, else the best."""
    best = None
    candidates = _candidates(bits, group_size, search)
    for candidate in candidates:
        packed = quantize_all(sites, originals, candidate, progress)
        model_bytes = substituted_model(model, sites, {p.name: p.decode() for p in packed.values()})
        outputs = run_outputs(make_session(model_bytes, what), feeds, what)
        candidate.error = relative_error(outputs, reference)
        logger.info("%s: output error %.3g", candidate.describe(), candidate.error)
        if best is None or candidate.error < best[0].error:
            best = (candidate, packed)
        if candidate.error <= max_error:
            return candidate, packed

    if search:
        logger.warning("%s: no candidate meets the error budget %.3g; keeping %s with error %.3g",
                       what, max_error, best[0].describe(), best[0].error)
    return best


def _group_for(cols: int, group_size: Optional[int]) -> Optional[int]:
    """Use `group_size` where it divides the row and is smaller than it, else one group per row."""
    if group_size is None or group_size >= cols or cols % group_size:
        return None
    return group_size


def quantize_all(sites: List[WeightSite], originals: Dict[str, np.ndarray], candidate: Candidate,
                 progress: bool = False) -> Dict[str, PackedTensor]:
    packed = {}
    for site in tqdm(sites, desc=f"quantize ({candidate.describe()})", unit="tensor",
                     disable=not progress, leave=False):
        weight = originals[site.name]
        layout = layout_of(site)
        cols = weight.shape[0] if layout == "kn" else int(np.prod(weight.shape[1:]))
        try:
            packed[site.name] = quantize(weight, candidate.bits, _group_for(cols, candidate.group_size),
                                         name=site.name, layout=layout)
        except ValueError as error:
            raise PackError(f"tensor '{site.name}' ({site.graph_path}): {error}") from None
    return packed


def substituted_model(model: onnx.ModelProto, sites: List[WeightSite],
                      values: Dict[str, np.ndarray]) -> bytes:
    """Serialize `model` with each weight replaced by `values[name]` in its own dtype.

    The model is changed only while serializing and restored before returning.
    """
    # NOTE: models above protobuf's 2 GiB limit fail here; packing them needs
    # the trial models written with external data.
    saved = []
    try:
        for site in sites:
            saved.append((site, TensorProto()))
            saved[-1][1].CopyFrom(site.tensor)
            replacement = _tensor_like(site.tensor, values[site.name])
            site.tensor.CopyFrom(replacement)
        return model.SerializeToString()
    finally:
        for site, original in saved:
            site.tensor.CopyFrom(original)


def _tensor_like(original: TensorProto, value: np.ndarray) -> TensorProto:
    if original.data_type == TensorProto.BFLOAT16:
        tensor = helper.make_tensor(original.name, TensorProto.BFLOAT16, list(original.dims),
                                    np.ascontiguousarray(value, np.float32).ravel().tolist())
        return tensor
    dtype = helper.tensor_dtype_to_np_dtype(original.data_type)
    return numpy_helper.from_array(np.ascontiguousarray(value).astype(dtype), original.name)


# ---- Export ----


def build_infer_model(model: onnx.ModelProto, sites: List[WeightSite],
                      packed: Dict[str, PackedTensor], planes: int,
                      entries: Dict[str, TensorEntry]) -> onnx.ModelProto:
    """Return a copy of `model` whose packed weights come from BitplaneDecode nodes.

    Planes, scales and zero points are external data pointing into model.rbe
    at the chunks that `entries` (the written container's table) lists.
    """
    opset = model_opset(model)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    by_name = {site.name: site for site in sites}
    # Children first: rewriting a graph copies its nodes, and with them the
    # subgraphs they hold, which must already be rewritten by then.
    for graph, _ in reversed(list(iterate_graphs(result.graph))):
        _rewrite_graph(graph, by_name, packed, planes, entries)
    _drop_weight_inputs(result.graph, by_name)

    result.ir_version = max(result.ir_version, MIN_IR_VERSION)
    if not any(o.domain == onnx_ops.DOMAIN for o in result.opset_import):
        result.opset_import.append(helper.make_opsetid(onnx_ops.DOMAIN, onnx_ops.DOMAIN_VERSION))
    result.functions.append(onnx_ops.make_function(opset))
    return result


def _rewrite_graph(graph: onnx.GraphProto, sites: Dict[str, WeightSite],
                   packed: Dict[str, PackedTensor], planes: int,
                   entries: Dict[str, TensorEntry]) -> None:
    """Replace this graph's packed initializers and Constant nodes by decode nodes."""
    kept = [t for t in graph.initializer if t.name not in packed]
    added_initializers = []
    head_nodes = []
    for tensor in graph.initializer:
        if tensor.name in packed:
            nodes, initializers = _decode_nodes(tensor, packed[tensor.name], planes,
                                                entries[tensor.name])
            head_nodes += nodes
            added_initializers += initializers

    body_nodes = []
    for node in graph.node:
        output = node.output[0] if node.output else None
        if node.op_type == "Constant" and output in packed and sites[output].kind == "constant":
            value = next(a.t for a in node.attribute if a.name == "value")
            nodes, initializers = _decode_nodes(value, packed[output], planes, entries[output],
                                                output)
            body_nodes += nodes
            added_initializers += initializers
        else:
            body_nodes.append(node)

    del graph.initializer[:]
    graph.initializer.extend(kept + added_initializers)
    del graph.node[:]
    graph.node.extend(head_nodes + body_nodes)


def _decode_nodes(original: TensorProto, packed: PackedTensor, planes: int, entry: TensorEntry,
                  name: Optional[str] = None):
    """Return (nodes, initializers) that produce the weight `name`: a Concat of its
    planes, a BitplaneDecode node, and a Cast for weights that are not float32."""
    name = name or original.name
    used = min(planes, packed.bits)
    stacked, scale, zero = f"{name}.rbe_planes", f"{name}.rbe_scale", f"{name}.rbe_zero"

    params = entry.rows * (entry.cols // entry.group_size)
    initializers = [
        onnx_ops.external_tensor(plane, TensorProto.UINT8, [1, entry.rows, entry.plane_bytes // entry.rows],
                                 CONTAINER_FILE, entry.plane_offsets[p], entry.plane_bytes)
        for p, plane in enumerate(onnx_ops.plane_names(name, used))
    ]
    groups = entry.cols // entry.group_size
    initializers.append(onnx_ops.external_tensor(scale, TensorProto.FLOAT, [entry.rows, groups],
                                                 CONTAINER_FILE, entry.params_offset, params * 4))
    initializers.append(onnx_ops.external_tensor(zero, TensorProto.FLOAT, [entry.rows, groups],
                                                 CONTAINER_FILE, entry.params_offset + params * 4,
                                                 params * 4))

    nodes = [onnx_ops.make_plane_concat(name, used, stacked)]
    inputs = [stacked, scale, zero]
    if original.data_type == TensorProto.FLOAT:
        nodes.append(onnx_ops.make_node(packed, used, inputs, name, f"{name}.rbe_decode"))
        return nodes, initializers
    decoded = f"{name}.rbe_float"
    nodes += [
        onnx_ops.make_node(packed, used, inputs, decoded, f"{name}.rbe_decode"),
        helper.make_node("Cast", [decoded], [name], name=f"{name}.rbe_cast",
                         to=original.data_type),
    ]
    return nodes, initializers


def _drop_weight_inputs(graph: onnx.GraphProto, sites: Dict[str, WeightSite]) -> None:
    """Remove graph inputs that only gave packed initializers an overridable default."""
    keep = [value for value in graph.input if value.name not in sites]
    if len(keep) != len(graph.input):
        logger.info("removed %d graph inputs that named packed initializers",
                    len(graph.input) - len(keep))
        del graph.input[:]
        graph.input.extend(keep)


def _write_bundle(model, model_path: Path, bundle_dir: Path, sites, packed, chosen: Candidate,
                  planes: int, max_error: float, overwrite: bool) -> None:
    """Write the bundle into a temporary folder beside `bundle_dir`, then rename it into place."""
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle_dir.name}.", dir=bundle_dir.parent))
    try:
        staging.chmod(0o755)                     # mkdtemp creates the folder private (0700)
        ordered = [packed[site.name] for site in sites]
        container_path = staging / CONTAINER_FILE
        write_container(container_path, ordered, planes if planes < chosen.bits else None)
        with Container.open(container_path) as container:
            entries = {entry.name: entry for entry in container.tensors}

        infer = build_infer_model(model, sites, packed, planes, entries)
        infer_bytes = infer.SerializeToString()
        _write_file(staging / "infer.onnx", infer_bytes)
        _check_infer(staging / "infer.onnx", model_path)
        manifest = _manifest(model_path, sites, packed, chosen, planes, max_error, infer_bytes,
                             container_path, model_opset(model))
        _write_file(staging / "manifest.json", json.dumps(manifest, indent=2).encode())
        _replace_folder(staging, bundle_dir, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_infer(path: Path, model_path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as error:
        raise PackError(f"{model_path}: the packed inference graph fails the ONNX checker: "
                        f"{error}") from None


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _replace_folder(staging: Path, bundle_dir: Path, overwrite: bool) -> None:
    if bundle_dir.exists():
        if not overwrite and any(bundle_dir.iterdir()):
            raise PackError(f"{bundle_dir}: already exists; choose another folder or overwrite it")
        old = bundle_dir.with_name(f".{bundle_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        bundle_dir.rename(old)
        staging.rename(bundle_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(bundle_dir)


def _manifest(model_path: Path, sites, packed, chosen: Candidate, planes: int, max_error: float,
              infer_bytes: bytes, container_path: Path, opset: int) -> Dict:
    from rbe_edge import __version__

    tensors = []
    for site in sites:
        p = packed[site.name]
        tensors.append({
            "name": site.name, "shape": list(p.shape), "layout": p.layout, "bits": p.bits,
            "group_size": p.group_size, "dtype": site.dtype_name, "location": site.kind,
            "graph": site.graph_path,
        })
    return {
        "format": "rbe_edge.bundle",
        "version": MANIFEST_VERSION,
        "created_by": f"rbe_edge {__version__}",
        "source": {"file": model_path.name, "bytes": model_path.stat().st_size},
        "bits": chosen.bits,
        "group_size": chosen.group_size,
        "planes": planes,
        "opset": opset,
        "error_budget": max_error,
        "output_error": chosen.error,
        "tensors": tensors,
        "files": {
            "infer.onnx": {"bytes": len(infer_bytes),
                           "sha256": hashlib.sha256(infer_bytes).hexdigest()},
            "model.rbe": {"bytes": container_path.stat().st_size},
        },
    }
