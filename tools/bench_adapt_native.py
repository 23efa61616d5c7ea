#!/usr/bin/env python3
"""Benchmark of few-shot training: the native engine, the onnxruntime engine and float32 Adam.

For two few-shot heads it prints the median time of a training step and
the peak resident memory that training adds, for:

- native: rbe_edge.adapt.Adapter(engine="native"), the C core running the
  compiled layer program on the planes;
- onnxruntime: Adapter(engine="onnxruntime"), train_step.onnx plus the C
  update of the planes;
- numpy Adam: float32 fine-tuning of the same weights written in numpy
  (forward, backward and an Adam update with m and v in float32).

Heads (x [N, width] -> MatMul + bias -> Gelu (tanh form) -> MatMul + bias
-> LayerNormalization -> MatMul + bias -> 16 logits). Only the three weight
matrices train; biases and LayerNormalization parameters stay frozen
float32, as pack_model leaves them unpacked:

- "1M": width 512, hidden 1024, 1.06 M trainable weights;
- "10M": width 1024, hidden 4864, 9.98 M trainable weights (the last
  feed-forward block of a small transformer and a classifier).

Settings: 8-bit codes with one scale per row, upper_planes 4, mode
"accumulate", optimizer "scaled", fold every step (the Adapter defaults),
batch 32, 16 classes x 5 examples of random class-centred features, lr
0.003 for the planes and 1e-3 for Adam. Each rbe_edge step is one
fit(steps=1) call, so it includes the per-call input checks and the fold of
the accumulators into the planes. Every engine runs --rounds times, each
time in a fresh process, interleaved with the others so that load from
other jobs spreads over all of them. The table gives the median over rounds
of each process's median step.

After the table, a further process times the C functions of a native step
on each layer of the last head (rbe_gemm_f32, rbe_gemm_t_f32,
rbe_dense_update with and without the fold, rbe_fold_lsb) next to their
numpy counterparts.
Then the two target ratios for the last head are printed: native added
memory per trainable weight (target <= 2.5 bytes) and native step time /
numpy Adam step time (target <= 1.0).

Memory: the parent process builds and packs every bundle before any
measurement. Each engine then runs in a fresh Python subprocess. It imports
its libraries, builds the few-shot data and resets the peak RSS (writing 5
to /proc/self/clear_refs). Then it reads VmRSS from /proc/self/status as
the baseline just before the trainer is created. For the two rbe_edge
engines that is before Adapter(...), so the planes, accumulators and
onnxruntime sessions count. For Adam it is before the float32 weights, so
the weights, gradients and moments count. After the warm-up and timed steps
it reads VmHWM (the peak RSS) and reports VmHWM - baseline. When the kernel
does not allow the reset, the script prints a note, because the peak then also
covers the imports.

Threads: every subprocess runs with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS
and MKL_NUM_THREADS set to 1. onnxruntime sessions get intra_op_num_threads
and inter_op_num_threads 1 (the Adapter has no thread option, so the worker
replaces onnxruntime.SessionOptions with a factory that sets them), and
the native engine runs with the Adapter's default of one thread. The table
prints the CPU time of a step next to its wall time. CPU time above wall
time would mean that more than one thread computes, and CPU time well below
it that other jobs took the CPU, so the CPU time ratio is printed too.

Usage: python tools/bench_adapt_native.py [--warmup 3] [--steps 10] [--rounds 3] [--quick]
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADS = {"1M": (512, 1024), "10M": (1024, 4864)}      # name: (width, hidden)
QUICK_HEADS = {"tiny": (32, 64)}
CLASSES = 16
SHOTS = 5
BATCH = 32
BITS = 8
UPPER_PLANES = 4
LR = 0.003
ADAM_LR = 1e-3
TARGET_BYTES_PER_WEIGHT = 2.5
TARGET_TIME_RATIO = 1.0
ENGINES = ("native", "onnxruntime", "adam")
WEIGHTS = ("w_up", "w_down", "w_out")
GELU_C = np.float32(np.sqrt(2.0 / np.pi))
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ---- Head parameters, shared by the ONNX model and the numpy trainer ----

def head_shapes(width: int, hidden: int):
    """Shapes of the head's parameters, weights as [inputs, outputs] (ONNX MatMul order)."""
    return {"w_up": (width, hidden), "b_up": (hidden,), "w_down": (hidden, width),
            "b_down": (width,), "gamma": (width,), "beta": (width,),
            "w_out": (width, CLASSES), "b_out": (CLASSES,)}


