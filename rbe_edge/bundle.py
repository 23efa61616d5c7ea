"""Bundle: a packed model folder (model.rbe, infer.onnx, manifest.json) and its sessions."""
import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from rbe_edge import onnx_ops
from rbe_edge.container import Container, ContainerError
from rbe_edge.errors import RbeError
from rbe_edge.weights import iterate_graphs

logger = logging.getLogger(__name__)

SUPPORTED_MANIFEST_VERSION = 1


class BundleError(RbeError, ValueError):
    """A bundle folder is missing a file, corrupted or from a newer rbe_edge."""


class Bundle:
    """An opened bundle. `session(planes)` runs it at any precision from 1 to B planes.

    Attributes:
        path: the bundle folder.
        manifest: the parsed manifest.json.
        container: the memory-mapped model.rbe.
    """

    def __init__(self, path: Path, manifest: Dict, container: Container):
        self.path = path
        self.manifest = manifest
        self.container = container
        self._names = set(container.names())

    @classmethod
    def open(cls, path) -> "Bundle":
        """Open a bundle folder, validating its manifest and the model.rbe table."""
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"{path}: not a bundle folder (it does not exist or is a file)")
        manifest = _read_manifest(path / "manifest.json")
        for name in ("model.rbe", "infer.onnx"):
            if not (path / name).is_file():
                raise BundleError(f"{path / name}: missing from the bundle; pack the model again")
        container = Container.open(path / "model.rbe")
        try:
            _check_tensors(manifest, container, path)
        except BaseException:
            container.close()
            raise
        return cls(path, manifest, container)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def bits(self) -> int:
        return int(self.manifest["bits"])

    @property
    def planes_available(self) -> int:
        """Planes present in model.rbe (B unless the file holds only a prefix)."""
        return self.container.planes_available

    @property
    def tensor_names(self) -> List[str]:
        return self.container.names()

    def _resolve_planes(self, planes: Optional[int]) -> int:
        available = self.planes_available
        if planes is None:
            return available
        if isinstance(planes, bool) or not isinstance(planes, int) or not 1 <= planes <= available:
            raise BundleError(f"{self.path}: planes={planes!r} is out of range; model.rbe holds "
                              f"1..{available} planes")
        return planes

    def inference_model(self, planes: Optional[int] = None) -> onnx.ModelProto:
        """Return infer.onnx with the top `planes` planes of every weight from model.rbe.

        The CRC32C of every plane used is checked first.
        """
        used = self._resolve_planes(planes)
        self.container.verify(used)
        model = _load_infer(self.path / "infer.onnx")
        found = set()
        for graph, _ in iterate_graphs(model.graph):
            found |= self._fill_graph(graph, used)
        missing = set(self.tensor_names) - found
        if missing:
            raise BundleError(f"{self.path / 'infer.onnx'}: no BitplaneDecode node for tensors "
                              f"{sorted(missing)[:5]}; pack the model again")
        return model

    def _fill_graph(self, graph: onnx.GraphProto, planes: int) -> set:
        """Embed the planes, scales and zero points of every decode node in `graph`."""
        producers = {output: node for node in graph.node for output in node.output}
        names = set()
        replacements = {}
        dropped = set()
        for node in graph.node:
            if node.domain != onnx_ops.DOMAIN or node.op_type != onnx_ops.OP_TYPE:
                continue
            weight = node.name[: -len(".rbe_decode")]
            concat = producers.get(node.input[0])
            if weight not in self._names or concat is None or concat.op_type != "Concat":
                raise BundleError(f"{self.path / 'infer.onnx'}: decode node '{node.name}' does "
                                  "not match a tensor of model.rbe; pack the model again")
            packed = self.container.packed_tensor(weight, planes)
            used = min(planes, packed.bits)

            dropped |= set(concat.input)
            del concat.input[:]
            concat.input.extend(onnx_ops.plane_names(weight, used))
            for index, name in enumerate(concat.input):
                replacements[name] = numpy_helper.from_array(packed.planes[index:index + 1], name)
            for name, values in ((node.input[1], packed.scale), (node.input[2], packed.zero)):
                replacements[name] = numpy_helper.from_array(values, name)
            onnx_ops.set_planes(node, used)
            names.add(weight)

        kept = [t for t in graph.initializer if t.name not in dropped and t.name not in replacements]
        del graph.initializer[:]
        graph.initializer.extend(kept + list(replacements.values()))
        return names

    def session(self, planes: Optional[int] = None, options=None, providers=None):
        """Return an onnxruntime InferenceSession that decodes the top `planes` planes.

        `planes` defaults to every plane in model.rbe. `options` is an
        onnxruntime SessionOptions; providers default to the CPU provider.
        """
        import onnxruntime as ort

        model = self.inference_model(planes)
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=providers or ["CPUExecutionProvider"])

    def verify(self) -> Dict:
        """Check everything: manifest, infer.onnx digest and ONNX checker, every CRC32C,
        and that the planes inside infer.onnx equal those of model.rbe.
        Returns a summary; raises BundleError or ContainerError."""
        infer_path = self.path / "infer.onnx"
        data = infer_path.read_bytes()
        expected = self.manifest["files"]["infer.onnx"]["sha256"]
        if hashlib.sha256(data).hexdigest() != expected:
            raise BundleError(f"{infer_path}: its SHA-256 does not match manifest.json: the file "
                              "was changed or corrupted; pack the model again")
        self.container.verify()
        model = _load_infer(infer_path)
        try:
            onnx.checker.check_model(str(infer_path), full_check=True)
        except onnx.checker.ValidationError as error:
            raise BundleError(f"{infer_path}: fails the ONNX checker: {error}") from None
        self._compare_embedded_planes(model)
        checked = self._verify_other_files()
        return {"tensors": len(self.tensor_names), "planes": self.planes_available,
                "bits": self.bits, "model.rbe": (self.path / "model.rbe").stat().st_size,
                "model.rbe full size": self.container.file_size, "other files": checked}

    def _verify_other_files(self) -> List[str]:
        """Check the SHA-256 of every other file that manifest.json lists (the training files)."""
        checked = []
        for name, entry in self.manifest["files"].items():
            if name in ("infer.onnx", "model.rbe") or "sha256" not in entry:
                continue
            path = self.path / name
            if not path.is_file():
                raise BundleError(f"{path}: missing although manifest.json lists it; "
                                  f"{_REGENERATE_TRAINING}")
            if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                raise BundleError(f"{path}: its SHA-256 does not match manifest.json (changed "
                                  f"or corrupted); {_REGENERATE_TRAINING}")
            checked.append(name)
        return checked

    def _compare_embedded_planes(self, model: onnx.ModelProto) -> None:
        """Check that every plane of infer.onnx points at its chunk of model.rbe."""
        for graph, _ in iterate_graphs(model.graph):
            initializers = {tensor.name: tensor for tensor in graph.initializer}
            for node in graph.node:
                if node.op_type != onnx_ops.OP_TYPE or node.domain != onnx_ops.DOMAIN:
                    continue
                entry = self.container.entry(node.name[: -len(".rbe_decode")])
                for plane, name in enumerate(onnx_ops.plane_names(entry.name, entry.bits)):
                    if name not in initializers:
                        break
                    info = onnx.external_data_helper.ExternalDataInfo(initializers[name])
                    if (info.location, info.offset, info.length) != \
                            ("model.rbe", entry.plane_offsets[plane], entry.plane_bytes):
                        raise BundleError(f"{self.path / 'infer.onnx'}: plane {plane} of tensor "
                                          f"'{entry.name}' does not point at its chunk of "
                                          "model.rbe; pack the model again")


