"""The native engine against the onnxruntime engine on the same bundle, data and seed.

Stated tolerances: in sign mode both engines end with identical planes and
their loss curves agree within a relative 1e-5 (the two engines sum in
different orders in float32). In accumulate mode, a last-bit difference in a
gradient sometimes flips the stochastic rounding of a remainder (as early as
the first step), after which the engines follow different but equally good
trajectories. There the first losses, computed before any step, agree within
1e-5, and the mean losses of the last five steps within 25% of each other
(measured: at most 1.4% on these models).
"""
import json
import shutil

import numpy as np
import pytest

from adapt_models import batched_mlp, make_bundle, snapshot
from native_models import ffn_head, gelu_mul_dropout_head, gelu_op_head, residual_head
from rbe_edge.adapt import Adapter, AdaptError, NativeUnsupportedError

EXACT = 1e-5
ACCUMULATE = 0.25


def _data(width, outputs, loss, count=40, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, width)).astype(np.float32)
    if loss == "cross_entropy":
        return x, rng.integers(0, outputs, count)
    return x, rng.standard_normal((count, outputs)).astype(np.float32)


def _train_both(tmp_path, model, trainable, width, outputs, *, mode, optimizer,
                loss="cross_entropy", steps=20):
    first = make_bundle(tmp_path, model, name="ort", trainable=trainable)
    second = tmp_path / "native"
    shutil.copytree(first, second)
    x, labels = _data(width, outputs, loss)
    results = {}
    for engine, path in (("onnxruntime", first), ("native", second)):
        with Adapter(path, engine=engine, mode=mode, optimizer=optimizer) as adapter:
            adapter.fit(x, labels, steps=steps, lr=0.01, batch_size=16, loss=loss, seed=3,
                        progress=False)
            planes = {name: adapter.packed[name].planes.copy() for name in adapter.trainable}
            results[engine] = (np.array(adapter.history), planes, adapter.predict(x))
    return results["onnxruntime"], results["native"]


CASES = [
    ("mlp", batched_mlp, ["w2", "w3"], 16, 8, "cross_entropy"),
    ("ffn_cross_entropy", ffn_head, ["w_up", "w_out"], 32, 8, "cross_entropy"),
    ("ffn_mse", ffn_head, ["w_up", "w_down", "w_out"], 32, 8, "mse"),
    ("gelu_tanh_op", lambda: gelu_op_head(approximate="tanh"), ["w1", "w2"], 24, 6,
     "cross_entropy"),
    ("gelu_erf_op", lambda: gelu_op_head(approximate="none"), ["w1", "w2"], 24, 6,
     "cross_entropy"),
    ("gelu_mul_dropout", lambda: gelu_mul_dropout_head(), ["w1", "w2"], 24, 6,
     "cross_entropy"),
]


@pytest.mark.parametrize("optimizer", ["sgd", "scaled"])
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_sign_mode_engines_match(tmp_path, case, optimizer):
    _, build, trainable, width, outputs, loss = case
    (ort_loss, ort_planes, ort_out), (nat_loss, nat_planes, nat_out) = _train_both(
        tmp_path, build(), trainable, width, outputs, mode="sign", optimizer=optimizer,
        loss=loss)

    np.testing.assert_allclose(nat_loss, ort_loss, rtol=EXACT,
                               err_msg="loss curves of the native and onnxruntime engines differ")
    for name, planes in ort_planes.items():
        differing = int(np.count_nonzero(nat_planes[name] != planes))
        assert differing == 0, f"tensor '{name}': {differing} plane bytes differ between engines"
    np.testing.assert_allclose(nat_out, ort_out, rtol=1e-4, atol=1e-5,
                               err_msg="predictions after training differ between engines")