def head_parameter(name: str, shape, seed: int) -> np.ndarray:
    """Return one parameter, generated in float32 without a float64 temporary."""
    rng = np.random.default_rng([seed, list(head_shapes(1, 1)).index(name)])
    values = rng.standard_normal(shape, dtype=np.float32)
    if name in WEIGHTS:
        values *= np.float32(1.0 / np.sqrt(shape[0]))
    else:
        values *= np.float32(0.1)
    if name == "gamma":
        values += np.float32(1.0)
    return values


def few_shot_data(width: int, seed: int = 1):
    """Return (x [CLASSES * SHOTS, width] float32, labels int64): noisy class centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, width), dtype=np.float32)
    labels = np.repeat(np.arange(CLASSES), SHOTS)
    noise = rng.standard_normal((labels.size, width), dtype=np.float32)
    return centres[labels] + np.float32(0.5) * noise, labels.astype(np.int64)


# ---- Building the bundles (parent process) ----

def head_model(width: int, hidden: int, seed: int):
    """Build the ONNX head: MatMul + bias, Gelu (tanh), MatMul + bias, LayerNorm, MatMul + bias."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(head_parameter(name, shape, seed), name)
             for name, shape in head_shapes(width, hidden).items()]
    nodes = [
        helper.make_node("MatMul", ["x", "w_up"], ["up"], name="up"),
        helper.make_node("Add", ["up", "b_up"], ["up_b"]),
        helper.make_node("Gelu", ["up_b"], ["act"], approximate="tanh", name="gelu"),
        helper.make_node("MatMul", ["act", "w_down"], ["down"], name="down"),
        helper.make_node("Add", ["down", "b_down"], ["down_b"]),
        helper.make_node("LayerNormalization", ["down_b", "gamma", "beta"], ["norm"],
                         axis=-1, epsilon=1e-5, name="norm"),
        helper.make_node("MatMul", ["norm", "w_out"], ["logits"], name="out"),
        helper.make_node("Add", ["logits", "b_out"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "bench_head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", CLASSES])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def pack_head(folder: Path, name: str, width: int, hidden: int, seed: int) -> Path:
    """Pack the head with 8 bits: the three weights become packed and trainable, the rest float."""
    import onnx

    from rbe_edge import pack_model

    source = folder / f"{name}.onnx"
    onnx.save(head_model(width, hidden, seed), source)
    # Biases and LayerNorm vectors are smaller than the classifier, the smallest weight.
    smallest = width * CLASSES
    bundle = pack_model(source, folder / name, bits=BITS, search=False, min_elements=smallest,
                        trainable=list(WEIGHTS))
    bundle.close()
    source.unlink()
    return folder / name


# ---- Measuring (worker subprocesses) ----

def memory_status() -> dict:
    """Return VmRSS and VmHWM from /proc/self/status, in bytes."""
    text = Path("/proc/self/status").read_text()
    return {key: 1024 * int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))
            for key in ("VmRSS", "VmHWM")}


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS, and return False when the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    status = memory_status()
    return status["VmHWM"] <= status["VmRSS"] + 64 * 1024


def limit_onnxruntime_threads() -> None:
    """Make every onnxruntime session that the Adapter creates use one thread."""
    import onnxruntime

    original = onnxruntime.SessionOptions

    def one_thread_options():
        options = original()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return options

    onnxruntime.SessionOptions = one_thread_options


def run_adapter(engine: str, bundle: Path, width: int, warmup: int, steps: int) -> dict:
    """Time fit(steps=1) calls of an Adapter and measure the memory it adds."""
    from rbe_edge.adapt import Adapter

    # This imports onnxruntime before the baseline for both engines.
    limit_onnxruntime_threads()
    x, labels = few_shot_data(width)
    reset = reset_peak()
    baseline = memory_status()["VmRSS"]

    adapter = Adapter(bundle, trainable=list(WEIGHTS), upper_planes=UPPER_PLANES,
                      mode="accumulate", engine=engine, optimizer="scaled")
    timer = StepTimer(warmup)
    for step in range(warmup + steps):
        with timer:
            adapter.fit(x, labels, steps=1, lr=LR, batch_size=BATCH, seed=step, progress=False)

    weights = sum(packed.rows * packed.cols for packed in adapter.packed.values())
    result = timer.result(memory_status()["VmHWM"] - baseline, weights, reset, adapter.history)
    result["state_bytes"] = adapter.state_bytes_per_weight() * weights
    adapter.close()
    return result


