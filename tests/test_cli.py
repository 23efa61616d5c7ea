"""tools/pack.py and `python -m rbe_edge`: real processes, exit codes and messages on bad input."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bundle_models
from rbe_edge.container import Container

ROOT = Path(__file__).resolve().parent.parent
PACK = [sys.executable, str(ROOT / "tools" / "pack.py")]
MODULE = [sys.executable, "-m", "rbe_edge"]


def run(command, *args):
    result = subprocess.run(command + [str(a) for a in args], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    return result.returncode, result.stdout, result.stderr


def assert_clean_failure(code, stderr, *names):
    """One clear message naming the file or tensor, a non-zero exit and no traceback."""
    assert code != 0
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("error: "), stderr
    for name in names:
        assert str(name) in stderr, f"{name!r} not named in: {stderr}"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = bundle_models.save(bundle_models.cnn(), folder)
    code, out, err = run(PACK, model, "-o", folder / "bundle", "--report", "--quiet")
    assert code == 0, err
    assert "packed 2 tensors" in out
    return folder / "bundle"


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_help_documents_units():
    code, out, _ = run(PACK, "--help")
    assert code == 0
    for option in ("--bits", "--group-size", "--planes", "--max-error", "--inputs",
                   "--min-elements", "--report", "--overwrite", "--no-search"):
        assert option in out
    for unit in ("bits", "fraction", "values"):
        assert unit in out


def test_report_files(bundle_dir):
    report = bundle_dir / "report"
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["planes"] == list(range(1, 9))
    assert set(numbers["weight_error"]) == {"conv2.w", "fc.w"}
    errors = [numbers["output_error"][str(p)] for p in numbers["planes"]]
    assert errors[-1] < errors[0]
    assert numbers["sizes"]["model.rbe"] < numbers["sizes"]["original"]
    assert (report / "output_error.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| P | output error |" in (report / "report.md").read_text()


def test_inspect_and_verify(bundle_dir):
    code, out, err = run(MODULE, "inspect", bundle_dir)
    assert code == 0, err
    assert "conv2.w" in out
    assert "32x16x3x3" in out
    code, out, err = run(MODULE, "verify", bundle_dir)
    assert code == 0, err
    assert "OK" in out


def test_module_pack_with_sample_inputs(tmp_path):
    model = bundle_models.save(bundle_models.mlp(), tmp_path)
    samples = tmp_path / "sample.npz"
    np.savez(samples, x=np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32))
    code, out, err = run(MODULE, "pack", model, "-o", tmp_path / "b", "--bits", "9",
                         "--group-size", "32", "--no-search", "--inputs", samples, "--quiet")
    assert code == 0, err
    assert "9 bits, group size 32" in out


@pytest.mark.parametrize("content", [b"hello, not a model\n" * 20, None])
def test_not_onnx_or_truncated(tmp_path, content):
    path = tmp_path / "broken.onnx"
    if content is None:
        data = bundle_models.mlp().SerializeToString()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    code, _, err = run(PACK, path, "-o", tmp_path / "b", "--quiet")
    assert_clean_failure(code, err, path, "not a valid ONNX model")
    assert not (tmp_path / "b").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.onnx"]


def test_missing_model_file(tmp_path):
    code, _, err = run(PACK, tmp_path / "nope.onnx", "-o", tmp_path / "b")
    assert_clean_failure(code, err, "nope.onnx", "does not exist")


def test_missing_external_data_cli(tmp_path):
    import onnx

    path = tmp_path / "model.onnx"
    onnx.save(bundle_models.mlp(), str(path), save_as_external_data=True, location="w.bin",
              size_threshold=0)
    (tmp_path / "w.bin").unlink()
    code, _, err = run(PACK, path, "-o", tmp_path / "b", "--quiet")
    assert_clean_failure(code, err, "w.bin", "missing")
    assert not (tmp_path / "b").exists()


def test_existing_bundle_not_overwritten(tmp_path, bundle_dir):
    target = copy_bundle(bundle_dir, tmp_path / "existing")
    before = (target / "model.rbe").read_bytes()
    model = bundle_models.save(bundle_models.mlp(), tmp_path)
    code, _, err = run(PACK, model, "-o", target, "--quiet")
    assert_clean_failure(code, err, target, "already exists")
    assert (target / "model.rbe").read_bytes() == before

    code, _, err = run(PACK, model, "-o", target, "--quiet", "--overwrite")
    assert code == 0, err
    assert (target / "model.rbe").read_bytes() != before


def test_flipped_bit_in_planes(tmp_path, bundle_dir):
    target = copy_bundle(bundle_dir, tmp_path / "flipped")
    with Container.open(target / "model.rbe") as container:
        offset = container.tensors[1].plane_offsets[3] + 5
    data = bytearray((target / "model.rbe").read_bytes())
    data[offset] ^= 0x04
    (target / "model.rbe").write_bytes(bytes(data))

    code, _, err = run(MODULE, "verify", target)
    assert_clean_failure(code, err, "model.rbe", "fc.w", "plane 3", "corrupted")


def test_flipped_bit_in_table(tmp_path, bundle_dir):
    target = copy_bundle(bundle_dir, tmp_path / "flipped_table")
    data = bytearray((target / "model.rbe").read_bytes())
    data[200] ^= 0x01
    (target / "model.rbe").write_bytes(bytes(data))
    code, _, err = run(MODULE, "inspect", target)
    assert_clean_failure(code, err, "model.rbe", "checksum")


def test_truncated_model_rbe(tmp_path, bundle_dir):
    target = copy_bundle(bundle_dir, tmp_path / "truncated")
    data = (target / "model.rbe").read_bytes()
    (target / "model.rbe").write_bytes(data[: len(data) - 100])
    code, _, err = run(MODULE, "verify", target)
    assert_clean_failure(code, err, "model.rbe", "truncated")


def test_newer_manifest(tmp_path, bundle_dir):
    target = copy_bundle(bundle_dir, tmp_path / "newer")
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = 2
    manifest["created_by"] = "rbe_edge 9.0.0"
    (target / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(MODULE, "inspect", target)
    assert_clean_failure(code, err, "manifest.json", "newer", "Upgrade rbe_edge")


def test_changed_infer_onnx(tmp_path, bundle_dir):
    target = copy_bundle(bundle_dir, tmp_path / "changed")
    data = bytearray((target / "infer.onnx").read_bytes())
    data[-10] ^= 0xFF
    (target / "infer.onnx").write_bytes(bytes(data))
    code, _, err = run(MODULE, "verify", target)
    assert_clean_failure(code, err, "infer.onnx", "SHA-256")


def test_bad_option_values(tmp_path):
    model = bundle_models.save(bundle_models.mlp(), tmp_path)
    code, _, err = run(PACK, model, "-o", tmp_path / "b", "--bits", "20")
    assert_clean_failure(code, err, "bits=20")
    code, _, err = run(PACK, model, "-o", tmp_path / "b", "--planes", "9")
    assert_clean_failure(code, err, "planes=9")
    assert not (tmp_path / "b").exists()


def test_unsupported_dtype_cli(tmp_path):
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w8", TensorProto.FLOAT8E5M2, [64, 64], [0.0] * 4096)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w8"], ["y"], name="proj")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT8E5M2, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT8E5M2, [1, 64])],
        initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    path = bundle_models.save(model, tmp_path)
    code, _, err = run(PACK, path, "-o", tmp_path / "b", "--quiet")
    assert_clean_failure(code, err, "'w8'", "float8e5m2", "proj")
    assert not (tmp_path / "b").exists()