@pytest.mark.parametrize("optimizer", ["sgd", "scaled"])
@pytest.mark.parametrize("case", CASES[:3], ids=[case[0] for case in CASES[:3]])
def test_accumulate_mode_engines_match(tmp_path, case, optimizer):
    _, build, trainable, width, outputs, loss = case
    (ort_loss, _, _), (nat_loss, _, _) = _train_both(
        tmp_path, build(), trainable, width, outputs, mode="accumulate", optimizer=optimizer,
        loss=loss)

    assert nat_loss[0] == pytest.approx(ort_loss[0], rel=EXACT), \
        "the losses before the first step differ between engines"
    late_native, late_ort = nat_loss[-5:].mean(), ort_loss[-5:].mean()
    assert abs(late_native - late_ort) <= ACCUMULATE * late_ort, (
        f"mean loss of the last five steps: native {late_native:.4f}, onnxruntime "
        f"{late_ort:.4f}; the stated tolerance is {ACCUMULATE:.0%}")
    assert late_native < nat_loss[:5].mean(), "the native engine did not lower the loss"


def test_pack_stores_native_program(tmp_path):
    bundle_dir = make_bundle(tmp_path, ffn_head(), trainable=["w_up", "w_out"])
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["training"]["native_program"] == "native_program.json"
    program = json.loads((bundle_dir / "native_program.json").read_text())
    layers = program["layers"]

    assert [layer["kind"] for layer in layers] == \
        ["dense", "gelu", "dense", "layer_norm", "tanh", "dense"]
    assert [layers[i]["trainable"] for i in (0, 2, 5)] == [True, False, True]
    assert program["input"] == "x"
    assert program["input_width"] == 32
    assert layers[0]["bias"] == {"tensor": "b_up", "planes": 8}, \
        "a bias of 128 values or more is packed and read from model.rbe"
    assert layers[2]["bias"] == {"offset": 0, "count": 32}
    assert layers[3]["epsilon"] == pytest.approx(1e-5)
    assert layers[3]["gamma"] == {"offset": 32, "count": 32}
    assert (bundle_dir / "native_program.bin").stat().st_size == 4 * (32 + 32 + 32 + 8)
    for name in ("native_program.json", "native_program.bin"):
        assert manifest["files"][name]["sha256"]


def test_residual_head_names_node(tmp_path):
    bundle_dir = make_bundle(tmp_path, residual_head(), trainable=["w1", "w2"])
    assert not (bundle_dir / "native_program.json").exists()
    before = snapshot(bundle_dir)

    with pytest.raises(NativeUnsupportedError, match=r"node 'residual' \(Add\)"):
        Adapter(bundle_dir, engine="native")
    assert snapshot(bundle_dir) == before

    x, labels = _data(32, 8, "cross_entropy")
    with Adapter(bundle_dir, engine="onnxruntime") as adapter:
        adapter.fit(x, labels, steps=3, progress=False)
    assert len(adapter.history) == 3


def test_stale_program_removed(tmp_path):
    bundle_dir = make_bundle(tmp_path, residual_head(), trainable=["w2"])
    assert (bundle_dir / "native_program.json").exists(), \
        "a head of one dense layer after the residual compiles"

    with Adapter(bundle_dir, trainable=["w1", "w2"]):
        pass
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert not (bundle_dir / "native_program.json").exists()
    assert "native_program" not in manifest["training"]
    assert "native_program.json" not in manifest["files"]


