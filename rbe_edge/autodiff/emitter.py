"""Emission of standard-op nodes for gradient graphs: names, constants and shape helpers.

Every helper works on runtime shapes (Shape, Size, NonZero, ...), so gradient
graphs accept the same dynamic dimensions as the forward graph. Static shapes
from shape inference only let a helper skip a no-op or use constant axes.
"""

from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rbe_edge.autodiff.tensor_info import Dim, TensorInfo

INT64_MAX = np.iinfo(np.int64).max

Axes = Union[Sequence[int], str, None]


class GraphEmitter:
    """Appends nodes to a gradient graph under unique names.

    Tensor names have the form "<scope>/<k>" and node names "<scope>/<op>_<k>",
    where the scope names the forward node whose rule is running. Constants
    are shared by all scopes and named "<root>/const/<k>".
    """

    def __init__(
        self, opset: int, infos: Dict[str, TensorInfo], taken_names: Set[str], root: str = "grad"
    ):
        self.opset = opset
        self.infos = infos
        self.nodes: List[onnx.NodeProto] = []
        self._taken_names = set(taken_names)
        self._root = root
        self._scope = root
        self._counter = 0
        self._constants: Dict[tuple, str] = {}
        self._shapes: Dict[str, str] = {}

    def enter(self, scope: str) -> None:
        """Name the nodes emitted from now on after `scope`."""
        self._scope = scope
        self._counter = 0

    def fresh_name(self, hint: str = "") -> str:
        """Return a tensor name not used anywhere in the model yet."""
        while True:
            self._counter += 1
            name = f"{self._scope}/{hint}{self._counter}"
            if name not in self._taken_names:
                self._taken_names.add(name)
                return name

    def _claim(self, base: str) -> str:
        name = base
        suffix = 0
        while name in self._taken_names:
            suffix += 1
            name = f"{base}_{suffix}"
        self._taken_names.add(name)
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        """Emit one node with one output and return the output name."""
        return self.op_multi(op_type, inputs, 1, **attrs)[0]

    def op_multi(self, op_type: str, inputs: Sequence[str], outputs: int, **attrs) -> List[str]:
        """Emit one node with `outputs` outputs and return their names."""
        names = [self.fresh_name() for _ in range(outputs)]
        node_name = self.fresh_name(f"{op_type}_")
        node = helper.make_node(op_type, list(inputs), names, name=node_name, **attrs)
        self.nodes.append(node)
        return names

    def info(self, name: str) -> TensorInfo:
        return self.infos.get(name, TensorInfo())

    # Constants.

    def ints(self, values: Union[int, Sequence[int]]) -> str:
        """Return an int64 constant: a scalar for an int, 1-D for a sequence."""
        array = np.array(values, dtype=np.int64)
        return self._constant(array, ("int64", array.shape, tuple(array.ravel().tolist())))

    def scalar(self, value: float, like: str) -> str:
        """Return a scalar constant of the element type of tensor `like`."""
        elem_type = self.info(like).elem_type
        if elem_type == 0:
            return self.op("CastLike", self.scalar_float32(value), like)

        dtype = helper.tensor_dtype_to_np_dtype(elem_type)
        array = np.array(value, dtype=dtype)
        return self._constant(array, (elem_type, float(value)))

    def scalar_float32(self, value: float) -> str:
        array = np.array(value, dtype=np.float32)
        return self._constant(array, (onnx.TensorProto.FLOAT, float(value)))

    def _constant(self, array: np.ndarray, key: tuple) -> str:
        if key not in self._constants:
            name = self._claim(f"{self._root}/const/{len(self._constants)}")
            node_name = self._claim(f"{name}/Constant")
            tensor = numpy_helper.from_array(array, name)
            self.nodes.append(
                helper.make_node("Constant", [], [name], name=node_name, value=tensor)
            )
            self._constants[key] = name
        return self._constants[key]

    # Shapes.

    def shape(self, x: str) -> str:
        """Return the runtime shape of `x` (one Shape node per tensor)."""
        if x not in self._shapes:
            self._shapes[x] = self.op("Shape", x)
        return self._shapes[x]

    def shape_slice(self, x: str, start: int, end: int = INT64_MAX) -> str:
        """Return Shape(x)[start:end] as a 1-D int64 tensor."""
        return self.op("Slice", self.shape(x), self.ints([start]), self.ints([end]))

    def count_as(self, x: str, like: str) -> str:
        """Return the element count of `x` as a scalar of the element type of `like`."""
        return self.op("CastLike", self.op("Size", x), like)

    # Reductions.

    def reduce_sum(self, x: str, axes: Axes, keepdims: int) -> str:
        """Emit ReduceSum over constant (a sequence) or runtime (a tensor name) axes."""
        if axes is None:
            return self.op("ReduceSum", x, keepdims=keepdims)
        axes_input = axes if isinstance(axes, str) else self.ints(list(axes))
        return self.op("ReduceSum", x, axes_input, keepdims=keepdims)

    def reduce_mean(self, x: str, axes: Optional[Sequence[int]], keepdims: int) -> str:
        """Emit ReduceMean, with axes as an attribute before opset 18 and an input from 18."""
        if axes is None:
            return self.op("ReduceMean", x, keepdims=keepdims)
        if self.opset < 18:
            return self.op("ReduceMean", x, axes=list(axes), keepdims=keepdims)
        return self.op("ReduceMean", x, self.ints(list(axes)), keepdims=keepdims)

    def reduce_to(self, grad: str, like: str, grad_dims: Optional[Tuple[Dim, ...]] = None) -> str:
        """Sum a broadcast gradient back to the shape of tensor `like`.

        `grad_dims` are the inferred dims of `grad` when known. With them, equal
        shapes skip the reduction, and a target of static shape (a bias or a
        weight) gets constant axes whatever the symbolic dims of `grad`.
        Otherwise the axes come from the runtime shapes: `like`'s shape is
        left-padded with ones to the rank of `grad`, and every axis where it
        is 1 is summed (summing an axis where `grad` is also 1 changes nothing).
        """
        like_dims = self.info(like).dims
        if grad_dims is not None and like_dims is not None:
            if _all_known(grad_dims) and tuple(grad_dims) == tuple(like_dims):
                return grad
            if _all_static(like_dims) and len(like_dims) <= len(grad_dims):
                return self._reduce_to_static(grad, grad_dims, like_dims)
        return self._reduce_to_dynamic(grad, like)

    def _reduce_to_static(self, grad: str, grad_dims, like_dims) -> str:
        # Broadcasting makes every dim of `grad` equal to the static dim of
        # `like` unless that is 1, so only leading axes and unit axes are summed.
        lead = len(grad_dims) - len(like_dims)
        axes = list(range(lead))
        for axis, dim in enumerate(like_dims):
            if dim == 1 and grad_dims[lead + axis] != 1:
                axes.append(lead + axis)
        if axes:
            grad = self.reduce_sum(grad, axes, keepdims=1)
        if lead > 0 or axes:
            grad = self.op("Reshape", grad, self.ints(list(like_dims)))
        return grad

    def _reduce_to_dynamic(self, grad: str, like: str) -> str:
        grad_shape = self.op("Shape", grad)
        like_shape = self.shape(like)
        rank_gap = self.op("Sub", self.op("Size", grad_shape), self.op("Size", like_shape))
        ones_value = numpy_helper.from_array(np.array([1], dtype=np.int64))
        ones = self.op(
            "ConstantOfShape", self.op("Reshape", rank_gap, self.ints([1])), value=ones_value
        )
        padded_shape = self.op("Concat", ones, like_shape, axis=0)
        unit_axes = self.op("NonZero", self.op("Equal", padded_shape, self.ints(1)))
        axes = self.op("Reshape", unit_axes, self.ints([-1]))
        summed = self.op("ReduceSum", grad, axes, keepdims=1, noop_with_empty_axes=1)
        return self.op("Reshape", summed, like_shape)


def _all_known(dims) -> bool:
    return all(d is not None for d in dims)


def _all_static(dims) -> bool:
    return all(isinstance(d, int) for d in dims)
