"""Bad input to the Adapter: a clear AdaptError before any plane, file or history changes."""
import numpy as np
import pytest
from onnx import helper

from adapt_models import batched_mlp, fixed_batch_mlp, make_bundle, snapshot, two_input_mlp
from rbe_edge import AdaptError, Adapter, PackError


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("errors"), batched_mlp(), trainable="auto")


@pytest.fixture
def adapter(trained_bundle):
    with Adapter(trained_bundle) as opened:
        yield opened


def _good(count=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, 16)).astype(np.float32), rng.integers(0, 8, count)


def _expect_no_change(adapter, bundle_dir, call, match):
    files = snapshot(bundle_dir)
    planes = {name: p.planes.copy() for name, p in adapter.packed.items()}
    accum = {name: a.copy() for name, a in adapter.accum.items()}
    with pytest.raises(AdaptError, match=match):
        call()
    assert snapshot(bundle_dir) == files, "a rejected call must not touch the bundle"
    for name, p in adapter.packed.items():
        np.testing.assert_array_equal(p.planes, planes[name])
        np.testing.assert_array_equal(adapter.accum[name], accum[name])
    assert adapter.history == []
    assert adapter.steps_done == 0


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1, 2, 3, 4, 5, 6, 8]), r"labels range over 0\.\.8.*8 classes"),
    (np.array([0, 1, 2, 3, 4, 5, 6, -1]), r"labels range over -1\.\.6"),
    (np.zeros(7, np.int64), r"labels have shape \(7,\).*N = 8"),
    (np.zeros(8, np.float32), "integer class indices"),
])
def test_bad_labels(adapter, trained_bundle, labels, match):
    x, _ = _good()
    _expect_no_change(adapter, trained_bundle, lambda: adapter.fit(x, labels, steps=2,
                                                                   progress=False), match)


@pytest.mark.parametrize("x, match", [
    (np.zeros((8, 15), np.float32), r"input 'x' has shape \(8, 15\).*\(N, 16\)"),
    (np.zeros((8, 16, 1), np.float32), r"input 'x' has shape \(8, 16, 1\)"),
    (np.zeros((0, 16), np.float32), "the data is empty"),
    ({"image": np.zeros((8, 16), np.float32)}, r"missing \['x'\], unknown \['image'\]"),
])
def test_inputs_that_do_not_match_the_model(adapter, trained_bundle, x, match):
    _, y = _good()
    labels = y[:0] if isinstance(x, np.ndarray) and len(x) == 0 else y
    _expect_no_change(adapter, trained_bundle, lambda: adapter.fit(x, labels, steps=2,
                                                                   progress=False), match)


def test_nan_in_inputs(adapter, trained_bundle):
    x, y = _good()
    x[5, 3] = np.nan
    _expect_no_change(adapter, trained_bundle,
                      lambda: adapter.fit(x, y, steps=2, progress=False),
                      r"input 'x' holds NaN or infinite values \(first in example 5\)")


def test_nan_mse_targets(adapter, trained_bundle):
    x, _ = _good()
    targets = np.zeros((8, 8), np.float32)
    targets[0, 0] = np.inf
    _expect_no_change(adapter, trained_bundle,
                      lambda: adapter.fit(x, targets, steps=2, loss="mse", progress=False),
                      "targets hold NaN")


@pytest.mark.parametrize("options, match", [
    ({"steps": 0}, "steps=0"), ({"lr": -1.0}, "lr=-1.0"), ({"lr": float("nan")}, "lr=nan"),
    ({"batch_size": 0}, "batch_size=0"), ({"loss": "hinge"}, "loss='hinge'"),
    ({"output": "logits"}, "output 'logits' does not exist"),
])
def test_bad_fit_options(adapter, trained_bundle, options, match):
    x, y = _good()
    _expect_no_change(adapter, trained_bundle,
                      lambda: adapter.fit(x, y, progress=False, **options), match)


def test_two_input_model_needs_a_dict(tmp_path):
    bundle_dir = make_bundle(tmp_path, two_input_mlp(), trainable="auto")
    with Adapter(bundle_dir) as adapter:
        x, y = _good()
        _expect_no_change(adapter, bundle_dir, lambda: adapter.fit(x, y, progress=False),
                          r"the model has inputs \['a', 'b'\]; pass a dict")
        _expect_no_change(adapter, bundle_dir,
                          lambda: adapter.fit({"a": x, "b": x[:4]}, y, progress=False),
                          r"different numbers of examples \[4, 8\]")


