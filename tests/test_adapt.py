"""Adapter end to end: training graphs, fit, predict, evaluate, save, export, pack hook and CLI."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from adapt_models import batched_mlp, fixed_batch_mlp, make_bundle, two_input_mlp
from rbe_edge import Adapter, Bundle
from rbe_edge.adapt import build_training_graphs
from rbe_edge.adapt.graph_cut import LABEL_INPUT, LOSS_OUTPUT, parameter_inputs
from rbe_edge.adapt.sessions import make_session
from rbe_edge.cli import main as cli_main


def _data(count, features, classes, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((count, features)).astype(np.float32),
            rng.integers(0, classes, count))


def _run_bundle(bundle_dir, x):
    with Bundle.open(bundle_dir) as bundle:
        session = bundle.session()
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def test_backbone_and_head_reproduce_the_inference_graph(tmp_path):
    bundle_dir = make_bundle(tmp_path, fixed_batch_mlp())
    x, _ = _data(5, 64, 40)
    with Bundle.open(bundle_dir) as bundle:
        graphs = build_training_graphs(bundle, "auto")
        backbone = make_session(graphs.backbone, bundle.path, "backbone")
        head = make_session(graphs.head, bundle.path, "head")
        weights = {}
        for name in graphs.trainable:
            packed = bundle.container.packed_tensor(name)
            weights.update(zip(parameter_inputs(name), (packed.planes, packed.scale, packed.zero)))

    assert graphs.trainable == ["w2", "w3"], "auto should pick the last two weight-bearing layers"
    assert graphs.boundary == ["a1"], "the cut should sit after the first layer's Relu"
    got = []
    for row in x:
        (features,) = backbone.run(graphs.boundary, {"x": row[None]})
        got.append(head.run(["y"], {"a1": features, **weights})[0])
    np.testing.assert_allclose(np.concatenate(got), _run_bundle(bundle_dir, x), rtol=1e-5,
                               atol=1e-5, err_msg="backbone + head must equal infer.onnx")


def test_planes_step_gradients_equal_the_float_step(tmp_path):
    """train_step.onnx with planes inputs and its float-weight twin give the same gradients."""
    bundle_dir = make_bundle(tmp_path, batched_mlp())
    x, y = _data(6, 16, 8)
    with Bundle.open(bundle_dir) as bundle:
        planes = build_training_graphs(bundle, ["w2", "w3"])
        floats = build_training_graphs(bundle, ["w2", "w3"], float_weights=True)
        packed = {n: bundle.container.packed_tensor(n) for n in planes.trainable}
        (a1,) = make_session(planes.backbone, bundle.path, "b").run(["a1"], {"x": x})
        step = make_session(planes.train_step, bundle.path, "t")
        twin = make_session(floats.train_step, bundle.path, "f")

    names = [LOSS_OUTPUT] + [planes.gradient_output(n) for n in planes.trainable]
    feed = {"a1": a1, LABEL_INPUT: y}
    plane_feed = dict(feed)
    float_feed = dict(feed)
    for name, p in packed.items():
        plane_feed.update(zip(parameter_inputs(name), (p.planes, p.scale, p.zero)))
        float_feed[floats.decoded[name]] = p.decode()
    for got, want in zip(step.run(names, plane_feed), twin.run(names, float_feed)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fit_learns_and_save_persists_the_adapted_planes(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable="auto")
    x, y = _data(24, 16, 8)
    with Adapter(bundle_dir) as adapter:
        before = adapter.evaluate(x, y)
        lower_before = {name: packed.planes[adapter.upper_planes:].copy()
                        for name, packed in adapter.packed.items()}
        adapter.fit(x, y, steps=60, lr=0.01, batch_size=8, progress=False)
        after = adapter.evaluate(x, y)
        predicted = adapter.predict(x)
        adapter.save()
        changed = any((p.planes[adapter.upper_planes:] != lower_before[n]).any()
                      for n, p in adapter.packed.items())

    assert len(adapter.history) == 60
    assert after["loss"] < before["loss"] - 0.3, (before, after)
    assert after["accuracy"] >= before["accuracy"] + 0.25, (before, after)
    assert changed, "folding should have moved accumulated remainders into the lower planes"

    np.testing.assert_allclose(_run_bundle(bundle_dir, x), predicted, rtol=1e-5, atol=1e-5,
                               err_msg="infer.onnx of the saved bundle must run the adapted planes")
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["adaptation"]["steps"] == 60
    with Adapter(bundle_dir) as reopened:
        assert reopened.evaluate(x, y) == after


def test_export_onnx_plain_float_model(tmp_path):
    bundle_dir = make_bundle(tmp_path, fixed_batch_mlp())
    x, y = _data(10, 64, 40)
    with Adapter(bundle_dir, ["w3"]) as adapter:
        adapter.fit(x, y, steps=5, batch_size=4, progress=False)
        path = adapter.export_onnx(tmp_path / "adapted.onnx")
        predicted = adapter.predict(x)

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert not [n for n in model.graph.node if n.domain == "rbe_edge"]
    assert not model.functions
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {"x": row[None]})[0] for row in x])
    np.testing.assert_allclose(got, predicted, rtol=1e-5, atol=1e-5)


def test_mse_on_named_second_output(tmp_path):
    bundle_dir = make_bundle(tmp_path, two_input_mlp())
    rng = np.random.default_rng(1)
    inputs = {"a": rng.standard_normal((16, 16)).astype(np.float32),
              "b": rng.standard_normal((16, 16)).astype(np.float32)}
    targets = rng.standard_normal((16, 8)).astype(np.float32)
    with Adapter(bundle_dir, ["w1", "w2"]) as adapter:
        before = adapter.evaluate(inputs, targets, loss="mse", output="z")
        adapter.fit(inputs, targets, steps=40, lr=0.01, batch_size=16, loss="mse", output="z",
                    progress=False)
        after = adapter.evaluate(inputs, targets, loss="mse", output="z")
        z = adapter.predict(inputs)
        y = adapter.predict(inputs, output="y")

    assert set(after) == {"loss"}
    assert after["loss"] < 0.8 * before["loss"], (before, after)
    np.testing.assert_allclose(z, 2 * y, rtol=1e-5, atol=1e-6)


def test_sign_mode_holds_no_accumulator(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp())
    x, y = _data(16, 16, 8)
    with Adapter(bundle_dir, ["w3"], mode="sign", upper_planes=3) as adapter:
        start = adapter.packed["w3"].planes.copy()
        adapter.fit(x, y, steps=5, lr=0.05, batch_size=16, progress=False)
        assert not adapter.accum
        assert adapter.state_bytes_per_weight() == pytest.approx(1.0 + 4 / (24 * 8))
        assert (adapter.packed["w3"].planes[:3] != start[:3]).any()
        np.testing.assert_array_equal(adapter.packed["w3"].planes[3:], start[3:])


def test_accumulate_mode_holds_two_bytes_per_weight(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp())
    with Adapter(bundle_dir, ["w2", "w3"]) as adapter:
        weights = 32 * 24 + 24 * 8
        assert adapter.state_bytes_per_weight() == pytest.approx(2.0 + 8 / weights)


def test_pack_with_trainable_writes_the_training_graphs(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w3"])
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["training"]["trainable"] == ["w3"]
    for name in ("backbone.onnx", "train_step.onnx"):
        onnx.checker.check_model(str(bundle_dir / name))
        assert manifest["files"][name]["sha256"]
    train_step = onnx.load(str(bundle_dir / "train_step.onnx"), load_external_data=False)
    inputs = {value.name for value in train_step.graph.input}
    assert set(parameter_inputs("w3")) <= inputs
    assert "w2.rbe_planes" not in inputs, "frozen weights stay inside the graph"


def test_cli_pack_and_adapt(tmp_path, capsys):
    onnx.save(batched_mlp(), tmp_path / "model.onnx")
    bundle_dir = tmp_path / "bundle"
    assert cli_main(["pack", str(tmp_path / "model.onnx"), "-o", str(bundle_dir), "--bits", "8",
                     "--no-search", "--min-elements", "128", "--trainable", "auto",
                     "--quiet"]) == 0
    x, y = _data(12, 16, 8)
    np.savez(tmp_path / "data.npz", x=x, labels=y)
    assert cli_main(["adapt", str(bundle_dir), "--data", str(tmp_path / "data.npz"),
                     "--steps", "5", "--batch-size", "4", "--quiet",
                     "--export", str(tmp_path / "adapted.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "adapted ['w2', 'w3'] for 5 steps" in printed
    onnx.checker.check_model(str(tmp_path / "adapted.onnx"), full_check=True)
    assert json.loads((bundle_dir / "manifest.json").read_text())["adaptation"]["steps"] == 5


@pytest.mark.parametrize("kind", ["cnn", "float16_mlp", "transformer_block"])
def test_other_architectures_adapt_and_export(tmp_path, kind):
    """Conv + MaxPool, float16 weights (decode then Cast) and attention + LayerNorm."""
    from bundle_models import cnn, mlp, transformer_block

    rng = np.random.default_rng(3)
    if kind == "cnn":
        model, x, loss = cnn(), rng.standard_normal((8, 3, 16, 16)), "cross_entropy"
        labels = rng.integers(0, 10, 8)
    elif kind == "float16_mlp":
        model, x, loss = mlp(dtype=np.float16), rng.standard_normal((8, 64)), "cross_entropy"
        labels = rng.integers(0, 40, 8)
    else:
        model, x, loss = transformer_block(), rng.standard_normal((8, 8, 64)), "mse"
        labels = rng.standard_normal((8, 8, 64)).astype(np.float32)
    dtype = np.float16 if kind == "float16_mlp" else np.float32
    x = x.astype(dtype)
    bundle_dir = make_bundle(tmp_path, model, trainable="auto")

    with Adapter(bundle_dir) as adapter:
        before = adapter.evaluate(x, labels, loss=loss)["loss"]
        adapter.fit(x, labels, steps=20, lr=0.01, batch_size=8, loss=loss, progress=False)
        after = adapter.evaluate(x, labels, loss=loss)["loss"]
        predicted = adapter.predict(x)
        path = adapter.export_onnx(tmp_path / "adapted.onnx")

    assert after < 0.5 * before, f"{kind}: loss {before} -> {after}"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    exported = np.concatenate([session.run(None, {name: row[None]})[0] for row in x])
    tolerance = 1e-2 if dtype == np.float16 else 1e-4
    np.testing.assert_allclose(exported.astype(np.float32), predicted.astype(np.float32),
                               rtol=tolerance, atol=tolerance)


def test_one_example_per_run_matches_batched_gradients(tmp_path):
    """A model with batch size 1 averages per-example gradients to the batched result."""
    batched = batched_mlp()
    single = batched_mlp()
    for value in list(single.graph.input) + list(single.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    x, y = _data(6, 16, 8)
    results = []
    for name, model in (("batched", batched), ("single", single)):
        bundle_dir = make_bundle(tmp_path, model, name=name, trainable="auto")
        with Adapter(bundle_dir) as adapter:
            prepared = adapter._prepare("cross_entropy", None)
            features, _ = adapter._features(prepared, x)
            results.append(adapter._gradients(prepared, features, y, np.arange(6)))

    (loss_batched, grads_batched), (loss_single, grads_single) = results
    assert loss_single == pytest.approx(loss_batched, rel=1e-5)
    for name in grads_batched:
        np.testing.assert_allclose(grads_single[name], grads_batched[name], rtol=1e-4, atol=1e-6,
                                   err_msg=f"gradient of {name}")


def test_new_trainable_set_replaces_the_training_graphs(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w3"])
    with Adapter(bundle_dir, ["w1", "w3"]) as adapter:
        assert adapter.trainable == ["w1", "w3"]
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["training"]["trainable"] == ["w1", "w3"]
    assert manifest["training"]["boundary"] == ["x"], "w1 is read by the first node"
    assert "backbone.onnx" not in manifest["files"]
    assert not (bundle_dir / "backbone.onnx").exists(), "the stale backbone must be removed"
    with Adapter(bundle_dir) as adapter:
        x, y = _data(8, 16, 8)
        adapter.fit(x, y, steps=2, batch_size=4, progress=False)
        assert len(adapter.history) == 2
