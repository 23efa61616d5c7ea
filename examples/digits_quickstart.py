#!/usr/bin/env python3
"""Quick start: pack a small digits classifier, run it at several precisions, adapt it few-shot.

It uses the 8x8 handwritten digits that scikit-learn ships, so it runs in
seconds and needs no download:

1. Train a 64-64-10 MLP with numpy and export it as an ONNX model.
2. Pack it into a bundle at 8 bits, with training graphs for its two layers
   (rbe_edge.pack_model).
3. Run the bundle under onnxruntime from the top P planes (Bundle.session).
4. Adapt it to a user whose digits sit one pixel further right, from a few
   examples per digit, by upper-bitplane updates (rbe_edge.Adapter), then
   save the adapted planes into the bundle.

Usage: python examples/digits_quickstart.py [-o digits-out] [--shots 5]
Needs scikit-learn (pip install scikit-learn, or the project's test extra).
"""
import argparse
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import rbe_edge

HIDDEN = 64
CLASSES = 10
TRAINABLE = ["fc1.weight", "fc2.weight"]


def load_split(seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (train images, train labels, test images, test labels): a random half each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    half = len(order) // 2
    return (images[order[:half]], labels[order[:half]],
            images[order[half:]], labels[order[half:]])


def shift_right(images: np.ndarray, pixels: int = 1) -> np.ndarray:
    """Move every 8x8 image `pixels` columns to the right, filling the left edge with 0."""
    grid = images.reshape(-1, 8, 8)
    shifted = np.zeros_like(grid)
    shifted[:, :, pixels:] = grid[:, :, :8 - pixels]
    return shifted.reshape(-1, 64)


def train_mlp(images: np.ndarray, labels: np.ndarray, epochs: int = 30,
              seed: int = 0) -> List[np.ndarray]:
    """Train x -> Relu(x W1 + b1) W2 + b2 with minibatch gradient descent and momentum."""
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((64, HIDDEN)) * np.sqrt(2 / 64)).astype(np.float32),
              np.zeros(HIDDEN, np.float32),
              (rng.standard_normal((HIDDEN, CLASSES)) * np.sqrt(2 / HIDDEN)).astype(np.float32),
              np.zeros(CLASSES, np.float32)]
    velocity = [np.zeros_like(p) for p in params]
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(labels)), len(labels) // 32):
            grads = gradients(params, images[batch], labels[batch])
            for param, grad, speed in zip(params, grads, velocity):
                speed *= 0.9
                speed -= 0.1 * grad
                param += speed
    return params


def gradients(params, images, labels) -> List[np.ndarray]:
    """Return the cross-entropy gradients of the MLP's four parameters."""
    w1, b1, w2, b2 = params
    hidden = np.maximum(images @ w1 + b1, 0)
    logits = hidden @ w2 + b2
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)

    delta = probabilities
    delta[np.arange(len(labels)), labels] -= 1
    delta /= len(labels)
    hidden_delta = (delta @ w2.T) * (hidden > 0)
    return [images.T @ hidden_delta, hidden_delta.sum(0), hidden.T @ delta, delta.sum(0)]


def export_onnx(params: List[np.ndarray], path: Path) -> None:
    """Write the MLP as an opset-17 ONNX model with input "image" [N, 64] and output "logits"."""
    w1, b1, w2, b2 = params
    initializers = [numpy_helper.from_array(value, name) for value, name in
                    ((w1, "fc1.weight"), (b1, "fc1.bias"), (w2, "fc2.weight"), (b2, "fc2.bias"))]
    nodes = [
        helper.make_node("MatMul", ["image", "fc1.weight"], ["fc1.product"]),
        helper.make_node("Add", ["fc1.product", "fc1.bias"], ["fc1.output"]),
        helper.make_node("Relu", ["fc1.output"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "fc2.weight"], ["fc2.product"]),
        helper.make_node("Add", ["fc2.product", "fc2.bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def few_shot(images, labels, shots: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw `shots` examples of every digit."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == digit), shots, replace=False)
                           for digit in range(CLASSES)])
    return images[rows], labels[rows]


def accuracy(session, images, labels) -> float:
    (logits,) = session.run(["logits"], {"image": images})
    return float(np.mean(logits.argmax(axis=1) == labels))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("digits-out"),
                        help="folder for the ONNX model and the bundle (default: digits-out)")
    parser.add_argument("--shots", type=int, default=5, help="examples per digit (default: 5)")
    parser.add_argument("--steps", type=int, default=60, help="training steps (default: 60)")
    parser.add_argument("--lr", type=float, default=0.02,
                        help="learning rate of the upper-bitplane updates (default: 0.02)")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)

    # 1. Train and export.
    train_images, train_labels, test_images, test_labels = load_split()
    model_path = args.output / "digits_mlp.onnx"
    export_onnx(train_mlp(train_images, train_labels), model_path)

    # 2. Pack at 8 bits; both weights have fewer than the default 1024 values.
    bundle = rbe_edge.pack_model(model_path, args.output / "bundle", bits=8, search=False,
                                 min_elements=256, overwrite=True, trainable=TRAINABLE)

    # 3. Run from the top P planes.
    print(f"bundle: {(bundle.path / 'model.rbe').stat().st_size:,} bytes of planes "
          f"against {model_path.stat().st_size:,} bytes of float32 ONNX")
    for planes in (8, 6, 4, 3, 2):
        session = bundle.session(planes=planes)
        print(f"  P={planes}: test accuracy {100 * accuracy(session, test_images, test_labels):.1f}%")
    bundle.close()

    # 4. Adapt to digits shifted one pixel right, from a few examples of each.
    user_images, user_labels = shift_right(test_images), test_labels
    support_images, support_labels = few_shot(shift_right(train_images), train_labels,
                                              args.shots, seed=1)
    with rbe_edge.Adapter(args.output / "bundle", "auto", upper_planes=4) as adapter:
        before = adapter.evaluate(user_images, user_labels)["accuracy"]
        adapter.fit(support_images, support_labels, steps=args.steps, lr=args.lr,
                    batch_size=len(support_labels))
        after = adapter.evaluate(user_images, user_labels)["accuracy"]
        adapter.save()
    print(f"shifted digits, {args.shots} examples per digit: accuracy {100 * before:.1f}% "
          f"before adaptation, {100 * after:.1f}% after; adapted bundle: {args.output / 'bundle'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
