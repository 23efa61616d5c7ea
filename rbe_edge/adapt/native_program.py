"""Compiling the trainable head of a bundle into a layer program for the C core.

The native engine runs a chain of row-wise layers: dense (MatMul, Gemm,
MatMul + Add), Relu, Gelu (the opset 20 op, or the Div/Erf/Add/Mul/Mul
pattern that PyTorch exports), Tanh and LayerNormalization over the last
axis. Identity and inference-mode Dropout pass through. The compiler walks the head graph
from its single boundary tensor to the trained output and raises
NativeUnsupportedError, naming the node, at anything else.

A program is stored in the bundle as native_program.json (the layers) and
native_program.bin (float32 little-endian parameters that are not packed,
such as small biases). Packed parameters are referenced by tensor name and
read from model.rbe.
"""
import json
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx
from onnx import numpy_helper

from rbe_edge import onnx_ops
from rbe_edge.adapt.errors import AdaptError

PROGRAM_FILE = "native_program.json"
PARAMS_FILE = "native_program.bin"
FORMAT = "rbe_edge.native_program"
VERSION = 1
ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh"}
PASS_THROUGH = ("Identity", "Dropout")


class NativeUnsupportedError(AdaptError):
    """The trainable head contains an op or structure that the native engine cannot run."""


@dataclass
class NativeProgram:
    """A chain of layers from `input` to `output`, with its unpacked parameters."""

    input: str
    input_width: int
    output: str
    layers: List[Dict]
    params: bytearray = field(default_factory=bytearray)

    def to_json(self) -> bytes:
        document = {"format": FORMAT, "version": VERSION, "input": self.input,
                    "input_width": self.input_width, "output": self.output,
                    "layers": self.layers}
        return json.dumps(document, indent=1).encode()

    def add_params(self, values: np.ndarray) -> Dict:
        """Append float32 values to the parameter blob; return their reference."""
        values = np.ascontiguousarray(values, dtype="<f4").ravel()
        reference = {"offset": len(self.params) // 4, "count": int(values.size)}
        self.params += values.tobytes()
        return reference

    def packed_weights(self) -> List[str]:
        """Names of the packed tensors that the program reads."""
        names = []
        for layer in self.layers:
            for key in ("weight", "bias", "gamma", "beta"):
                value = layer.get(key)
                name = value if isinstance(value, str) else (value or {}).get("tensor")
                if name and name not in names:
                    names.append(name)
        return names


class _Graph:
    """Lookups over a head graph: producers, consumers, constants and decoded weights."""

    def __init__(self, model: onnx.ModelProto, where: str, packed_info: Callable):
        self.where = where
        self.packed_info = packed_info
        self.graph = model.graph
        self.consumers: Dict[str, List[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.decoded = self._decoded_weights()
        self.constants = {n.output[0]: n for n in model.graph.node
                          if n.op_type == "Constant" and n.output}
        self.shapes = {v.name: v for v in list(model.graph.value_info) +
                       list(model.graph.input) + list(model.graph.output)}

    def _decoded_weights(self) -> Dict[str, Tuple[str, int]]:
        """Map each decoded tensor (after an optional Cast) to (packed name, planes)."""
        decoded = {}
        for node in self.graph.node:
            if node.domain != onnx_ops.DOMAIN or node.op_type != onnx_ops.OP_TYPE:
                continue
            weight = node.name[: -len(".rbe_decode")]
            planes = next(a.i for a in node.attribute if a.name == "planes")
            decoded[node.output[0]] = (weight, planes)
            for later in self.consumers.get(node.output[0], []):
                if later.op_type == "Cast":
                    decoded[later.output[0]] = (weight, planes)
        return decoded

    def constant(self, name: str) -> Optional[np.ndarray]:
        """Return the value of an initializer or Constant node, or None."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.constants.get(name)
        if node is not None and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def last_dim(self, name: str) -> Optional[int]:
        value = self.shapes.get(name)
        if value is None or not value.type.tensor_type.HasField("shape"):
            return None
        dims = value.type.tensor_type.shape.dim
        return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None

    def fail(self, node: onnx.NodeProto, reason: str, fix: Optional[str] = None) -> None:
        label = node.name or node.output[0]
        fix = fix or ("the native engine runs chains of MatMul/Gemm (+ bias), Relu, Gelu, Tanh "
                      "and LayerNormalization, so use engine='onnxruntime' for this model")
        raise NativeUnsupportedError(f"{self.where}: node '{label}' ({node.op_type}) {reason}; "
                                     f"{fix}")


def compile_head(head: onnx.ModelProto, boundary: List[str], output: str,
                 trainable: List[str], packed_info: Callable, where: str) -> NativeProgram:
    """Compile the head graph of a training cut into a NativeProgram.

    packed_info(name) returns (layout, rows, cols) of a packed tensor.

    Raises NativeUnsupportedError naming the first node (or the boundary)
    that the native engine cannot run.
    """
    graph = _Graph(head, where, packed_info)
    if not boundary:
        raise NativeUnsupportedError(f"{where}: the trainable layers read no tensor from "
                                     "before them; use engine='onnxruntime'")
    for name in boundary[1:]:
        graph.fail(graph.consumers[name][0], f"reads '{name}', a second tensor from before "
                   f"the trainable layers besides '{boundary[0]}' (a branch or residual "
                   "connection)")
    program = NativeProgram(boundary[0], 0, output, [])
    current = boundary[0]
    width = graph.last_dim(current)

    while current != output:
        node, current, width = _compile_step(graph, program, current, width, trainable)

    program.input_width = _input_width(graph, program, boundary[0])
    missing = [name for name in trainable if name not in program.packed_weights()]
    if missing:
        raise NativeUnsupportedError(f"{where}: trainable tensors {missing} are not weights of "
                                     "a dense layer in the chain; use engine='onnxruntime'")
    return program


def _input_width(graph: _Graph, program: NativeProgram, name: str) -> int:
    width = graph.last_dim(name)
    if width:
        return width
    first = program.layers[0]
    if first["kind"] == "dense":
        return first["cols"]
    if first["kind"] == "layer_norm":
        return first["width"]
    raise NativeUnsupportedError(f"{graph.where}: the width of '{name}' is unknown; give its "
                                 "last dimension a fixed size in the model")


def _compile_step(graph: _Graph, program: NativeProgram, current: str, width, trainable):
    """Compile the layer that reads `current`; return (node, its output, output width)."""
    readers = [n for n in graph.consumers.get(current, [])]
    if not readers:
        raise NativeUnsupportedError(f"{graph.where}: no layer reads '{current}' and it is not "
                                     f"the output '{program.output}'")
    gelu = _match_erf_gelu(graph, current, readers)
    if gelu is not None:
        program.layers.append({"kind": "gelu", "node": gelu.name or gelu.output[0]})
        return gelu, gelu.output[0], width
    if len(readers) > 1:
        graph.fail(readers[1], f"also reads '{current}' (a branch or residual connection)")

    node = readers[0]
    op = node.op_type
    if op in PASS_THROUGH:
        _check_pass_through(graph, node)
        return node, node.output[0], width
    if op in ACTIVATIONS and node.domain in ("", "ai.onnx"):
        program.layers.append({"kind": ACTIVATIONS[op], "node": node.name or node.output[0]})
        return node, node.output[0], width
    if op == "Gelu" and node.domain in ("", "ai.onnx"):
        program.layers.append(_gelu_op(graph, node))
        return node, node.output[0], width
    if op == "LayerNormalization":
        layer = _layer_norm(graph, program, node, width)
        program.layers.append(layer)
        return node, node.output[0], width
    if op in ("MatMul", "Gemm"):
        layer, out = _dense(graph, program, node, current, trainable)
        program.layers.append(layer)
        return node, out, layer["rows"]
    graph.fail(node, "is not supported")


def _check_pass_through(graph: _Graph, node: onnx.NodeProto) -> None:
    if node.op_type != "Dropout":
        return
    if len(node.output) > 1 and node.output[1]:
        graph.fail(node, "has a mask output")
    if len(node.input) > 2 and node.input[2]:
        graph.fail(node, "has a training_mode input")


def _gelu_op(graph: _Graph, node: onnx.NodeProto) -> Dict:
    approximate = next((a.s.decode() for a in node.attribute if a.name == "approximate"), "none")
    if approximate not in ("none", "tanh"):
        graph.fail(node, f"has approximate='{approximate}'")
    kind = "gelu" if approximate == "none" else "gelu_tanh"
    return {"kind": kind, "node": node.name or node.output[0]}


def _match_erf_gelu(graph: _Graph, x: str, readers) -> Optional[onnx.NodeProto]:
    """Match x * 0.5 * (1 + erf(x / sqrt(2))) in PyTorch's node order; return its last node."""
    if len(readers) != 2:
        return None
    divide = next((n for n in readers if _is_scaling_by(graph, n, x, math.sqrt(2.0))), None)
    scale_x = next((n for n in readers if n is not divide and n.op_type == "Mul"), None)
    if divide is None or scale_x is None:
        return None
    erf = _only_reader(graph, divide.output[0], "Erf")
    add = erf and _only_reader(graph, erf.output[0], "Add")
    if add is None or not _is_constant(graph, _other(add, erf.output[0]), 1.0):
        return None
    # Either Mul(x, add) then Mul(., 0.5), or Mul(x, 0.5) then Mul(., add).
    if add.output[0] in scale_x.input:
        half = _only_reader(graph, scale_x.output[0], "Mul")
        ok = half is not None and _is_constant(graph, _other(half, scale_x.output[0]), 0.5)
        return half if ok else None
    if _is_constant(graph, _other(scale_x, x), 0.5):
        final = _only_reader(graph, scale_x.output[0], "Mul")
        ok = final is not None and add.output[0] in final.input
        return final if ok else None
    return None


def _is_scaling_by(graph: _Graph, node: onnx.NodeProto, x: str, divisor: float) -> bool:
    """Return whether `node` computes x / divisor, as Div(x, divisor) or Mul by 1 / divisor."""
    if node.op_type == "Div" and list(node.input)[0] == x:
        return _is_constant(graph, node.input[1], divisor)
    if node.op_type == "Mul" and x in node.input:
        return _is_constant(graph, _other(node, x), 1.0 / divisor)
    return False


def _only_reader(graph: _Graph, name: str, op_type: str) -> Optional[onnx.NodeProto]:
    readers = graph.consumers.get(name, [])
    return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None


def _other(node: onnx.NodeProto, name: str) -> str:
    inputs = list(node.input)
    return inputs[1] if inputs[0] == name else inputs[0]


def _is_constant(graph: _Graph, name: str, expected: float) -> bool:
    value = graph.constant(name)
    return value is not None and value.size == 1 and \
        abs(float(value.ravel()[0]) - expected) <= 1e-5 * abs(expected)


def _attribute(node: onnx.NodeProto, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _param(graph: _Graph, program: NativeProgram, node: onnx.NodeProto, name: str,
           width: int, what: str):
    """Reference a per-channel parameter: a packed tensor name or a blob range."""
    if name in graph.decoded:
        return {"tensor": graph.decoded[name][0], "planes": graph.decoded[name][1]}
    value = graph.constant(name)
    if value is None:
        graph.fail(node, f"reads {what} '{name}', which is neither a constant nor a packed "
                         "tensor")
    if value.size != width or (value.ndim > 1 and max(value.shape) != width):
        graph.fail(node, f"has a {what} of shape {list(value.shape)}, expected {width} "
                         "values along the last axis")
    return program.add_params(value.astype(np.float32))


def _layer_norm(graph: _Graph, program: NativeProgram, node: onnx.NodeProto, width) -> Dict:
    axis = _attribute(node, "axis", -1)
    rank = len(graph.shapes[node.input[0]].type.tensor_type.shape.dim) \
        if node.input[0] in graph.shapes else None
    if axis != -1 and (rank is None or axis != rank - 1):
        graph.fail(node, f"normalizes over axis {axis}; only the last axis is supported")
    if any(node.output[1:]):
        graph.fail(node, "has mean or inverse standard deviation outputs")
    width = width or graph.last_dim(node.input[1])
    if not width:
        graph.fail(node, "has an input of unknown width")
    epsilon = float(_attribute(node, "epsilon", 1e-5))
    gamma = _param(graph, program, node, node.input[1], width, "scale")
    beta = (_param(graph, program, node, node.input[2], width, "bias")
            if len(node.input) > 2 and node.input[2] else None)
    return {"kind": "layer_norm", "node": node.name or node.output[0], "width": width,
            "epsilon": epsilon, "gamma": gamma, "beta": beta}


def _dense(graph: _Graph, program: NativeProgram, node: onnx.NodeProto, x: str, trainable):
    """Compile MatMul (with a following bias Add) or Gemm; return (layer, output)."""
    if list(node.input)[0] != x:
        graph.fail(node, "multiplies the activations from the right")
    weight = node.input[1]
    if weight not in graph.decoded:
        graph.fail(node, f"reads weight '{weight}', which packing left in float32 (it has "
                         "fewer values than pack's min_elements)",
                   "pack the model again with a lower min_elements (tools/pack.py "
                   "--min-elements) so that the weight is packed, or use engine='onnxruntime'")
    name, planes = graph.decoded[weight]
    expected_layout = "kn"
    if node.op_type == "Gemm":
        _check_gemm(graph, node)
        expected_layout = "nk" if _attribute(node, "transB", 0) else "kn"
    layer = {"kind": "dense", "node": node.name or node.output[0], "weight": name,
             "planes": planes, "trainable": name in trainable, "layout": expected_layout,
             "bias": None}
    layer["rows"], layer["cols"] = _weight_rows(graph, node, name, expected_layout)

    out = node.output[0]
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        layer["bias"] = _param(graph, program, node, node.input[2], layer["rows"], "bias")
        return layer, out
    readers = graph.consumers.get(out, [])
    if len(readers) == 1 and readers[0].op_type == "Add":
        add = readers[0]
        other = _other(add, out)
        if other in graph.decoded or graph.constant(other) is not None:
            layer["bias"] = _param(graph, program, add, other, layer["rows"], "bias")
            return layer, add.output[0]
    return layer, out


def _check_gemm(graph: _Graph, node: onnx.NodeProto) -> None:
    if _attribute(node, "transA", 0):
        graph.fail(node, "has transA=1")
    if _attribute(node, "alpha", 1.0) != 1.0 or _attribute(node, "beta", 1.0) != 1.0:
        graph.fail(node, "has alpha or beta other than 1")


def _weight_rows(graph: _Graph, node: onnx.NodeProto, name: str, layout: str) -> Tuple[int, int]:
    """(rows, cols) of the packed matrix, whose rows are the output channels."""
    stored_layout, rows, cols = graph.packed_info(name)
    if stored_layout != layout:
        graph.fail(node, f"reads weight '{name}' packed in layout '{stored_layout}', but the "
                         f"native engine needs '{layout}' for this node")
    return rows, cols


def load_program(document: bytes, params: bytes, trainable: List[str], output: str,
                 where: str, fix: str) -> NativeProgram:
    """Parse and validate a stored program for `trainable` and `output`.

    Raises AdaptError naming `where`, the layer at fault and `fix` (what to
    run to write the program again) when the program is malformed.
    """
    try:
        data = json.loads(document)
    except ValueError as error:
        raise AdaptError(f"{where}: not valid JSON ({error}); {fix}") from None
    problem = _program_problem(data, len(params) // 4, trainable, output)
    if problem:
        raise AdaptError(f"{where}: not a valid native program: {problem}; {fix}")
    return NativeProgram(data["input"], data["input_width"], data["output"], data["layers"],
                         bytearray(params))


def _is_count(value, low: int = 1, high: Optional[int] = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and \
        (high is None or value <= high)


def _program_problem(data, param_floats: int, trainable: List[str], output: str) -> str:
    """Return what is wrong with a parsed program, or "" when it is valid."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or \
            data.get("version") != VERSION:
        return f"expected format '{FORMAT}' version {VERSION}"
    if not isinstance(data.get("input"), str) or not _is_count(data.get("input_width")):
        return "'input' must be a tensor name and 'input_width' a positive integer"
    if data.get("output") != output:
        return f"it ends at '{data.get('output')}', but training uses output '{output}'"
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        return "'layers' must be a non-empty list"

    trained = []
    for index, layer in enumerate(layers):
        problem = _layer_problem(layer, param_floats, trainable)
        if problem:
            return f"layer {index}: {problem}"
        if layer["kind"] == "dense" and layer["trainable"]:
            trained.append(layer["weight"])
    if sorted(trained) != sorted(trainable):
        return f"it trains {sorted(trained)}, but the trainable set is {sorted(trainable)}"
    return ""


def _layer_problem(layer, param_floats: int, trainable: List[str]) -> str:
    kinds = ("dense", "relu", "gelu", "gelu_tanh", "tanh", "layer_norm")
    if not isinstance(layer, dict) or layer.get("kind") not in kinds:
        return f"'kind' must be one of {list(kinds)}"
    if layer["kind"] == "dense":
        return _dense_problem(layer, param_floats, trainable)
    if layer["kind"] == "layer_norm":
        epsilon = layer.get("epsilon")
        if not _is_count(layer.get("width")) or not isinstance(epsilon, (int, float)) or \
                isinstance(epsilon, bool) or not 0 < epsilon < math.inf:
            return "a layer norm needs a positive integer 'width' and a positive 'epsilon'"
        return (_reference_problem(layer.get("gamma"), param_floats, False) or
                _reference_problem(layer.get("beta"), param_floats, True))
    return ""


def _dense_problem(layer: Dict, param_floats: int, trainable: List[str]) -> str:
    if not isinstance(layer.get("weight"), str) or layer.get("layout") not in ("kn", "nk"):
        return "a dense layer needs a 'weight' name and a 'layout' of 'kn' or 'nk'"
    if not _is_count(layer.get("planes"), 1, 16) or not _is_count(layer.get("rows")) or \
            not _is_count(layer.get("cols")):
        return "a dense layer needs 'planes' in 1..16 and positive 'rows' and 'cols'"
    if not isinstance(layer.get("trainable"), bool) or \
            layer["trainable"] != (layer["weight"] in trainable):
        return (f"'trainable' of weight '{layer['weight']}' must be "
                f"{str(layer['weight'] in trainable).lower()}")
    return _reference_problem(layer.get("bias"), param_floats, True)


def _reference_problem(reference, param_floats: int, optional: bool) -> str:
    """Check a parameter reference: a packed tensor, or a range of the .bin floats."""
    if reference is None:
        return "" if optional else "a required parameter is missing"
    if isinstance(reference, dict) and isinstance(reference.get("tensor"), str):
        return "" if _is_count(reference.get("planes"), 1, 16) else "bad 'planes' of a parameter"
    if isinstance(reference, dict) and _is_count(reference.get("offset"), 0) and \
            _is_count(reference.get("count")):
        if reference["offset"] + reference["count"] > param_floats:
            return (f"a parameter reads floats {reference['offset']}.."
                    f"{reference['offset'] + reference['count'] - 1}, but "
                    f"{PARAMS_FILE} holds {param_floats}")
        return ""
    return "a parameter must be {'tensor', 'planes'} or {'offset', 'count'}"