class StepTimer:
    """Context manager that records the wall and CPU time of each step after the warm-up."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.wall, self.cpu = [], []

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time())

    def __exit__(self, *exc):
        if self.warmup > 0:
            self.warmup -= 1
            return
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])

    def result(self, added: int, weights: int, reset: bool, losses) -> dict:
        return {"step_ms": statistics.median(self.wall) * 1e3, "added_bytes": added,
                "weights": weights, "peak_reset": reset,
                "cpu_ms": statistics.median(self.cpu) * 1e3,
                "first_loss": float(losses[0]), "last_loss": float(losses[-1])}


class NumpyHead:
    """Float32 forward, backward and Adam for the head, training only the three weights."""

    def __init__(self, width: int, hidden: int, seed: int, frozen: dict):
        self.frozen = frozen
        shapes = head_shapes(width, hidden)
        self.weights = {name: head_parameter(name, shapes[name], seed) for name in WEIGHTS}
        self.optimizers = {name: NumpyAdam(weight) for name, weight in self.weights.items()}

    def step(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Run one training step on a batch and return the mean cross-entropy."""
        loss, grads = self._gradients(x, labels)
        for name, grad in grads.items():
            self.optimizers[name].step(grad)
        return loss

    def _gradients(self, x, labels):
        w, f = self.weights, self.frozen
        up = x @ w["w_up"] + f["b_up"]
        inner = np.tanh(GELU_C * (up + np.float32(0.044715) * up ** 3))
        act = np.float32(0.5) * up * (1 + inner)
        down = act @ w["w_down"] + f["b_down"]
        mean = down.mean(axis=1, keepdims=True)
        centred = down - mean
        inv_std = 1 / np.sqrt((centred ** 2).mean(axis=1, keepdims=True) + np.float32(1e-5))
        normed = centred * inv_std
        norm = normed * f["gamma"] + f["beta"]
        logits = norm @ w["w_out"] + f["b_out"]

        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        rows = np.arange(len(labels))
        loss = float(-np.log(probs[rows, labels]).mean())
        probs[rows, labels] -= 1
        d_logits = probs / np.float32(len(labels))

        grads = {"w_out": norm.T @ d_logits}
        d_normed = (d_logits @ w["w_out"].T) * f["gamma"]
        d_down = inv_std * (d_normed - d_normed.mean(axis=1, keepdims=True) -
                            normed * (d_normed * normed).mean(axis=1, keepdims=True))
        grads["w_down"] = act.T @ d_down
        d_act = d_down @ w["w_down"].T
        d_inner = (1 - inner ** 2) * GELU_C * (1 + np.float32(3 * 0.044715) * up ** 2)
        d_up = d_act * np.float32(0.5) * (1 + inner + up * d_inner)
        grads["w_up"] = x.T @ d_up
        return loss, grads


class NumpyAdam:
    """Float32 Adam on one weight, updated in place: weight, m, v and the gradient, 16 bytes."""

    def __init__(self, weight: np.ndarray, beta1=0.9, beta2=0.999, eps=1e-8):
        self.weight = weight
        self.m = np.zeros_like(weight)
        self.v = np.zeros_like(weight)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.steps = 0

    def step(self, grad: np.ndarray) -> None:
        """Apply one update, overwriting `grad`, which serves as the scratch buffer."""
        self.steps += 1
        # m = b1 m + (1 - b1) g written as m = b1 (m - g) + g: no temporary array.
        self.m -= grad
        self.m *= np.float32(self.beta1)
        self.m += grad
        np.multiply(grad, grad, out=grad)
        self.v -= grad
        self.v *= np.float32(self.beta2)
        self.v += grad
        step_size = ADAM_LR * np.sqrt(1 - self.beta2 ** self.steps) / (1 - self.beta1 ** self.steps)
        np.sqrt(self.v, out=grad)
        grad += np.float32(self.eps)
        np.divide(self.m, grad, out=grad)
        grad *= np.float32(step_size)
        self.weight -= grad


def run_adam(width: int, hidden: int, seed: int, warmup: int, steps: int) -> dict:
    """Time numpy Adam steps and measure the memory its weights and state add."""
    shapes = head_shapes(width, hidden)
    frozen = {name: head_parameter(name, shapes[name], seed) for name in shapes
              if name not in WEIGHTS}
    x, labels = few_shot_data(width)
    rng = np.random.default_rng(0)
    reset = reset_peak()
    baseline = memory_status()["VmRSS"]

    head = NumpyHead(width, hidden, seed, frozen)
    timer = StepTimer(warmup)
    losses = []
    for _ in range(warmup + steps):
        index = rng.choice(len(labels), BATCH, replace=False)
        with timer:
            losses.append(head.step(x[index], labels[index]))

    weights = sum(w.size for w in head.weights.values())
    return timer.result(memory_status()["VmHWM"] - baseline, weights, reset, losses)


