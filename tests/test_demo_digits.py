"""The digits quick start (examples/digits_quickstart.py) run end to end, and its pieces."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import digits_quickstart as quickstart  # noqa: E402


def test_quickstart_adapts_to_shifted_digits(tmp_path, capsys):
    assert quickstart.main(["-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out

    for planes in (8, 6, 4, 3, 2):
        assert f"P={planes}: test accuracy" in printed, printed
    match = re.search(r"accuracy ([\d.]+)% before adaptation, ([\d.]+)% after", printed)
    assert match, printed
    before, after = float(match.group(1)), float(match.group(2))
    assert after > before + 10, f"adaptation raised the accuracy only from {before}% to {after}%"

    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["adaptation"]["trainable"] == quickstart.TRAINABLE
    assert manifest["bits"] == 8


def test_exported_mlp_matches_numpy(tmp_path):
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(shape).astype(np.float32)
              for shape in ((64, quickstart.HIDDEN), (quickstart.HIDDEN,),
                            (quickstart.HIDDEN, quickstart.CLASSES), (quickstart.CLASSES,))]
    quickstart.export_onnx(params, tmp_path / "mlp.onnx")
    images = rng.random((5, 64), dtype=np.float32)

    session = ort.InferenceSession(str(tmp_path / "mlp.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"image": images})
    expected = np.maximum(images @ params[0] + params[1], 0) @ params[2] + params[3]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_shift_right_moves_columns():
    image = np.arange(64, dtype=np.float32).reshape(1, 64)
    shifted = quickstart.shift_right(image).reshape(8, 8)
    np.testing.assert_array_equal(shifted[:, 0], 0)
    np.testing.assert_array_equal(shifted[:, 1:], image.reshape(8, 8)[:, :7])


def test_few_shot_draws_each_digit():
    labels = np.repeat(np.arange(quickstart.CLASSES), 8)
    images = np.arange(len(labels), dtype=np.float32)[:, None]
    _, picked = quickstart.few_shot(images, labels, shots=3, seed=0)
    assert np.bincount(picked, minlength=quickstart.CLASSES).tolist() == [3] * quickstart.CLASSES
