"""Pack small bundles with the Python SDK and write the reference results the JVM tests compare to.

Usage: python make_fixtures.py OUT_DIR

For each bundle OUT_DIR/<bundle>/ it writes ref/<tensor index>.p<P>.f32, the
Python decode with P planes in the tensor's original shape (row-major,
little-endian float32), and ref/tensors.txt, one line per tensor:
"index name layout bits planes_present shape...". OUT_DIR/update/ contains a
gradient per tensor of the mlp bundle and the decodes after Python's
upper-bitplane steps and LSB re-estimation, described in update/cases.txt.
"""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "tests"))

import bundle_models  # noqa: E402  (tests/ is not a package)
from rbe_edge import pack_model  # noqa: E402
from rbe_edge.update import fold_lsb, new_accumulator, update_upper  # noqa: E402

UPPER_PLANES = 4
SEED = 7


def write_f32(path: Path, array: np.ndarray) -> None:
    path.write_bytes(np.ascontiguousarray(array, dtype="<f4").tobytes())


def pack(model, name: str, out: Path, **options):
    source = bundle_models.save(model, out, f"{name}.onnx")
    return pack_model(source, out / name, search=False, **options)


def write_decodes(bundle, folder: Path) -> None:
    folder.mkdir()
    lines = []
    for index, name in enumerate(bundle.tensor_names):
        packed = bundle.container.packed_tensor(name)
        present = min(packed.bits, bundle.planes_available)
        for planes in range(1, present + 1):
            write_f32(folder / f"{index}.p{planes}.f32", packed.decode(planes))
        shape = " ".join(str(d) for d in packed.shape)
        lines.append(f"{index} {name} {packed.layout} {packed.bits} {present} {shape}")
    (folder / "tensors.txt").write_text("\n".join(lines) + "\n")


def learning_rate_for(packed, grad: np.ndarray) -> float:
    """Pick a rate that moves a good share of the codes by one upper step or more."""
    step = float(np.median(packed.scale)) * 2 ** (packed.bits - UPPER_PLANES)
    return float(np.float32(0.8 * step / float(np.std(grad))))


def write_updates(bundle, folder: Path) -> None:
    """Apply two steps and one fold per tensor, in accumulate and sign mode, as the JVM test will."""
    folder.mkdir()
    rng = np.random.default_rng(SEED)
    lines = []
    for index, name in enumerate(bundle.tensor_names):
        for mode in ("accumulate", "sign"):
            packed = bundle.container.packed_tensor(name)
            grads = [rng.standard_normal(packed.shape).astype(np.float32) for _ in range(2)]
            rate = learning_rate_for(packed, grads[0])
            accum = new_accumulator(packed) if mode == "accumulate" else None
            case = f"{index}.{mode}"
            for step, grad in enumerate(grads):
                write_f32(folder / f"{case}.grad{step}.f32", grad)
                update_upper(packed, grad, upper_planes=UPPER_PLANES, learning_rate=rate,
                             mode=mode, accum=accum, seed=SEED, step=step)
            write_f32(folder / f"{case}.updated.f32", packed.decode())
            if accum is not None:
                fold_lsb(packed, accum, upper_planes=UPPER_PLANES)
            write_f32(folder / f"{case}.folded.f32", packed.decode())
            lines.append(f"{index} {mode} {UPPER_PLANES} {SEED} {rate.hex()}")
    (folder / "cases.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    mlp = pack(bundle_models.mlp(seed=1), "mlp", out, bits=8)
    cnn = pack(bundle_models.cnn(seed=2), "cnn", out, bits=5, group_size=16)
    prefix = pack(bundle_models.mlp(seed=3), "mlp_prefix", out, bits=6, planes=3)

    for bundle in (mlp, cnn, prefix):
        write_decodes(bundle, bundle.path / "ref")
    write_updates(mlp, out / "update")
    for bundle in (mlp, cnn, prefix):
        bundle.close()


if __name__ == "__main__":
    main()
