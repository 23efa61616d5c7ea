"""pack_model and Bundle on an MLP, a CNN and a transformer block built in the tests."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import bundle_models
from rbe_edge.bundle import Bundle
from rbe_edge.container import Container
from rbe_edge.model_io import make_samples, make_session, relative_error, run_outputs
from rbe_edge.pack import pack_model

MODELS = {
    "mlp": bundle_models.mlp,
    "cnn": bundle_models.cnn,
    "transformer": bundle_models.transformer_block,
}


def outputs_and_reference(model, session, seed=123):
    """Run `session` and the float model on feeds the packer never saw."""
    feeds = make_samples(model, 3, seed=seed)
    reference = run_outputs(make_session(model, "float model"), feeds, "float model")
    return run_outputs(session, feeds, "bundle"), reference


@pytest.fixture(scope="module", params=sorted(MODELS))
def packed(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    model = MODELS[request.param]()
    path = bundle_models.save(model, folder)
    bundle = pack_model(path, folder / "bundle")
    yield request.param, model, bundle
    bundle.close()


def test_full_precision_within_one_percent(packed):
    name, model, bundle = packed
    # The search starts at 8 bits and widens codes until the sample error fits
    # the default 0.5% budget; unseen inputs must then stay within 1%.
    assert 8 <= bundle.bits <= 10, bundle.manifest
    for seed in (123, 456):
        got, reference = outputs_and_reference(model, bundle.session(), seed)
        error = relative_error(got, reference)
        assert error < 0.01, f"{name}: output error {error:.4f} at {bundle.bits} bits"


@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_eight_bits_within_one_percent(name, tmp_path):
    model = MODELS[name]()
    path = bundle_models.save(model, tmp_path)
    with pack_model(path, tmp_path / "b", bits=8, search=False) as bundle:
        assert bundle.bits == 8
        for seed in (1, 2, 3):
            got, reference = outputs_and_reference(model, bundle.session(), seed)
            error = relative_error(got, reference)
            assert error < 0.01, f"{name}: output error {error:.4f} at 8 bits per row"


def test_every_plane_count_runs(packed):
    name, model, bundle = packed
    errors = []
    for planes in range(1, bundle.bits + 1):
        got, reference = outputs_and_reference(model, bundle.session(planes))
        assert all(np.all(np.isfinite(o)) for o in got[0]), f"{name}: non-finite at P={planes}"
        errors.append(relative_error(got, reference))
    assert errors[-1] < errors[0], f"{name}: errors per P {errors}"


def test_infer_onnx_runs_standalone(packed):
    name, model, bundle = packed
    infer = onnx.load(str(bundle.path / "infer.onnx"))
    onnx.checker.check_model(infer, full_check=True)
    domains = {node.domain for node in infer.graph.node}
    assert "rbe_edge" in domains
    assert [f.name for f in infer.functions] == ["BitplaneDecode"]

    session = ort.InferenceSession(str(bundle.path / "infer.onnx"),
                                   providers=["CPUExecutionProvider"])
    got, _ = outputs_and_reference(model, session)
    expected, _ = outputs_and_reference(model, bundle.session())
    assert all(np.array_equal(a, b) for a, b in zip(got[0], expected[0]))


def test_decoded_weights_equal_c_decode(packed):
    name, model, bundle = packed
    for planes in (1, 4, 8):
        infer = bundle.inference_model(planes)
        for tensor_name in bundle.tensor_names:
            # Expose each decoded weight as a graph output and compare with the C decode.
            infer.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor_name))
        session = ort.InferenceSession(infer.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        feed = make_samples(model, 1)[0]
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
        for tensor_name in bundle.tensor_names:
            c_decoded = bundle.container.packed_tensor(tensor_name).decode(planes)
            assert np.array_equal(values[tensor_name], c_decoded), \
                f"{name}: '{tensor_name}' differs from the C decode at P={planes}"


def test_manifest_and_verify(packed):
    name, model, bundle = packed
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest["version"] == 1
    assert [t["name"] for t in manifest["tensors"]] == bundle.tensor_names
    assert manifest["output_error"] <= manifest["error_budget"]
    summary = bundle.verify()
    assert summary["planes"] == bundle.bits


def test_bundle_with_plane_prefix(packed, tmp_path):
    name, model, bundle = packed
    # A phone that downloaded only the first 5 planes: truncate model.rbe.
    copy = tmp_path / "partial"
    copy.mkdir()
    for file in ("infer.onnx", "manifest.json"):
        (copy / file).write_bytes((bundle.path / file).read_bytes())
    with Container.open(bundle.path / "model.rbe") as container:
        end = container.plane_end[4]
    (copy / "model.rbe").write_bytes((bundle.path / "model.rbe").read_bytes()[:end])

    with Bundle.open(copy) as partial:
        assert partial.planes_available == 5
        got, _ = outputs_and_reference(model, partial.session())
        expected, _ = outputs_and_reference(model, bundle.session(5))
        assert all(np.array_equal(a, b) for a, b in zip(got[0], expected[0]))
        with pytest.raises(ValueError, match="1..5 planes"):
            partial.session(6)


def test_planes_option_stores_prefix(tmp_path):
    model = bundle_models.mlp()
    path = bundle_models.save(model, tmp_path)
    with pack_model(path, tmp_path / "b", planes=4) as bundle:
        assert bundle.planes_available == 4
        assert bundle.manifest["planes"] == 4
        summary = bundle.verify()
        assert summary["model.rbe"] == (bundle.path / "model.rbe").stat().st_size
        assert summary["model.rbe"] < summary["model.rbe full size"]
        got, reference = outputs_and_reference(model, bundle.session())
        assert relative_error(got, reference) < 1.0


def test_error_budget_drives_group_choice(tmp_path):
    model = bundle_models.transformer_block()
    path = bundle_models.save(model, tmp_path)
    with pack_model(path, tmp_path / "loose", max_error=0.5) as loose:
        assert loose.manifest["group_size"] is None
    with pack_model(path, tmp_path / "tight", max_error=0.002) as tight:
        assert tight.manifest["output_error"] <= 0.002
        assert (tight.manifest["group_size"], tight.bits) != (None, 8)


def test_failed_pack_leaves_nothing(tmp_path, monkeypatch):
    import rbe_edge.pack as pack_module
    from rbe_edge.weights import PackError

    def fail(path, model_path):
        raise PackError(f"{model_path}: simulated checker failure")

    monkeypatch.setattr(pack_module, "_check_infer", fail)
    path = bundle_models.save(bundle_models.mlp(), tmp_path)
    with pytest.raises(PackError, match="simulated"):
        pack_model(path, tmp_path / "bundle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_session_rejects_corrupted_plane(tmp_path):
    from rbe_edge.container import ContainerError

    path = bundle_models.save(bundle_models.cnn(), tmp_path)
    pack_model(path, tmp_path / "bundle").close()
    rbe = tmp_path / "bundle" / "model.rbe"
    with Container.open(rbe) as container:
        offset = container.tensors[0].plane_offsets[6] + 1
    data = bytearray(rbe.read_bytes())
    data[offset] ^= 0x80
    rbe.write_bytes(bytes(data))

    with Bundle.open(tmp_path / "bundle") as bundle:
        bundle.session(6)                      # plane 6 is not used at P=6
        with pytest.raises(ContainerError, match="plane 6 is corrupted"):
            bundle.session(7)


def test_samples_as_arrays_and_bare_feed(tmp_path):
    model = bundle_models.mlp()
    path = bundle_models.save(model, tmp_path)
    feed = make_samples(model, count=1, seed=5)[0]
    (name, array), = feed.items()

    for index, samples in enumerate([array, [array, array], feed]):
        with pack_model(path, tmp_path / f"b{index}", bits=8, search=False,
                        samples=samples) as bundle:
            assert bundle.bits == 8, f"samples form {index}"


def test_array_samples_need_one_input(tmp_path):
    from rbe_edge.weights import PackError

    model = bundle_models.mlp()
    second = onnx.helper.make_tensor_value_info("unused", onnx.TensorProto.FLOAT, [1])
    model.graph.input.append(second)
    path = bundle_models.save(model, tmp_path)
    with pytest.raises(PackError, match="needs a model with one input"):
        pack_model(path, tmp_path / "b", samples=np.zeros((1, 4), np.float32))
    assert not (tmp_path / "b").exists()