def test_trainable_name_that_does_not_exist(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp())
    files = snapshot(bundle_dir)
    with pytest.raises(AdaptError, match=r"trainable tensor 'w9' does not exist; packed tensors "
                                         r"are \['w1', 'w2', 'w3'\]"):
        Adapter(bundle_dir, ["w2", "w9"])
    with pytest.raises(AdaptError, match="trainable tensor 'b2' does not exist"):
        Adapter(bundle_dir, ["b2"])
    assert snapshot(bundle_dir) == files


def test_bundle_packed_without_trainable_layers(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp())
    files = snapshot(bundle_dir)
    with pytest.raises(AdaptError, match="packed without trainable layers.*--trainable auto"):
        Adapter(bundle_dir)
    assert snapshot(bundle_dir) == files
    with Adapter(bundle_dir, add_graphs=True) as adapter:
        assert adapter.trainable == ["w2", "w3"]
    assert "train_step.onnx" in snapshot(bundle_dir)


def test_pack_with_unknown_trainable_leaves_no_bundle(tmp_path):
    # Checked before the quantization search, so a typo costs no packing time.
    with pytest.raises(PackError, match="trainable tensor 'nope' is not among the tensors"):
        make_bundle(tmp_path, batched_mlp(), trainable=["nope"])
    assert not (tmp_path / "bundle").exists()


def test_bad_adapter_options(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp())
    files = snapshot(bundle_dir)
    for options, match in (({"upper_planes": 9}, r"upper_planes=9 is out of range.*1\.\.8"),
                           ({"upper_planes": 0}, "upper_planes=0"),
                           ({"mode": "momentum"}, "mode='momentum'"),
                           ({"engine": "tensorflow"}, "engine='tensorflow'"),
                           ({"optimizer": "adam"}, "optimizer='adam'")):
        with pytest.raises(AdaptError, match=match):
            Adapter(bundle_dir, ["w3"], **options)
        assert snapshot(bundle_dir) == files, f"{options} must be rejected before graphs are added"


def test_bundle_with_only_some_planes(tmp_path):
    bundle_dir = make_bundle(tmp_path, fixed_batch_mlp(), planes=5)
    with pytest.raises(AdaptError, match="holds 5 of 8 planes"):
        Adapter(bundle_dir, ["w3"])


def test_labels_checked_against_a_symbolic_class_axis(tmp_path):
    # Reshape to the tensor's own runtime shape hides the class count from
    # shape inference, so the Adapter must run the model once to learn it.
    model = batched_mlp()
    model.graph.node[-1].output[0] = "y_raw"
    model.graph.node.extend([helper.make_node("Shape", ["y_raw"], ["y_shape"]),
                             helper.make_node("Reshape", ["y_raw", "y_shape"], ["y"])])
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
    bundle_dir = make_bundle(tmp_path, model, trainable="auto")
    with Adapter(bundle_dir) as adapter:
        x, y = _good()
        y[2] = 8
        _expect_no_change(adapter, bundle_dir, lambda: adapter.fit(x, y, progress=False),
                          r"labels range over 0\.\.8, but output 'y' has 8 classes")


@pytest.mark.parametrize("target, match", [
    ("folder", "is a folder; give the path of the .onnx file"),
    ("missing/out.onnx", "does not exist; create it first"),
])
def test_bad_export_path(adapter, trained_bundle, tmp_path, target, match):
    (tmp_path / "folder").mkdir()
    _expect_no_change(adapter, trained_bundle,
                      lambda: adapter.export_onnx(tmp_path / target), match)


def test_cli_checks_export_path_before_training(trained_bundle, tmp_path):
    from rbe_edge.cli import main

    x, y = _good()
    np.savez(tmp_path / "train.npz", x=x, labels=y)
    files = snapshot(trained_bundle)
    code = main(["adapt", str(trained_bundle), "--data", str(tmp_path / "train.npz"),
                 "--steps", "2", "--export", str(tmp_path / "missing" / "out.onnx"), "--quiet"])
    assert code != 0
    assert snapshot(trained_bundle) == files, "a bad --export path must not save the bundle"


def test_closed_adapter_rejects_calls(trained_bundle):
    adapter = Adapter(trained_bundle)
    adapter.close()
    x, y = _good()
    for call in (lambda: adapter.fit(x, y, steps=1, progress=False), adapter.save,
                 lambda: adapter.predict(x)):
        with pytest.raises(AdaptError, match="this Adapter is closed"):
            call()