def run_breakdown(bundle: Path, warmup: int, steps: int) -> dict:
    """Time the C functions of a native step per layer, and their numpy counterparts."""
    from rbe_edge.bundle import Bundle
    from rbe_edge.dense_train import dense_update, gemm_t
    from rbe_edge.update import fold_lsb, new_accumulator

    rng = np.random.default_rng(0)
    layers = {}
    with Bundle.open(bundle) as opened:
        for name in WEIGHTS:
            packed = opened.container.packed_tensor(name)
            accum = new_accumulator(packed)
            # decode() of a "kn" tensor can be a transposed view; Adam's elementwise
            # passes need the gradient's C order to run at memory speed.
            weight = np.ascontiguousarray(packed.decode())    # [inputs, outputs]
            x = rng.standard_normal((BATCH, packed.cols), dtype=np.float32)
            dy = rng.standard_normal((BATCH, packed.rows), dtype=np.float32) * np.float32(1e-3)
            counter = iter(range(10**9))
            adam = NumpyAdam(weight)

            def update(fold: bool):
                dense_update(packed, x, dy, upper_planes=UPPER_PLANES, learning_rate=LR,
                             accum=accum, step=next(counter), fold=fold)

            timings = {
                "gemm_f32": lambda: packed.matmul(x),
                "gemm_t_f32": lambda: gemm_t(packed, dy),
                "dense_update": lambda: update(False),
                "dense_update + fold": lambda: update(True),
                "fold_lsb": lambda: fold_lsb(packed, accum, upper_planes=UPPER_PLANES),
                "numpy x @ W": lambda: x @ weight,
                "numpy dy @ W.T": lambda: dy @ weight.T,
                "numpy x.T @ dy + Adam": lambda: adam.step(x.T @ dy),
            }
            layers[f"{name} {packed.cols}x{packed.rows}"] = {
                label: median_ms(run, warmup, steps) for label, run in timings.items()}
    return layers


def median_ms(run, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def worker(args) -> None:
    """Run the measurement that --worker names and print its result as one JSON line."""
    width, hidden = args.worker_head
    if args.worker == "adam":
        result = run_adam(width, hidden, args.seed, args.warmup, args.steps)
    elif args.worker == "breakdown":
        result = run_breakdown(Path(args.worker_bundle), args.warmup, args.steps)
    else:
        result = run_adapter(args.worker, Path(args.worker_bundle), width, args.warmup,
                             args.steps)
    print(json.dumps(result))


# ---- Driving and reporting (parent process) ----

def measure(engine: str, bundle: Path, width: int, hidden: int, args) -> dict:
    """Run one engine in a fresh subprocess with one thread and return its parsed result."""
    env = dict(os.environ, **{name: "1" for name in THREAD_VARIABLES})
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", engine,
               "--worker-head", str(width), str(hidden), "--worker-bundle", str(bundle),
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--seed", str(args.seed)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {engine} worker failed (exit code {done.returncode}):\n"
                           f"{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def combine(rounds) -> dict:
    """Merge one engine's results over rounds: medians of wall time, CPU time and added memory."""
    result = dict(rounds[-1])
    for key in ("step_ms", "added_bytes", "cpu_ms"):
        result[key] = statistics.median(r[key] for r in rounds)
    result["round_ms"] = [r["step_ms"] for r in rounds]
    result["peak_reset"] = all(r["peak_reset"] for r in rounds)
    return result


def print_header(args) -> None:
    import onnxruntime

    from rbe_edge import kernel_info

    info = kernel_info()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; rbe_edge kernels: {info['gemm_f32']}, "
          f"{info['gemm_t_f32']}, {info['dense_grad']}")
    print(f"batch {BATCH}, {CLASSES} classes x {SHOTS} examples, {BITS}-bit codes, "
          f"upper_planes {UPPER_PLANES}, mode accumulate, optimizer scaled, fold every step, "
          f"one thread")
    print(f"{args.rounds} rounds of a fresh process per engine, each {args.warmup} warm-up + "
          f"{args.steps} timed steps; ms/step = median over rounds of the median step")
    print("numpy Adam = float32 Adam written in numpy (m and v float32); added memory = "
          "peak RSS - RSS just before the trainer is created")
    print()
    print("| head | trainable weights | engine | ms/step | ms/step per round | CPU ms/step | "
          "added MiB | added bytes/weight | loss first -> last |")
    print("|---|---:|---|---:|---|---:|---:|---:|---|")


