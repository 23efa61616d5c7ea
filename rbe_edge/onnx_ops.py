"""ONNX op `rbe_edge.BitplaneDecode` and its model-local function of standard ops.

A BitplaneDecode node turns the planes, scales and zero points of one
weight into the float32 weight. The function body defines the meaning with
standard ONNX ops, so stock onnxruntime runs it with nothing registered and
folds it into a constant at session start when the inputs are initializers.

Body, for planes uint8 [P, rows, row_stride], B = `bits`:
  bit[p, r, c]  = (planes[p, r, c // 8] >> (c % 8)) mod 2
  c_P[r, c]     = sum_p bit[p, r, c] * 2^(B-1-p) + (2^(B-P) - 1) / 2
  w[r, c]       = (c_P - zero[r, g]) * scale[r, g],  g = c // group_size
  weight        = Reshape(Transpose(w, perm), shape)
c_P is the center of the codes that share the top P bits, so it is a whole
or half integer below 2^17 and exact in float32, and so is c_P - zero. The
multiplication is the only rounding, so the result equals the C decode bit
for bit.
"""
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rbe_edge.packed_tensor import PackedTensor

DOMAIN = "rbe_edge"
DOMAIN_VERSION = 1
OP_TYPE = "BitplaneDecode"
# Constant's value_int/value_ints attributes, which the body references,
# appeared in opset 12.
MIN_OPSET = 12

ATTRIBUTES = ["bits", "planes", "shape", "perm", "cols", "group_size", "layout"]
PERM_OF_LAYOUT = {"kn": [1, 0], "nk": [0, 1], "vector": [0, 1]}


def _constant(output: str, **value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [output], **value)


def _attribute_constant(output: str, attribute: str, kind: str) -> onnx.NodeProto:
    """Return a Constant node whose value is the function attribute `attribute`."""
    node = helper.make_node("Constant", [], [output])
    reference = onnx.AttributeProto()
    reference.name = kind
    reference.ref_attr_name = attribute
    reference.type = (onnx.AttributeProto.INT if kind == "value_int"
                      else onnx.AttributeProto.INTS)
    node.attribute.append(reference)
    return node


