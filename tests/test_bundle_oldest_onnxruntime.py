"""Bundles run on the oldest supported onnxruntime, 1.15.0, in a venv of its own.

onnxruntime 1.15.0 is the oldest release with wheels for Python 3.11 on
PyPI. The venv is created once under build/ (about 30 s with network access
to PyPI) and reused afterwards.
"""
import json
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import onnx
import pytest

import bundle_models
from rbe_edge.pack import pack_model

OLDEST = "1.15.0"
ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / f"venv-onnxruntime-{OLDEST}"

RUNNER = """
import json, sys
import numpy as np
import onnxruntime as ort
jobs = json.loads(sys.argv[1])
for job in jobs:
    session = ort.InferenceSession(job["model"], providers=["CPUExecutionProvider"])
    feed = dict(np.load(job["feed"]))
    outputs = session.run(None, feed)
    np.savez(job["result"], **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
print(ort.__version__)
"""


def old_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"onnxruntime=={OLDEST}",
                        "numpy<2"], check=True, timeout=600)
    return python


@pytest.fixture(scope="module")
def python():
    return old_python()


def with_weight_outputs(model: onnx.ModelProto, names) -> onnx.ModelProto:
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer_block"])
def test_oldest_onnxruntime_runs_bundle(python, tmp_path, name):
    model = getattr(bundle_models, name)()
    bundle = pack_model(bundle_models.save(model, tmp_path), tmp_path / "bundle")
    feed_path = tmp_path / "feed.npz"
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feed = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    np.savez(feed_path, **feed)

    jobs = [{"model": str(bundle.path / "infer.onnx"), "feed": str(feed_path),
             "result": str(tmp_path / "standalone.npz")}]
    for planes in (1, 4, bundle.bits):
        path = tmp_path / f"p{planes}.onnx"
        inference = with_weight_outputs(bundle.inference_model(planes), bundle.tensor_names)
        path.write_bytes(inference.SerializeToString())
        jobs.append({"model": str(path), "feed": str(feed_path),
                     "result": str(tmp_path / f"p{planes}.npz"), "planes": planes})

    result = subprocess.run([str(python), "-c", RUNNER, json.dumps(jobs)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == OLDEST

    current = bundle.session().run(None, feed)[0]
    standalone = np.load(tmp_path / "standalone.npz")
    np.testing.assert_allclose(standalone[model.graph.output[0].name], current, rtol=1e-5,
                               atol=1e-6)
    for job in jobs[1:]:
        outputs = np.load(job["result"])
        for tensor in bundle.tensor_names:
            expected = bundle.container.packed_tensor(tensor).decode(job["planes"])
            assert np.array_equal(outputs[tensor], expected), \
                f"{tensor} decoded by onnxruntime {OLDEST} differs at P={job['planes']}"
    bundle.close()