def print_row(head: str, engine: str, result: dict) -> None:
    label = "numpy Adam" if engine == "adam" else engine
    per_weight = result["added_bytes"] / result["weights"]
    rounds = ", ".join(f"{ms:.1f}" for ms in result["round_ms"])
    print(f"| {head} | {result['weights']:,} | {label} | {result['step_ms']:.2f} | {rounds} | "
          f"{result['cpu_ms']:.2f} | {result['added_bytes'] / 2**20:.1f} | {per_weight:.2f} | "
          f"{result['first_loss']:.3g} -> {result['last_loss']:.3g} |", flush=True)


def print_breakdown(head: str, layers: dict) -> None:
    labels = list(next(iter(layers.values())))
    print()
    print(f"Parts of a native step, head {head}, one thread, median ms per call. The step "
          "runs gemm_f32 (forward), gemm_t_f32 (input gradient, skipped for the first layer) "
          "and, with fold_every=1, dense_update + fold (the update with the fold of each row "
          "right after its step); dense_update and fold_lsb alone are shown for comparison. "
          "The numpy columns are the float32 counterparts:")
    print("| layer (in x out) | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for layer, times in layers.items():
        print(f"| {layer} | " + " | ".join(f"{times[label]:.2f}" for label in labels) + " |")


def print_ratios(head: str, results: dict) -> None:
    native, adam = results["native"], results["adam"]
    per_weight = native["added_bytes"] / native["weights"]
    state = native["state_bytes"] / native["weights"]
    time_ratio = native["step_ms"] / adam["step_ms"]
    print()
    print(f"Targets (stated for the 10M head), measured on head {head}:")
    print(f"  native peak added memory / trainable weights: {per_weight:.2f} bytes per weight "
          f"(target <= {TARGET_BYTES_PER_WEIGHT}): "
          f"{'met' if per_weight <= TARGET_BYTES_PER_WEIGHT else 'NOT met'}")
    print(f"    of which planes, accumulators and scaling {state:.2f}, the rest "
          f"{(native['added_bytes'] - native['state_bytes']) / 2**20:.1f} MiB")
    print(f"  native step time / float32 Adam step time: {time_ratio:.2f} "
          f"(target <= {TARGET_TIME_RATIO}): "
          f"{'met' if time_ratio <= TARGET_TIME_RATIO else 'NOT met'}")
    print(f"    the same ratio on CPU time: {native['cpu_ms'] / adam['cpu_ms']:.2f}")
    if not all(result["peak_reset"] for result in results.values()):
        print("  note: the kernel did not allow resetting the peak RSS, so the added memory "
              "may include import peaks")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed steps per process, of which the median counts (default 10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per engine and head, interleaved (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="one tiny head (4,608 weights) only, to check that the script runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head weights")
    parser.add_argument("--worker", choices=ENGINES + ("breakdown",), help=argparse.SUPPRESS)
    parser.add_argument("--worker-head", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker-bundle", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup < 0 or args.steps < 1 or args.rounds < 1:
        parser.error("--warmup must be >= 0, --steps and --rounds >= 1")
    return args


def main() -> None:
    args = parse_arguments()
    if args.worker:
        worker(args)
        return

    heads = QUICK_HEADS if args.quick else HEADS
    print_header(args)
    with tempfile.TemporaryDirectory(prefix="bench_adapt_native_") as folder:
        bundles = {name: pack_head(Path(folder), name, width, hidden, args.seed)
                   for name, (width, hidden) in heads.items()}
        results = {}
        for name, (width, hidden) in heads.items():
            rounds = {engine: [] for engine in ENGINES}
            for _ in range(args.rounds):
                for engine in ENGINES:
                    rounds[engine].append(measure(engine, bundles[name], width, hidden, args))
            results[name] = {engine: combine(rounds[engine]) for engine in ENGINES}
            for engine in ENGINES:
                print_row(name, engine, results[name][engine])
        last = list(heads)[-1]
        width, hidden = heads[last]
        layers = measure("breakdown", bundles[last], width, hidden, args)
    print_breakdown(last, layers)
    print_ratios(last, results[last])


if __name__ == "__main__":
    main()
