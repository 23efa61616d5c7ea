"""Adapter: few-shot adaptation of a bundle by upper-bitplane updates.

With engine="onnxruntime", each step runs train_step.onnx on a batch of
cached backbone outputs, then the C core moves the upper planes of every
trainable weight against its gradient (rbe_edge.update). With
engine="native", the C core runs the whole step on a compiled layer program
(native_engine.py) and never holds a float copy of a trainable weight. The accumulator keeps sub-step remainders in one
byte per weight. Folding moves them into the lower planes every `fold_every`
steps, at the end of fit() and before save() and export_onnx().
"""
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from rbe_edge.adapt import training_graphs as tg
from rbe_edge.adapt.data import Inputs, batch_limit, check_inputs, check_labels, static_dims
from rbe_edge.adapt.errors import AdaptError
from rbe_edge.adapt.export import check_export_path, float_model, write_float_model
from rbe_edge.adapt.files import remove_temporaries, sha256_of, write_manifest
from rbe_edge.adapt.graph_cut import LOSS_OUTPUT, LABEL_INPUT, TrainingGraphs, parameter_inputs
from rbe_edge.adapt.native_engine import NativeEngine, new_scaling_states
from rbe_edge.adapt.preconditioner import RmsScaling
from rbe_edge.adapt.sessions import make_session, run_chunked
from rbe_edge.autodiff import LOSS_KINDS
from rbe_edge.bundle import Bundle
from rbe_edge.container import Container, write_container
from rbe_edge.model_io import graph_inputs
from rbe_edge.update import MODES, fold_lsb, new_accumulator, update_upper

logger = logging.getLogger(__name__)

ENGINES = ("onnxruntime", "native")
DEFAULT_STEPS = 100
DEFAULT_LR = 0.003
DEFAULT_BATCH_SIZE = 32
DEFAULT_FOLD_EVERY = 1
OPTIMIZERS = ("scaled", "sgd")
DEFAULT_OPTIMIZER = "scaled"