_REGENERATE_TRAINING = ("write the training files again with "
                        "rbe_edge.adapt.add_training_graphs(bundle, trainable)")


def _read_manifest(path: Path) -> Dict:
    if not path.is_file():
        raise BundleError(f"{path}: missing; this folder is not a bundle (pack the model first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error}); pack the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "rbe_edge.bundle":
        raise BundleError(f"{path}: not an rbe_edge bundle manifest")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{path}: invalid manifest version {version!r}")
    if version > SUPPORTED_MANIFEST_VERSION:
        raise BundleError(f"{path}: manifest version {version} was written by a newer rbe_edge "
                          f"({manifest.get('created_by', 'unknown')}); this rbe_edge reads "
                          f"version {SUPPORTED_MANIFEST_VERSION}. Upgrade rbe_edge")
    for key in ("bits", "tensors", "files"):
        if key not in manifest:
            raise BundleError(f"{path}: the field '{key}' is missing; pack the model again")
    return manifest


def _check_tensors(manifest: Dict, container: Container, path: Path) -> None:
    listed = [tensor.get("name") for tensor in manifest["tensors"]]
    if listed != container.names():
        raise BundleError(f"{path}: manifest.json and model.rbe list different tensors; "
                          "pack the model again")


def _load_infer(path: Path) -> onnx.ModelProto:
    # External planes stay references: sessions embed only the planes they use.
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError) as error:
        raise BundleError(f"{path}: not a valid ONNX model ({error}); pack the model again") from None


__all__ = ["Bundle", "BundleError", "ContainerError"]
