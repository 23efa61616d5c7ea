"""The `adapt` subcommand: train a bundle's trainable layers on examples from an .npz file."""
import argparse
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from rbe_edge.adapt import adapter as defaults
from rbe_edge.adapt.errors import AdaptError

ADAPT_DESCRIPTION = """\
Adapt a bundle to labelled examples: train the upper bitplanes of its
trainable layers (with onnxruntime, or in the C core with --engine native),
then save the adapted planes into the bundle (model.rbe and manifest.json,
each replaced atomically).

The .npz file holds `labels` (int class indices for cross-entropy, float
targets for mse) and one array per model input, named as the input (a model
with one input accepts any other name). Axis 0 of every array is the example.
"""


def add_adapt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle folder (from tools/pack.py)")
    parser.add_argument("--data", required=True, metavar="FILE.npz",
                        help="examples: `labels` and one array per model input")
    parser.add_argument("--steps", type=int, default=defaults.DEFAULT_STEPS,
                        help=f"training steps (default: {defaults.DEFAULT_STEPS})")
    parser.add_argument("--lr", type=float, default=defaults.DEFAULT_LR,
                        help=f"step size in weight units (default: {defaults.DEFAULT_LR})")
    parser.add_argument("--batch-size", type=int, default=defaults.DEFAULT_BATCH_SIZE,
                        help=f"examples per step (default: {defaults.DEFAULT_BATCH_SIZE})")
    parser.add_argument("--trainable", nargs="+", default=None, metavar="TENSOR",
                        help="packed tensors to train, or `auto` for the last weight-bearing "
                        "layers (default: the bundle's trainable set)")
    parser.add_argument("--upper-planes", type=int, default=4, metavar="U",
                        help="top planes a step may change (default: 4)")
    parser.add_argument("--mode", choices=["accumulate", "sign"], default="accumulate",
                        help="accumulate: one byte of state per weight keeps sub-step "
                        "remainders; sign: stateless (default: accumulate)")
    parser.add_argument("--engine", choices=["onnxruntime", "native"], default="onnxruntime",
                        help="onnxruntime: run train_step.onnx; native: run the trainable "
                        "layers in the C core on the planes (default: onnxruntime)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads of the native engine's products and of onnxruntime's "
                        "intra-op work (default: 1 for native, onnxruntime's own default)")
    parser.add_argument("--loss", choices=["cross_entropy", "mse"], default="cross_entropy")
    parser.add_argument("--output", default=None, metavar="NAME",
                        help="model output the loss attaches to (default: the first output)")
    parser.add_argument("--export", default=None, metavar="MODEL.onnx",
                        help="also write a plain float ONNX model of the adapted weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load_examples(path) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Return (inputs by name, labels) from an .npz file."""
    path = Path(path)
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise AdaptError(f"{path}: cannot read examples ({error}); pass an .npz file") from None
    if "labels" not in arrays:
        raise AdaptError(f"{path}: has no `labels` array (found {sorted(arrays)})")
    labels = arrays.pop("labels")
    return arrays, labels


def run_adapt(args) -> int:
    from rbe_edge.adapt.adapter import Adapter
    from rbe_edge.adapt.export import check_export_path

    # Check the export path before training, so a bad one changes nothing.
    if args.export:
        check_export_path(args.export)
    inputs, labels = load_examples(args.data)
    trainable = args.trainable if args.trainable not in (None, ["auto"]) else "auto"
    add = args.trainable == ["auto"]
    with Adapter(args.bundle, trainable, upper_planes=args.upper_planes, mode=args.mode,
                 engine=args.engine, add_graphs=add, threads=args.threads) as adapter:
        if len(inputs) == 1 and len(adapter.input_names) == 1:
            inputs = next(iter(inputs.values()))
        before = adapter.evaluate(inputs, labels, args.loss, args.output)
        adapter.fit(inputs, labels, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                    loss=args.loss, output=args.output, seed=args.seed, progress=not args.quiet)
        after = adapter.evaluate(inputs, labels, args.loss, args.output)
        adapter.save()
        print(f"adapted {adapter.trainable} for {args.steps} steps: "
              f"{_describe(before)} -> {_describe(after)} on the training examples; "
              f"saved into {adapter.bundle.path}")
        if args.export:
            print(f"exported {adapter.export_onnx(args.export)}")
    return 0


def _describe(metrics: Dict[str, float]) -> str:
    if "accuracy" in metrics:
        return f"accuracy {100 * metrics['accuracy']:.1f}%, loss {metrics['loss']:.4f}"
    return f"loss {metrics['loss']:.4g}"