def test_corrupted_program_rejected(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2", "w3"])
    path = bundle_dir / "native_program.json"
    text = path.read_text()
    assert '"relu"' in text
    path.write_text(text.replace('"relu"', '"tanh"'))

    with pytest.raises(AdaptError, match="native_program.json: its SHA-256 does not match"):
        Adapter(bundle_dir, engine="native")


def test_bundle_without_program_compiles(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w3"])
    for name in ("native_program.json", "native_program.bin"):
        (bundle_dir / name).unlink()
    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["training"]["native_program"]
    manifest_path.write_text(json.dumps(manifest))

    x, labels = _data(16, 8, "cross_entropy")
    with Adapter(bundle_dir, engine="native") as adapter:
        adapter.fit(x, labels, steps=5, progress=False)
        assert adapter.evaluate(x, labels)["accuracy"] >= 0.0
    assert len(adapter.history) == 5


def test_divergence_leaves_planes(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2", "w3"])
    x, labels = _data(16, 8, "cross_entropy")
    x[3] = 3e38        # finite, but the products overflow to infinity

    with Adapter(bundle_dir, engine="native") as adapter:
        before = {name: packed.planes.copy() for name, packed in adapter.packed.items()}
        with pytest.raises(AdaptError, match="diverged at step 0"):
            adapter.fit(x, labels, steps=2, batch_size=40, progress=False)
        for name, packed in adapter.packed.items():
            assert np.array_equal(packed.planes, before[name]), f"'{name}' changed"
        assert adapter.steps_done == 0


def test_native_save_reopens(tmp_path):
    bundle_dir = make_bundle(tmp_path, ffn_head(), trainable="auto")
    x, labels = _data(32, 8, "cross_entropy")
    with Adapter(bundle_dir, engine="native") as adapter:
        adapter.fit(x, labels, steps=10, lr=0.02, progress=False)
        expected = adapter.predict(x)
        adapter.save()

    with Adapter(bundle_dir, engine="native") as reopened:
        np.testing.assert_allclose(reopened.predict(x), expected, rtol=1e-6, atol=1e-6)
    with Adapter(bundle_dir, engine="onnxruntime") as other:
        np.testing.assert_allclose(other.predict(x), expected, rtol=1e-4, atol=1e-5)


def test_cli_adapts_native(tmp_path, capsys):
    from rbe_edge.cli import main as cli_main

    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2", "w3"])
    x, labels = _data(16, 8, "cross_entropy", count=12)
    np.savez(tmp_path / "data.npz", x=x, labels=labels)

    assert cli_main(["adapt", str(bundle_dir), "--data", str(tmp_path / "data.npz"),
                     "--engine", "native", "--steps", "5", "--batch-size", "4",
                     "--quiet"]) == 0
    assert "adapted ['w2', 'w3'] for 5 steps" in capsys.readouterr().out
    assert json.loads((bundle_dir / "manifest.json").read_text())["adaptation"]["steps"] == 5


def test_attention_head_rejected(tmp_path):
    from bundle_models import transformer_block

    bundle_dir = make_bundle(tmp_path, transformer_block(), trainable="auto")
    with pytest.raises(NativeUnsupportedError, match=r"node '.+' \(\w+\)"):
        Adapter(bundle_dir, engine="native")


def test_token_rows_match(tmp_path):
    """A head over [N, tokens, width] features trains on every token row, as onnxruntime does."""
    import onnx
    from onnx import TensorProto, helper

    model = batched_mlp()
    model.graph.input[0].CopyFrom(
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16]))
    model.graph.output[0].CopyFrom(
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8]))
    onnx.checker.check_model(model, full_check=True)
    first = make_bundle(tmp_path, model, name="ort", trainable=["w2", "w3"])
    second = tmp_path / "native"
    shutil.copytree(first, second)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 3, 16)).astype(np.float32)
    labels = rng.integers(0, 8, (10, 3))

    histories = []
    for engine, path in (("onnxruntime", first), ("native", second)):
        with Adapter(path, engine=engine, mode="sign") as adapter:
            adapter.fit(x, labels, steps=6, batch_size=4, progress=False)
            histories.append(np.array(adapter.history))
            assert adapter.predict(x).shape == (10, 3, 8)
    np.testing.assert_allclose(histories[1], histories[0], rtol=EXACT)


@pytest.mark.parametrize("kind,node", [
    ("gemm_alpha", "scaled_gemm"), ("gemm_trans_a", "flip"), ("layer_norm_axis0", "norm0"),
    ("softmax", "probs"),
])
def test_unsupported_node_named(tmp_path, kind, node):
    from native_models import single_layer_head

    bundle_dir = make_bundle(tmp_path, single_layer_head(kind), trainable=["w1"])
    with pytest.raises(NativeUnsupportedError, match=rf"node '{node}' \("):
        Adapter(bundle_dir, engine="native")


def test_rejected_set_keeps_bundle(tmp_path):
    bundle_dir = make_bundle(tmp_path, residual_head(), trainable=["w2"])
    before = snapshot(bundle_dir)

    with pytest.raises(NativeUnsupportedError, match=r"node 'residual' \(Add\)"):
        Adapter(bundle_dir, ["w1", "w2"], engine="native")
    assert snapshot(bundle_dir) == before, "a rejected trainable set changed the bundle"