class Adapter:
    """Trains the upper bitplanes of a bundle's trainable weights on a few labelled examples.

    Args:
        bundle: a Bundle or the path of a bundle folder.
        trainable: "auto" uses the trainable set recorded in the bundle. A list
            of packed tensor names uses those weights, and adds their training
            graphs to the bundle when its record names other weights or none.
        upper_planes: U, the top planes a step may change.
        mode: "accumulate" (one byte of state per weight) or "sign" (none).
        engine: "onnxruntime" runs train_step.onnx; "native" runs the trainable
            layers in the C core on the planes (chains of dense, Relu, Gelu,
            Tanh and LayerNormalization only; other heads raise
            NativeUnsupportedError naming the node).
        add_graphs: with trainable="auto", add training graphs for the last
            weight-bearing layers to a bundle packed without them.
        fold_every: fold the accumulator into the lower planes every this
            many steps (0: only at the end of fit and before save).
        optimizer: "scaled" divides each tensor's gradient by the running RMS
            of its gradients (one float of state per tensor); "sgd" uses the
            raw gradient.
        threads: threads for the products of the native engine (1 when
            None) and the intra-op threads of onnxruntime sessions (its own
            default when None). Threads start per call; no pool is kept.

    Attributes:
        history: the training loss of every step, across fit() calls.
        trainable: the trained tensor names.
    """

    def __init__(self, bundle, trainable: Union[str, Sequence[str]] = "auto",
                 upper_planes: int = 4, mode: str = "accumulate", engine: str = "onnxruntime",
                 *, add_graphs: bool = False, fold_every: int = DEFAULT_FOLD_EVERY,
                 optimizer: str = DEFAULT_OPTIMIZER, threads: Optional[int] = None):
        _check_engine(engine)
        _check_options(mode, fold_every, optimizer)
        _check_threads(threads)
        self.threads = threads
        self._owns_bundle = not isinstance(bundle, Bundle)
        self._closed = False
        self.bundle = Bundle.open(bundle) if self._owns_bundle else bundle
        try:
            self._setup(trainable, upper_planes, add_graphs, engine)
        except BaseException:
            self.close()
            raise
        self.mode = mode
        self.fold_every = fold_every
        self.engine = engine
        self.optimizer = optimizer
        self.accum = ({name: new_accumulator(p) for name, p in self.packed.items()}
                      if mode == "accumulate" else {})
        self.scaling = {name: RmsScaling() for name in self.packed}
        self._native_scaling = (new_scaling_states(self.packed)
                                if optimizer == "scaled" else None)
        self.history: List[float] = []
        self.steps_done = 0
        self._folded_at = 0
        if engine == "native":
            try:
                self._prepare(self._loss, self._output)
            except BaseException:
                self.close()
                raise

    def _setup(self, trainable, upper_planes, add_graphs: bool, engine: str) -> None:
        """Resolve the trainable set (adding training graphs if needed) and read its planes."""
        tg.check_full_precision(self.bundle)
        _check_upper_planes(upper_planes, self.bundle.bits, self.bundle.path)
        self.trainable = self._resolve_trainable(trainable, add_graphs, engine == "native")
        self.packed = {name: self.bundle.container.packed_tensor(name) for name in self.trainable}
        smallest = min(p.bits for p in self.packed.values())
        self.upper_planes = _check_upper_planes(upper_planes, smallest, self.bundle.path)

        self._infer = tg.load_infer_graph(self.bundle)
        self._inputs = graph_inputs(self._infer)
        self._limit = batch_limit(self._inputs, str(self.bundle.path / "infer.onnx"))
        self._graphs: Dict = {}
        record = tg.training_record(self.bundle) or {}
        self._loss = record.get("loss", tg.DEFAULT_LOSS)
        self._output = record.get("output")
        self._warn_if_state_mismatch()

    @property
    def input_names(self) -> List[str]:
        """The model inputs that `inputs` must provide."""
        return [value.name for value in self._inputs]

    # ---- Setup ----

    def _resolve_trainable(self, trainable, add_graphs: bool, native: bool) -> List[str]:
        record = tg.training_record(self.bundle)
        if isinstance(trainable, str) and trainable == "auto":
            if record is not None:
                return list(record["trainable"])
            if not add_graphs:
                raise AdaptError(f"{self.bundle.path}: the bundle was packed without trainable "
                                 "layers; pack it with trainable='auto' (tools/pack.py "
                                 "--trainable auto), or add them now with Adapter(..., "
                                 "trainable=[names]) or add_graphs=True (python -m rbe_edge "
                                 "adapt --trainable auto)")
        elif record is not None:
            names = [trainable] if isinstance(trainable, str) else list(trainable)
            if sorted(names) == sorted(record["trainable"]):
                return list(record["trainable"])
        # The native engine needs the new set's head to compile, so an
        # unsupported one must fail before the bundle's files change.
        graphs = tg.add_training_graphs(self.bundle, trainable, require_native=native)
        return graphs.trainable

    def _warn_if_state_mismatch(self) -> None:
        state = self.bundle.manifest.get("adaptation")
        if state and state.get("model.rbe_sha256") != sha256_of(self.bundle.path / "model.rbe"):
            logger.warning("%s: model.rbe was saved after the manifest's adaptation record "
                           "(an interrupted save); the planes in model.rbe are used",
                           self.bundle.path)

    def _prepare(self, loss: str, output: Optional[str]) -> Dict:
        """Return the graphs and sessions of (loss, output), built on first use."""
        if loss not in LOSS_KINDS:
            raise AdaptError(f"loss={loss!r} is unknown; expected one of {list(LOSS_KINDS)}")
        output = output or self._output or self._infer.graph.output[0].name
        key = (loss, output)
        if key in self._graphs:
            return self._graphs[key]

        if self.engine == "native":
            prepared = self._prepare_native(loss, output)
        else:
            prepared = self._prepare_onnxruntime(loss, output)
        dims = static_dims(prepared["output_value"])
        prepared["classes"] = dims[-1] if dims else None
        self._graphs[key] = prepared
        return prepared

    def _prepare_onnxruntime(self, loss: str, output: str) -> Dict:
        graphs = tg.build_training_graphs(self.bundle, self.trainable, loss, output)
        record = tg.training_record(self.bundle) or {}
        if (record.get("loss"), record.get("output")) == (loss, graphs.output) and \
                sorted(record.get("trainable", [])) == sorted(self.trainable):
            graphs.train_step = tg.load_train_step(self.bundle)
        prepared = self._backbone_part(graphs.backbone, graphs.boundary)
        prepared.update(
            graphs=graphs, output=graphs.output,
            output_value=next(v for v in graphs.head.graph.output if v.name == graphs.output),
            head=make_session(graphs.head, self.bundle.path, "head", self.threads),
            train=make_session(graphs.train_step, self.bundle.path, "train_step",
                               self.threads))
        return prepared

    def _prepare_native(self, loss: str, output: str) -> Dict:
        """Load the stored program, or cut the graph and compile one when there is none.

        The stored path skips the graph cut and its shape inference, whose
        memory would otherwise count against the engine's small footprint.
        """
        stored = tg.stored_native_training(self.bundle, self.trainable, output)
        if stored is not None:
            program, backbone, boundary = stored
            value = next(v for v in self._infer.graph.output if v.name == output)
        else:
            graphs = tg.build_training_graphs(self.bundle, self.trainable, loss, output)
            program = tg.compile_native_program(self.bundle, graphs)
            backbone, boundary = graphs.backbone, graphs.boundary
            value = next(v for v in graphs.head.graph.output if v.name == graphs.output)

        container = self.bundle.container

        def packed_of(name: str):
            return self.packed.get(name) or container.packed_tensor(name)

        prepared = self._backbone_part(backbone, boundary)
        prepared.update(output=program.output, output_value=value,
                        native=NativeEngine(program, packed_of, self.accum,
                                            self._native_scaling, loss, self._where(),
                                            self.threads or 1))
        return prepared

    def _backbone_part(self, backbone, boundary: List[str]) -> Dict:
        if backbone is None:
            return {"boundary": boundary, "backbone": None}
        return {"boundary": boundary,
                "backbone": make_session(backbone, self.bundle.path, "backbone", self.threads),
                "backbone_inputs": {v.name for v in backbone.graph.input},
                "backbone_outputs": [v.name for v in backbone.graph.output]}

    # ---- Data ----

    def _where(self) -> str:
        return str(self.bundle.path)

    def _features(self, prepared: Dict, inputs: Inputs) -> (Dict[str, np.ndarray], int):
        """Check `inputs` and return the boundary tensors (backbone outputs) per example."""
        feeds, count = check_inputs(inputs, self._inputs, self._where())
        features = {name: feeds[name] for name in prepared["boundary"] if name in feeds}
        if prepared["backbone"] is not None:
            names = prepared["backbone_outputs"]
            used = {n: feeds[n] for n in prepared["backbone_inputs"]}
            values = run_chunked(prepared["backbone"], used, {}, names, self._limit)
            features.update(zip(names, values))
        return features, count

    def _weight_feeds(self) -> Dict[str, np.ndarray]:
        feeds = {}
        for name, packed in self.packed.items():
            planes, scale, zero = parameter_inputs(name)
            feeds.update({planes: packed.planes, scale: packed.scale, zero: packed.zero})
        return feeds

    def _labels(self, prepared, labels, count: int, features, loss: str) -> np.ndarray:
        value = prepared["output_value"]
        classes = prepared["classes"]
        if classes is None and loss == "cross_entropy":
            # Shape inference left the class axis symbolic, so one forward run
            # measures it: the loss silently ignores out-of-range labels.
            first = {name: array[:1] for name, array in features.items()}
            classes = self._run_head(prepared, first).shape[-1]
        return check_labels(labels, count, loss, value, classes, self._where())

    # ---- Training ----

    def fit(self, inputs: Inputs, labels, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
            batch_size: int = DEFAULT_BATCH_SIZE, loss: str = "cross_entropy",
            output: Optional[str] = None, seed: int = 0, progress: bool = True) -> "Adapter":
        """Train on `inputs` and `labels` for `steps` steps; the losses extend `history`.

        Everything is checked before the first step; a bad argument raises
        AdaptError and leaves the planes untouched.
        """
        self._check_open()
        _check_positive_int("steps", steps)
        _check_positive_int("batch_size", batch_size)
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise AdaptError(f"lr={lr!r} is invalid; expected a positive finite number")
        prepared = self._prepare(loss, output)
        features, count = self._features(prepared, inputs)
        targets = self._labels(prepared, labels, count, features, loss)
        self._loss, self._output = loss, prepared["output"]

        rng = np.random.default_rng(seed)
        batches = _batches(rng, count, batch_size)
        for _ in tqdm(range(steps), desc="adapt", unit="step", disable=not progress):
            index = next(batches)
            if self.engine == "native":
                value = self._native_step(prepared, features, targets, index, lr, seed)
            else:
                value, grads = self._gradients(prepared, features, targets, index)
                self._apply(grads, lr, seed)
            self.history.append(value)
            if self.fold_every and self.steps_done % self.fold_every == 0:
                self._fold()
        self._fold()
        return self

    def _gradients(self, prepared, features, targets, index):
        """Return (mean loss, gradients by weight) over the examples `index`."""
        graphs: TrainingGraphs = prepared["graphs"]
        names = [LOSS_OUTPUT] + [graphs.gradient_output(n) for n in self.trainable]
        feeds = {name: array[index] for name, array in features.items()}
        feeds[LABEL_INPUT] = targets[index]
        size = self._limit or len(index)
        total, grads = 0.0, None
        for start in range(0, len(index), size):
            part = {name: array[start:start + size] for name, array in feeds.items()}
            part.update(self._weight_feeds())
            values = prepared["train"].run(names, part)
            weight = len(part[LABEL_INPUT])
            total += float(values[0]) * weight
            scaled = [v * weight for v in values[1:]]
            grads = scaled if grads is None else [g + s for g, s in zip(grads, scaled)]

        grads = [g / len(index) for g in grads]
        value = total / len(index)
        if not math.isfinite(value) or not all(np.isfinite(g).all() for g in grads):
            raise AdaptError(f"{self._where()}: the loss diverged at step {self.steps_done} "
                             f"(loss {value}); lower lr")
        return value, dict(zip(self.trainable, grads))

    def _native_step(self, prepared, features, targets, index, lr: float, seed: int) -> float:
        engine: NativeEngine = prepared["native"]
        boundary = features[engine.program.input][index]
        # The C core folds during the step when fit() would fold after it.
        fold = bool(self.accum) and bool(self.fold_every) and \
            (self.steps_done + 1) % self.fold_every == 0
        value = engine.step(boundary, targets[index], loss=self._loss, lr=float(lr),
                            mode=self.mode, upper_planes=self.upper_planes, seed=seed,
                            step=self.steps_done, fold=fold)
        if value is None:
            raise AdaptError(f"{self._where()}: the loss diverged at step {self.steps_done} "
                             "(a non-finite loss or gradient; no plane changed); lower lr")
        self.steps_done += 1
        if fold:
            self._folded_at = self.steps_done
        return value

    def _apply(self, grads: Dict[str, np.ndarray], lr: float, seed: int) -> None:
        for name, packed in self.packed.items():
            grad = grads[name]
            if self.optimizer == "scaled":
                grad = self.scaling[name].scale(grad)
            update_upper(packed, grad, upper_planes=self.upper_planes,
                         learning_rate=float(lr), mode=self.mode, accum=self.accum.get(name),
                         seed=seed, step=self.steps_done)
        self.steps_done += 1

    def _fold(self) -> None:
        # Only after new steps: folding again with no step in between can still
        # move a code whose remainder rounds to half a code.
        if self._folded_at == self.steps_done:
            return
        self._folded_at = self.steps_done
        for name, accum in self.accum.items():
            fold_lsb(self.packed[name], accum, upper_planes=self.upper_planes)

    # ---- Inference ----

    def predict(self, inputs: Inputs, output: Optional[str] = None) -> np.ndarray:
        """Return the model output (the one fit() trained, by default) for `inputs`."""
        self._check_open()
        prepared = self._prepare(self._loss, output or self._output)
        features, _ = self._features(prepared, inputs)
        return self._run_head(prepared, features)

    def _run_head(self, prepared: Dict, features: Dict[str, np.ndarray]) -> np.ndarray:
        if "native" in prepared:
            engine: NativeEngine = prepared["native"]
            return engine.forward(features[engine.program.input])
        graphs: TrainingGraphs = prepared["graphs"]
        used = {v.name for v in graphs.head.graph.input}
        boundary = {name: features[name] for name in graphs.boundary if name in used}
        (result,) = run_chunked(prepared["head"], boundary, self._weight_feeds(),
                                [graphs.output], self._limit)
        return result

    def evaluate(self, inputs: Inputs, labels, loss: Optional[str] = None,
                 output: Optional[str] = None) -> Dict[str, float]:
        """Return {"accuracy", "loss"} for cross-entropy or {"loss"} for mse."""
        self._check_open()
        loss = loss or self._loss
        prepared = self._prepare(loss, output or self._output)
        features, count = self._features(prepared, inputs)
        targets = self._labels(prepared, labels, count, features, loss)
        predictions = self._run_head(prepared, features)
        if loss == "mse":
            return {"loss": float(np.mean((predictions - targets) ** 2))}
        shifted = predictions - predictions.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)
        return {"accuracy": float(np.mean(predictions.argmax(axis=-1) == targets)),
                "loss": float(-picked.mean())}

    # ---- Saving ----

    def state_bytes_per_weight(self) -> float:
        """Return the training state per trainable weight in bytes.

        It counts the planes, the accumulator byte (accumulate mode) and the
        per-tensor gradient scaling; the frozen scales and zero points are not counted.
        """
        weights = sum(p.rows * p.cols for p in self.packed.values())
        planes = sum(p.bits * p.rows * p.cols / 8 for p in self.packed.values())
        accum = sum(a.size for a in self.accum.values())
        scaling = sum(s.nbytes for s in self.scaling.values()) if self.optimizer == "scaled" else 0
        return (planes + accum + scaling) / weights

    def save(self) -> Path:
        """Fold, then write the adapted planes into model.rbe and record them in manifest.json.

        model.rbe and manifest.json are each replaced atomically, model.rbe
        first: a crash leaves the previous or the new planes, and a bundle
        that opens either way.
        """
        self._check_open()
        self._fold()
        bundle = self.bundle
        if remove_temporaries(bundle.path, ["model.rbe", "manifest.json"]):
            logger.info("%s: removed temporary files of an interrupted save", bundle.path)
        bundle.container.verify()
        tensors = [self.packed.get(name) or bundle.container.packed_tensor(name)
                   for name in bundle.tensor_names]
        path = bundle.path / "model.rbe"
        write_container(path, tensors)
        reopened = Container.open(path)
        bundle.container, previous = reopened, bundle.container
        previous.close()

        manifest = dict(bundle.manifest)
        manifest["adaptation"] = {
            "trainable": self.trainable, "steps": self.steps_done,
            "upper_planes": self.upper_planes, "mode": self.mode,
            "model.rbe_sha256": sha256_of(path),
        }
        write_manifest(bundle.path, manifest)
        bundle.manifest = manifest
        logger.info("%s: saved the adapted planes after %d steps", bundle.path, self.steps_done)
        return bundle.path

    def export_onnx(self, path) -> Path:
        """Write a plain float32 ONNX model of the adapted weights to `path`."""
        self._check_open()
        check_export_path(path)
        self._fold()
        container = self.bundle.container
        container.verify()

        def packed_of(name: str):
            return self.packed.get(name) or container.packed_tensor(name)

        model = float_model(self._infer, packed_of)
        return write_float_model(model, path, str(self.bundle.path))

    def close(self) -> None:
        """Close the bundle if the Adapter opened it; later calls raise AdaptError."""
        self._closed = True
        if self._owns_bundle:
            self.bundle.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AdaptError(f"{self.bundle.path}: this Adapter is closed; create a new one")

    def __enter__(self) -> "Adapter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise AdaptError(f"engine={engine!r} is unknown; expected one of {list(ENGINES)}")


