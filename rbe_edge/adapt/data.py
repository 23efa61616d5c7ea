"""Checking user data against a model's inputs and output before training touches anything."""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
from onnx import helper

from rbe_edge.adapt.errors import AdaptError

Inputs = Union[np.ndarray, Mapping[str, np.ndarray]]


def static_dims(value: onnx.ValueInfoProto) -> List[Optional[int]]:
    """Return the dims of a graph input or output, None for symbolic ones."""
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim]


def batch_limit(inputs: Sequence[onnx.ValueInfoProto], where: str) -> Optional[int]:
    """Return 1 when the model takes one example per run, None when the batch axis is free."""
    fixed = {static_dims(value)[0] for value in inputs if static_dims(value)}
    fixed.discard(None)
    if not fixed:
        return None
    if fixed == {1}:
        return 1
    raise AdaptError(f"{where}: the inputs have a fixed batch size {sorted(fixed)}; export the "
                     "model with batch size 1 or a symbolic batch axis")


def check_inputs(inputs: Inputs, values: Sequence[onnx.ValueInfoProto], where: str
                 ) -> Tuple[Dict[str, np.ndarray], int]:
    """Return (feeds by input name, number of examples); axis 0 of every array is the example."""
    names = [value.name for value in values]
    if isinstance(inputs, Mapping):
        feeds = dict(inputs)
    elif len(names) == 1:
        feeds = {names[0]: inputs}
    else:
        raise AdaptError(f"{where}: the model has inputs {names}; pass a dict of arrays")

    unknown = sorted(set(feeds) - set(names))
    missing = [name for name in names if name not in feeds]
    if unknown or missing:
        raise AdaptError(f"{where}: input names do not match the model: missing {missing}, "
                         f"unknown {unknown}; the model's inputs are {names}")

    checked = {}
    counts = set()
    for value in values:
        checked[value.name] = _check_array(feeds[value.name], value, where)
        counts.add(checked[value.name].shape[0])
    if len(counts) != 1:
        raise AdaptError(f"{where}: the inputs hold different numbers of examples "
                         f"{sorted(counts)}; axis 0 of every input is the example axis")
    count = counts.pop()
    if count == 0:
        raise AdaptError(f"{where}: the data is empty (0 examples); pass at least one example")
    return checked, count


def _check_array(array, value: onnx.ValueInfoProto, where: str) -> np.ndarray:
    dims = static_dims(value)
    dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    array = np.asarray(array)
    expected = "(N, " + ", ".join("?" if d is None else str(d) for d in dims[1:]) + ")"
    if array.ndim != len(dims) or any(d is not None and d != a
                                      for d, a in zip(dims[1:], array.shape[1:])):
        raise AdaptError(f"{where}: input '{value.name}' has shape {array.shape}; the model "
                         f"expects {expected} with N examples on axis 0")

    if np.issubdtype(dtype, np.floating):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise AdaptError(f"{where}: input '{value.name}' has dtype {array.dtype}; the model "
                             f"expects {np.dtype(dtype)}")
        array = array.astype(dtype, copy=False)
        if array.size and not np.isfinite(array).all():
            bad = int(np.argwhere(~np.isfinite(array))[0][0])
            raise AdaptError(f"{where}: input '{value.name}' holds NaN or infinite values "
                             f"(first in example {bad}); clean the data first")
    elif array.dtype != dtype:
        if not np.can_cast(array.dtype, dtype, casting="same_kind"):
            raise AdaptError(f"{where}: input '{value.name}' has dtype {array.dtype}; the model "
                             f"expects {np.dtype(dtype)}")
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def check_labels(labels, count: int, loss: str, output: onnx.ValueInfoProto,
                 classes: Optional[int], where: str) -> np.ndarray:
    """Return the labels as the train step's label input, or raise naming the problem."""
    dims = static_dims(output)
    labels = np.asarray(labels)
    if loss == "cross_entropy":
        expected_dims = dims[1:-1]
        if not np.issubdtype(labels.dtype, np.integer):
            raise AdaptError(f"{where}: cross-entropy labels must be integer class indices, "
                             f"got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    else:
        expected_dims = dims[1:]
        if not np.issubdtype(labels.dtype, np.floating):
            raise AdaptError(f"{where}: mse targets must be floats, got dtype {labels.dtype}")
        labels = labels.astype(np.float32)

    shape_ok = labels.ndim == 1 + len(expected_dims) and labels.shape[0] == count and all(
        d is None or d == a for d, a in zip(expected_dims, labels.shape[1:]))
    if not shape_ok:
        wanted = ", ".join(["N"] + ["?" if d is None else str(d) for d in expected_dims])
        raise AdaptError(f"{where}: labels have shape {labels.shape}; output '{output.name}' "
                         f"needs ({wanted}) with N = {count} examples")

    if loss == "cross_entropy":
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (classes is not None and high >= classes):
            raise AdaptError(f"{where}: labels range over {low}..{high}, but output "
                             f"'{output.name}' has {classes} classes (0..{(classes or 0) - 1}); "
                             "map the labels into that range")
    elif not np.isfinite(labels).all():
        raise AdaptError(f"{where}: the mse targets hold NaN or infinite values")
    return np.ascontiguousarray(labels)
