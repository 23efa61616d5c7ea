#!/usr/bin/env python3
"""Few-shot adaptation on scikit-learn's handwritten digits: this SDK against float32 Adam.

A small MLP (numpy) is trained on digits 0-6 only, packed into a bundle,
then adapted with K examples of every class (K = 1, 5, 10) so that it also
learns the unseen digits 7-9. Accuracy is measured on held-out digits of all
ten classes, averaged over several random draws of the K examples.

For every K it prints: accuracy before adaptation, after adaptation with
rbe_edge (upper-bitplane updates through train_step.onnx), after float32
Adam fine-tuning of the same layers for the same number of steps (gradients
from the same cut graph with float weights), training state bytes per
trainable weight, and time per step. Needs scikit-learn (pip install -e '.[bench]').
"""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rbe_edge import pack_model
from rbe_edge.adapt import Adapter, build_training_graphs
from rbe_edge.adapt.graph_cut import LABEL_INPUT, LOSS_OUTPUT
from rbe_edge.adapt.sessions import make_session

SEEN_CLASSES = 7
HIDDEN = (128, 64)
ADAM_BYTES = 16          # float32 weight, gradient and two moments


def load_digits_split(seed: int):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    half = len(y) // 2
    return (x[:half], y[:half]), (x[half:], y[half:])