def _check_options(mode: str, fold_every, optimizer: str) -> None:
    if mode not in MODES:
        raise AdaptError(f"mode={mode!r} is unknown; expected one of {sorted(MODES)}")
    if isinstance(fold_every, bool) or not isinstance(fold_every, int) or fold_every < 0:
        raise AdaptError(f"fold_every={fold_every!r} is invalid; expected an integer >= 0")
    if optimizer not in OPTIMIZERS:
        raise AdaptError(f"optimizer={optimizer!r} is unknown; expected one of {OPTIMIZERS}")


def _check_threads(threads) -> None:
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise AdaptError(f"threads={threads!r} is invalid; expected None or an integer "
                         "in 1..256")


def _check_upper_planes(upper_planes, bits: int, where) -> int:
    if isinstance(upper_planes, bool) or not isinstance(upper_planes, int) or \
            not 1 <= upper_planes <= bits:
        raise AdaptError(f"{where}: upper_planes={upper_planes!r} is out of range; the trainable "
                         f"tensors have {bits} bits, so expected 1..{bits}")
    return upper_planes


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise AdaptError(f"{name}={value!r} is invalid; expected a positive integer")


def _batches(rng: np.random.Generator, count: int, batch_size: int):
    """Yield the example indices of each step: shuffled epochs, or all examples if they fit a batch."""
    if batch_size >= count:
        while True:
            yield np.arange(count)
    while True:
        order = rng.permutation(count)
        for start in range(0, count - batch_size + 1, batch_size):
            yield order[start:start + batch_size]
