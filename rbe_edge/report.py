"""The packing report: sizes, per-tensor weight error and model output error per plane count.

Written to BUNDLE_DIR/report/ as report.json (all numbers), report.md (the
same as tables) and output_error.png (output error against planes).
"""
import json
import logging
from pathlib import Path
from typing import Dict, List

import numpy as np
from tqdm import tqdm

from rbe_edge.model_io import (Feed, make_session, relative_error, run_outputs, weight_error)

logger = logging.getLogger(__name__)


def measure(bundle, originals: Dict[str, np.ndarray], feeds: List[Feed],
            reference, progress: bool = False) -> Dict:
    """Return the report's numbers for every P from 1 to the planes in the bundle."""
    planes = list(range(1, bundle.planes_available + 1))
    weights = {}
    for name in bundle.tensor_names:
        weights[name] = _weight_errors(bundle, name, originals[name], planes)

    outputs = {}
    for count in tqdm(planes, desc="output error per plane count", unit="P",
                      disable=not progress, leave=False):
        session = bundle.session(count)
        got = run_outputs(session, feeds, f"{bundle.path} at {count} planes")
        outputs[count] = relative_error(got, reference)
    return {"planes": planes, "weight_error": weights, "output_error": outputs}


def _weight_errors(bundle, name: str, original: np.ndarray, planes: List[int]) -> Dict[int, float]:
    packed = bundle.container.packed_tensor(name)
    return {count: weight_error(packed.decode(min(count, packed.bits)), original)
            for count in planes}


def sizes(bundle, model_path: Path) -> Dict[str, int]:
    files = {name: (bundle.path / name).stat().st_size
             for name in ("model.rbe", "infer.onnx", "manifest.json")}
    return {"original": original_size(Path(model_path)), **files}


def original_size(model_path: Path) -> int:
    """Return the bytes of the model file plus its external data files."""
    import onnx
    from onnx import external_data_helper

    model = onnx.load(str(model_path), load_external_data=False)
    locations = {external_data_helper.ExternalDataInfo(tensor).location
                 for tensor in external_data_helper._get_all_tensors(model)
                 if external_data_helper.uses_external_data(tensor)}
    total = model_path.stat().st_size
    for location in locations:
        total += (model_path.parent / location).stat().st_size
    return total


def write_report(bundle, model_path, originals, feeds, reference, progress: bool = False) -> Path:
    """Measure and write the report folder; return its path."""
    folder = bundle.path / "report"
    folder.mkdir(exist_ok=True)
    numbers = measure(bundle, originals, feeds, reference, progress)
    numbers["sizes"] = sizes(bundle, model_path)
    numbers["samples"] = len(feeds)

    (folder / "report.json").write_text(json.dumps(numbers, indent=2))
    (folder / "report.md").write_text(_markdown(bundle, numbers))
    plot_output_error(numbers, folder / "output_error.png")
    logger.info("wrote the report to %s", folder)
    return folder


def _markdown(bundle, numbers: Dict) -> str:
    size = numbers["sizes"]
    planes = numbers["planes"]
    lines = [
        f"# Packing report: {bundle.path.name}",
        "",
        f"{bundle.manifest['bits']} bits, group size {bundle.manifest['group_size'] or 'per row'}, "
        f"{len(bundle.tensor_names)} packed tensors, {numbers['samples']} sample inputs.",
        "",
        "| file | bytes | of the original |",
        "|---|---:|---:|",
    ]
    for name in ("original", "model.rbe", "infer.onnx", "manifest.json"):
        lines.append(f"| {name} | {size[name]} | {size[name] / size['original']:.1%} |")

    lines += ["", "Output error (relative L2, max over outputs and samples) per planes P:", "",
              "| P | output error |", "|---:|---:|"]
    lines += [f"| {p} | {numbers['output_error'][p]:.4g} |" for p in planes]

    lines += ["", "Weight error (relative L2) per tensor and P:", "",
              "| tensor | " + " | ".join(f"P={p}" for p in planes) + " |",
              "|---|" + "---:|" * len(planes)]
    for name, errors in numbers["weight_error"].items():
        lines.append(f"| {name} | " + " | ".join(f"{errors[p]:.3g}" for p in planes) + " |")
    return "\n".join(lines) + "\n"


def plot_output_error(numbers: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    planes = numbers["planes"]
    errors = [max(numbers["output_error"][p], 1e-12) for p in planes]
    figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
    axes.semilogy(planes, errors, marker="o")
    axes.set_xlabel("planes P (most significant first)")
    axes.set_ylabel("relative L2 output error")
    axes.set_title("Output error against planes")
    axes.set_xticks(planes)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