def test_loss_switch_shares_scaling(tmp_path):
    first = make_bundle(tmp_path, batched_mlp(), name="ort", trainable=["w2", "w3"])
    second = tmp_path / "native"
    shutil.copytree(first, second)
    x, classes = _data(16, 8, "cross_entropy")
    _, targets = _data(16, 8, "mse")

    planes = []
    for engine, path in (("onnxruntime", first), ("native", second)):
        with Adapter(path, engine=engine, mode="sign") as adapter:
            for loss, labels in (("cross_entropy", classes), ("mse", targets),
                                 ("cross_entropy", classes)):
                adapter.fit(x, labels, steps=4, loss=loss, batch_size=16, progress=False)
            planes.append({n: p.planes.copy() for n, p in adapter.packed.items()})
    for name in planes[0]:
        differing = int(np.count_nonzero(planes[0][name] != planes[1][name]))
        assert differing == 0, f"'{name}': {differing} plane bytes differ after loss switches"


def test_threads_match_one_thread(tmp_path):
    first = make_bundle(tmp_path, ffn_head(), name="one", trainable=["w_up", "w_out"])
    second = tmp_path / "three"
    shutil.copytree(first, second)
    x, labels = _data(32, 8, "cross_entropy")

    results = []
    for threads, path in ((1, first), (3, second)):
        with Adapter(path, engine="native", threads=threads) as adapter:
            adapter.fit(x, labels, steps=5, progress=False)
            results.append((adapter.history, {n: p.planes.copy()
                                              for n, p in adapter.packed.items()}))
    assert results[0][0] == results[1][0], "losses differ between 1 and 3 threads"
    for name, planes in results[0][1].items():
        assert np.array_equal(planes, results[1][1][name]), f"'{name}' differs with 3 threads"


def test_threads_invalid(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w3"])
    with pytest.raises(AdaptError, match="threads=0 is invalid"):
        Adapter(bundle_dir, engine="native", threads=0)


def test_verify_checks_program(tmp_path):
    from rbe_edge.cli import main as cli_main

    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2", "w3"])
    assert cli_main(["verify", str(bundle_dir)]) == 0
    path = bundle_dir / "native_program.bin"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))

    from rbe_edge import Bundle, BundleError
    with Bundle.open(bundle_dir) as bundle:
        with pytest.raises(BundleError, match="native_program.bin: its SHA-256 does not match"):
            bundle.verify()


def _tamper_program(bundle_dir, change):
    """Edit native_program.json with `change` and record its new digest, as a careless tool would."""
    import hashlib

    path = bundle_dir / "native_program.json"
    program = json.loads(path.read_text())
    change(program)
    data = json.dumps(program).encode()
    path.write_bytes(data)
    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["native_program.json"]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("change,message", [
    (lambda p: p["layers"][0].update(trainable=False), "'trainable' of weight 'w2' must be true"),
    (lambda p: p["layers"][0].update(planes=99), "'planes' in 1..16"),
    (lambda p: p["layers"][0].update(bias={"offset": 0, "count": 9999}), "reads floats"),
    (lambda p: p.update(output="elsewhere"), "ends at 'elsewhere'"),
    (lambda p: p["layers"][1].update(kind="relu6"), "'kind' must be one of"),
    (lambda p: p.update(layers=[]), "non-empty list"),
])
def test_tampered_program_rejected(tmp_path, change, message):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2", "w3"])
    _tamper_program(bundle_dir, change)

    with pytest.raises(AdaptError, match=message) as raised:
        Adapter(bundle_dir, engine="native")
    assert "add_training_graphs" in str(raised.value)


def test_regenerated_program_works(tmp_path):
    from rbe_edge.adapt import add_training_graphs
    from rbe_edge.bundle import Bundle

    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2", "w3"])
    (bundle_dir / "native_program.json").unlink()
    with Bundle.open(bundle_dir) as bundle:
        add_training_graphs(bundle, ["w2", "w3"])
    x, labels = _data(16, 8, "cross_entropy")
    with Adapter(bundle_dir, engine="native") as adapter:
        adapter.fit(x, labels, steps=2, progress=False)
    assert len(adapter.history) == 2


def test_float_weight_suggests_min_elements(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable=["w2"], min_elements=500)
    with pytest.raises(NativeUnsupportedError, match=r"'w3'.*min_elements"):
        Adapter(bundle_dir, engine="native")