def _unpack_bits_nodes() -> list:
    """planes uint8 [P, R, S] -> bits float32 [P, R, cols]."""
    shifts = numpy_helper.from_array(np.arange(8, dtype=np.uint8), "shifts")
    two = numpy_helper.from_array(np.array(2, dtype=np.uint8), "two")
    return [
        _constant("shifts", value=shifts),
        _constant("two", value=two),
        _constant("minus_one", value_ints=[-1]),
        _constant("zero_1d", value_ints=[0]),
        _constant("last_axis", value_ints=[2]),
        _constant("tail_1", value_ints=[1]),
        helper.make_node("Shape", ["planes"], ["planes_shape"]),
        helper.make_node("Concat", ["planes_shape", "tail_1"], ["planes_4d_shape"], axis=0),
        helper.make_node("Reshape", ["planes", "planes_4d_shape"], ["planes_4d"]),
        helper.make_node("BitShift", ["planes_4d", "shifts"], ["shifted"], direction="RIGHT"),
        helper.make_node("Mod", ["shifted", "two"], ["bit_bytes"]),
        helper.make_node("Cast", ["bit_bytes"], ["bits_4d"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["planes_shape", "zero_1d", "last_axis"], ["planes_rows"]),
        helper.make_node("Concat", ["planes_rows", "minus_one"], ["bits_3d_shape"], axis=0),
        helper.make_node("Reshape", ["bits_4d", "bits_3d_shape"], ["bits_padded"]),
        _attribute_constant("cols_scalar", "cols", "value_int"),
        helper.make_node("Reshape", ["cols_scalar", "minus_one"], ["cols_1d"]),
        helper.make_node("Slice", ["bits_padded", "zero_1d", "cols_1d", "last_axis"],
                         ["bits_pcr"]),
    ]


def _code_nodes() -> list:
    """bits [P, R, cols] -> c_P float32 [R, cols]: weights 2^(B-1-p) plus the center offset.

    The weighted sum over planes is a [1, P] x [P, R * cols] MatMul, so the
    bits are never transposed; every partial sum is an integer below 2^16,
    exact in float32 in any order.
    """
    return [
        _attribute_constant("bits_i64", "bits", "value_int"),
        _attribute_constant("planes_i64", "planes", "value_int"),
        _constant("zero_i64", value_int=0),
        _constant("one_i64", value_int=1),
        _constant("one_u64", value=numpy_helper.from_array(np.array(1, np.uint64), "one_u64")),
        helper.make_node("Range", ["zero_i64", "planes_i64", "one_i64"], ["plane_index"]),
        helper.make_node("Sub", ["bits_i64", "one_i64"], ["top_bit"]),
        helper.make_node("Sub", ["top_bit", "plane_index"], ["plane_bit"]),
        helper.make_node("Cast", ["plane_bit"], ["plane_bit_u64"], to=TensorProto.UINT64),
        helper.make_node("BitShift", ["one_u64", "plane_bit_u64"], ["plane_weight_u64"],
                         direction="LEFT"),
        helper.make_node("Cast", ["plane_weight_u64"], ["plane_weight"], to=TensorProto.FLOAT),
        _constant("row_vector_shape", value_ints=[1, -1]),
        _constant("planes_by_rest", value_ints=[0, -1]),
        helper.make_node("Reshape", ["plane_weight", "row_vector_shape"], ["plane_weight_row"]),
        helper.make_node("Reshape", ["bits_pcr", "planes_by_rest"], ["bits_flat"]),
        helper.make_node("MatMul", ["plane_weight_row", "bits_flat"], ["truncated_flat"]),
        helper.make_node("Shape", ["bits_pcr"], ["bits_shape"]),
        _constant("rows_cols_start", value_ints=[1]),
        _constant("rows_cols_end", value_ints=[3]),
        helper.make_node("Slice", ["bits_shape", "rows_cols_start", "rows_cols_end"],
                         ["rows_cols"]),
        helper.make_node("Reshape", ["truncated_flat", "rows_cols"], ["truncated"]),
        # Center offset (2^(B-P) - 1) / 2: 2^(B-P-1) - 0.5 when P < B, 0 when P == B.
        helper.make_node("Sub", ["bits_i64", "planes_i64"], ["dropped"]),
        helper.make_node("Cast", ["dropped"], ["dropped_u64"], to=TensorProto.UINT64),
        helper.make_node("BitShift", ["one_u64", "dropped_u64"], ["span_u64"], direction="LEFT"),
        helper.make_node("Cast", ["span_u64"], ["span"], to=TensorProto.FLOAT),
        _constant("one_f32", value=numpy_helper.from_array(np.array(1.0, np.float32), "one_f32")),
        _constant("half_f32", value=numpy_helper.from_array(np.array(0.5, np.float32), "half_f32")),
        helper.make_node("Sub", ["span", "one_f32"], ["span_minus_one"]),
        helper.make_node("Mul", ["span_minus_one", "half_f32"], ["center_offset"]),
        helper.make_node("Add", ["truncated", "center_offset"], ["codes"]),
    ]


def _dequantize_nodes() -> list:
    """codes [R, cols] -> weight in the original shape, via groups of the scale's shape."""
    return [
        helper.make_node("Shape", ["scale"], ["scale_shape"]),
        helper.make_node("Concat", ["scale_shape", "minus_one"], ["grouped_shape"], axis=0),
        helper.make_node("Concat", ["scale_shape", "tail_1"], ["param_shape"], axis=0),
        helper.make_node("Reshape", ["codes", "grouped_shape"], ["codes_grouped"]),
        helper.make_node("Reshape", ["zero", "param_shape"], ["zero_grouped"]),
        helper.make_node("Reshape", ["scale", "param_shape"], ["scale_grouped"]),
        helper.make_node("Sub", ["codes_grouped", "zero_grouped"], ["centered"]),
        helper.make_node("Mul", ["centered", "scale_grouped"], ["values_grouped"]),
        helper.make_node("Shape", ["codes"], ["matrix_shape"]),
        helper.make_node("Reshape", ["values_grouped", "matrix_shape"], ["matrix"]),
        _transpose_from_attribute("matrix", "matrix_t"),
        _attribute_constant("weight_shape", "shape", "value_ints"),
        helper.make_node("Reshape", ["matrix_t", "weight_shape"], ["weight"]),
    ]


def _transpose_from_attribute(source: str, output: str) -> onnx.NodeProto:
    node = helper.make_node("Transpose", [source], [output])
    reference = onnx.AttributeProto()
    reference.name = "perm"
    reference.ref_attr_name = "perm"
    reference.type = onnx.AttributeProto.INTS
    node.attribute.append(reference)
    return node


def make_function(opset: int) -> onnx.FunctionProto:
    """Return the BitplaneDecode FunctionProto for a model importing ONNX `opset`."""
    if opset < MIN_OPSET:
        raise ValueError(f"BitplaneDecode needs ONNX opset {MIN_OPSET} or newer, got {opset}")
    nodes = _unpack_bits_nodes() + _code_nodes() + _dequantize_nodes()
    return helper.make_function(
        DOMAIN, OP_TYPE,
        inputs=["planes", "scale", "zero"],
        outputs=["weight"],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=ATTRIBUTES,
        doc_string="Decode the top `planes` bitplanes of a `bits`-bit weight to float32.",
    )


def make_node(packed: PackedTensor, planes: int, inputs: Sequence[str], output: str,
              name: str) -> onnx.NodeProto:
    """Return a BitplaneDecode node for `packed` decoded with `planes` planes."""
    return helper.make_node(
        OP_TYPE, list(inputs), [output], name=name, domain=DOMAIN,
        bits=packed.bits, planes=int(planes), shape=list(packed.shape),
        perm=PERM_OF_LAYOUT[packed.layout], cols=packed.cols,
        group_size=packed.group_size, layout=packed.layout,
    )


def plane_names(weight: str, planes: int) -> list:
    """Return the initializer names of a weight's planes 0..planes-1 in a bundle graph."""
    return [f"{weight}.rbe_plane{p}" for p in range(planes)]


def make_plane_concat(weight: str, planes: int, output: str) -> onnx.NodeProto:
    """Return the Concat node that stacks [1, rows, row_stride] planes to [P, rows, row_stride].

    Bundles keep each plane as its own initializer because model.rbe stores
    planes plane-major, so one tensor's planes are not contiguous there.
    """
    return helper.make_node("Concat", plane_names(weight, planes), [output],
                            name=f"{weight}.rbe_concat", axis=0)


def external_tensor(name: str, data_type: int, dims: Sequence[int], location: str,
                    offset: int, length: int) -> TensorProto:
    """Return an initializer whose bytes live at `offset` in the file `location`."""
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = data_type
    tensor.dims.extend(int(d) for d in dims)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key = key
        entry.value = value
    return tensor


def make_initializers(packed: PackedTensor, planes: int, names: Sequence[str]) -> list:
    """Return the planes, scale and zero initializers of a BitplaneDecode node."""
    data = np.ascontiguousarray(packed.planes[:planes])
    return [
        numpy_helper.from_array(data, names[0]),
        numpy_helper.from_array(np.ascontiguousarray(packed.scale, np.float32), names[1]),
        numpy_helper.from_array(np.ascontiguousarray(packed.zero, np.float32), names[2]),
    ]


def set_planes(node: onnx.NodeProto, planes: int) -> None:
    """Change the `planes` attribute of a BitplaneDecode node."""
    for attribute in node.attribute:
        if attribute.name == "planes":
            attribute.i = int(planes)
            return
    raise ValueError(f"node '{node.name}' has no 'planes' attribute")


def attribute(node: onnx.NodeProto, name: str):
    for item in node.attribute:
        if item.name == name:
            return helper.get_attribute_value(item)
    raise KeyError(f"node '{node.name}' has no attribute '{name}'")