def train_mlp(x, y, seed: int, epochs: int = 60):
    """Train a 64-128-64-10 ReLU MLP on (x, y) with minibatch Adam; return its weights."""
    rng = np.random.default_rng(seed)
    sizes = (x.shape[1],) + HIDDEN + (10,)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [rng.standard_normal((fan_in, fan_out)).astype(np.float32) * np.sqrt(2 / fan_in),
                   np.zeros(fan_out, np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    step = 0
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(y)), max(1, len(y) // 32)):
            grads = _mlp_gradients(params, x[batch], y[batch])
            step += 1
            for p, g, m in zip(params, grads, moments):
                _adam(p, g, m, step, 1e-3)
    return params


def _mlp_gradients(params, x, y):
    activations = [x]
    for i in range(0, len(params), 2):
        z = activations[-1] @ params[i] + params[i + 1]
        activations.append(np.maximum(z, 0) if i + 2 < len(params) else z)
    logits = activations[-1]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    delta = probs
    delta[np.arange(len(y)), y] -= 1
    delta /= len(y)
    grads = [None] * len(params)
    for i in range(len(params) - 2, -1, -2):
        grads[i] = activations[i // 2].T @ delta
        grads[i + 1] = delta.sum(0)
        if i:
            delta = (delta @ params[i].T) * (activations[i // 2] > 0)
    return grads


def _adam(param, grad, moments, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = moments
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    param -= lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + eps)


def mlp_onnx(params) -> onnx.ModelProto:
    nodes, inits, current = [], [], "x"
    for layer in range(len(params) // 2):
        w, b = f"fc{layer}.weight", f"fc{layer}.bias"
        inits += [numpy_helper.from_array(params[2 * layer].astype(np.float32), w),
                  numpy_helper.from_array(params[2 * layer + 1].astype(np.float32), b)]
        nodes += [helper.make_node("MatMul", [current, w], [f"h{layer}"]),
                  helper.make_node("Add", [f"h{layer}", b], [f"z{layer}"])]
        current = f"z{layer}"
        if layer < len(params) // 2 - 1:
            nodes.append(helper.make_node("Relu", [current], [f"a{layer}"]))
            current = f"a{layer}"
    nodes.append(helper.make_node("Identity", [current], ["logits"]))
    graph = helper.make_graph(
        nodes, "digits_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def few_shot(x, y, shots: int, rng):
    picked = [rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in range(10)]
    index = np.concatenate(picked)
    return x[index], y[index]


def adam_baseline(bundle_dir: Path, trainable, x, y, x_test, y_test, steps, lr, batch_size, seed):
    """Fine-tune the same layers in float32 with Adam; return (accuracy, seconds per step)."""
    from rbe_edge import Bundle

    with Bundle.open(bundle_dir) as bundle:
        graphs = build_training_graphs(bundle, trainable, float_weights=True)
        weights = {graphs.decoded[n]: bundle.container.packed_tensor(n).decode().copy()
                   for n in trainable}
        backbone = make_session(graphs.backbone, bundle.path, "backbone")
        train = make_session(graphs.train_step, bundle.path, "train_step")
        head = make_session(graphs.head, bundle.path, "head")
    (features,) = backbone.run(graphs.boundary, {"x": x})
    (test_features,) = backbone.run(graphs.boundary, {"x": x_test})
    moments = {name: [np.zeros_like(w), np.zeros_like(w)] for name, w in weights.items()}
    outputs = [LOSS_OUTPUT] + [graphs.gradient_output(n) for n in trainable]
    rng = np.random.default_rng(seed)

    start = time.perf_counter()
    for step in range(1, steps + 1):
        index = rng.permutation(len(y))[:batch_size]
        feed = {graphs.boundary[0]: features[index], LABEL_INPUT: y[index], **weights}
        _, *grads = train.run(outputs, feed)
        for name, grad in zip(weights, grads):
            _adam(weights[name], grad, moments[name], step, lr)
    per_step = (time.perf_counter() - start) / steps

    (logits,) = head.run([graphs.output], {graphs.boundary[0]: test_features, **weights})
    return float(np.mean(logits.argmax(1) == y_test)), per_step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--draws", type=int, default=5, help="random draws of the examples per K")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=None, help="rbe_edge learning rate")
    parser.add_argument("--adam-lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--upper-planes", type=int, default=4)
    parser.add_argument("--mode", default="accumulate", choices=["accumulate", "sign"])
    parser.add_argument("--fold-every", type=int, default=None)
    parser.add_argument("--optimizer", default="scaled", choices=["scaled", "sgd"])
    parser.add_argument("--trainable", nargs="+", default=None,
                        help="tensor names (default: the Adapter's 'auto' choice)")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_digits_split(seed=0)
    seen = y_train < SEEN_CLASSES
    params = train_mlp(x_train[seen], y_train[seen], seed=0)
    work = Path(tempfile.mkdtemp(prefix="eval_adapt."))
    try:
        onnx.save(mlp_onnx(params), work / "mlp.onnx")
        pack_model(work / "mlp.onnx", work / "packed", bits=8, search=False,
                   min_elements=256).close()
        run(args, work, x_test, y_test, x_train, y_train)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run(args, work: Path, x_test, y_test, x_pool, y_pool) -> None:
    options = {"optimizer": args.optimizer}
    if args.fold_every is not None:
        options["fold_every"] = args.fold_every
    fit_options = {} if args.lr is None else {"lr": args.lr}
    print(f"digits: MLP 64-{HIDDEN[0]}-{HIDDEN[1]}-10 trained on classes 0-{SEEN_CLASSES - 1}; "
          f"adapted to all 10 classes; {len(y_test)} test digits; {args.draws} draws per K; "
          f"{args.steps} steps, batch {args.batch_size}")
    print(f"{'K':>3} {'before':>8} {'rbe_edge':>9} {'adam fp32':>10} {'rbe B/w':>8} "
          f"{'adam B/w':>9} {'rbe ms/step':>12} {'adam ms/step':>13}")
    for shots in args.shots:
        results = []
        for draw in range(args.draws):
            rng = np.random.default_rng(1000 * shots + draw)
            x, y = few_shot(x_pool, y_pool, shots, rng)
            bundle = work / f"bundle_{shots}_{draw}"
            shutil.copytree(work / "packed", bundle)
            with Adapter(bundle, args.trainable or "auto", upper_planes=args.upper_planes,
                         mode=args.mode, add_graphs=True, **options) as adapter:
                before = adapter.evaluate(x_test, y_test)["accuracy"]
                start = time.perf_counter()
                adapter.fit(x, y, steps=args.steps, batch_size=args.batch_size, seed=draw,
                            progress=False, **fit_options)
                ours_time = (time.perf_counter() - start) / args.steps
                after = adapter.evaluate(x_test, y_test)["accuracy"]
                state = adapter.state_bytes_per_weight()
                trainable = adapter.trainable
            adam, adam_time = adam_baseline(bundle, trainable, x, y, x_test, y_test, args.steps,
                                            args.adam_lr, args.batch_size, draw)
            results.append((before, after, adam, state, ours_time, adam_time))
        mean = np.mean(results, axis=0)
        print(f"{shots:>3} {100 * mean[0]:>7.1f}% {100 * mean[1]:>8.1f}% {100 * mean[2]:>9.1f}% "
              f"{mean[3]:>8.3f} {ADAM_BYTES:>9} {1000 * mean[4]:>12.2f} {1000 * mean[5]:>13.2f}")
    print(f"trainable: {trainable}; upper planes {args.upper_planes}, mode {args.mode}")


if __name__ == "__main__":
    sys.exit(main())
