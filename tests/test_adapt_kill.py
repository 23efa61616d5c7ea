"""Kill (SIGKILL) a process that adapts and saves at random points: the bundle must still open."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from adapt_models import batched_mlp, make_bundle
from rbe_edge import Adapter, Bundle

BUDGET_SECONDS = 20
CHILD = Path(__file__).with_name("adapt_kill_child.py")


def _check_bundle(bundle_dir: Path, x: np.ndarray, kill: int) -> None:
    context = f"after kill {kill}"
    with Bundle.open(bundle_dir) as bundle:
        bundle.container.verify()
        (output,) = bundle.session().run(None, {"x": x})
        assert np.isfinite(output).all(), context
    with Adapter(bundle_dir) as adapter:
        assert adapter.predict(x).shape == (len(x), 8), context


def _start_child(bundle_dir: Path, seed: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, str(CHILD), str(bundle_dir), str(seed)],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_kill_during_save_leaves_a_bundle_that_opens(tmp_path):
    bundle_dir = make_bundle(tmp_path, batched_mlp(), trainable="auto")
    x = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)
    chooser = random.Random(1234)
    deadline = time.monotonic() + BUDGET_SECONDS
    kills, saves_seen, inside_writes = 0, 0, 0

    while time.monotonic() < deadline or kills < 5:
        child = _start_child(bundle_dir, kills)
        try:
            assert child.stdout.readline().strip() == "ready", "the child failed to start"
            time.sleep(chooser.uniform(0.0, 0.6))
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            remaining = child.stdout.read()
            child.wait()
        kills += 1
        saves_seen += remaining.count("saved")
        inside_writes += any(bundle_dir.glob(".*.tmp"))
        _check_bundle(bundle_dir, x, kills)

    print(f"{kills} kills, {inside_writes} inside a file write, {saves_seen} saves completed")
    assert saves_seen >= kills, (f"only {saves_seen} saves completed across {kills} kills: the "
                                 "kills did not land among the saves")
