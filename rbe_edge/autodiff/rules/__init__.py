"""The table of gradient rules: (domain, op type) -> Rule.

Each rule lives in a module of its op family and reads like the op's
specification: the forward formula in its docstring, the backward formula
in its body. `differentiable` lists the inputs a gradient can flow into;
integer inputs such as shapes, axes and indices are left out.
"""

from typing import Dict, Optional, Tuple

from rbe_edge.autodiff.context import Rule
from rbe_edge.autodiff.rules import (
    activation,
    cast,
    conv,
    elementwise,
    exponential,
    linear,
    normalization,
    pool,
    reduce,
    selection,
    shape,
    softmax,
    stop,
)

RBE_EDGE_DOMAIN = "rbe_edge"

RULES: Dict[Tuple[str, str], Rule] = {
    ("", "MatMul"): Rule(linear.matmul),
    ("", "Gemm"): Rule(linear.gemm),
    ("", "Add"): Rule(elementwise.add),
    ("", "Sub"): Rule(elementwise.sub),
    ("", "Mul"): Rule(elementwise.mul),
    ("", "Div"): Rule(elementwise.div),
    ("", "Neg"): Rule(elementwise.neg),
    ("", "Pow"): Rule(exponential.pow_),
    ("", "Sqrt"): Rule(exponential.sqrt),
    ("", "Reciprocal"): Rule(exponential.reciprocal),
    ("", "Exp"): Rule(exponential.exp),
    ("", "Log"): Rule(exponential.log),
    ("", "Max"): Rule(selection.max_min),
    ("", "Min"): Rule(selection.max_min),
    ("", "Where"): Rule(selection.where, (1, 2)),
    ("", "Relu"): Rule(activation.relu),
    ("", "LeakyRelu"): Rule(activation.leaky_relu),
    ("", "Sigmoid"): Rule(activation.sigmoid),
    ("", "Tanh"): Rule(activation.tanh),
    ("", "Erf"): Rule(activation.erf),
    ("", "Gelu"): Rule(activation.gelu),
    ("", "Abs"): Rule(activation.abs_),
    ("", "Clip"): Rule(activation.clip),
    ("", "Softmax"): Rule(softmax.softmax),
    ("", "LogSoftmax"): Rule(softmax.log_softmax),
    ("", "LayerNormalization"): Rule(normalization.layer_normalization, (0, 1, 2)),
    ("", "BatchNormalization"): Rule(normalization.batch_normalization, (0, 1, 2)),
    ("", "Cast"): Rule(cast.cast),
    ("", "CastLike"): Rule(cast.cast, (0,)),
    ("", "Identity"): Rule(shape.identity),
    ("", "Dropout"): Rule(shape.dropout, (0,)),
    ("", "Reshape"): Rule(shape.reshape_like_input, (0,)),
    ("", "Flatten"): Rule(shape.reshape_like_input, (0,)),
    ("", "Squeeze"): Rule(shape.reshape_like_input, (0,)),
    ("", "Unsqueeze"): Rule(shape.reshape_like_input, (0,)),
    ("", "Transpose"): Rule(shape.transpose),
    ("", "Concat"): Rule(shape.concat),
    ("", "Slice"): Rule(shape.slice_, (0,)),
    ("", "Gather"): Rule(shape.gather, (0,)),
    ("", "ReduceSum"): Rule(reduce.reduce_sum, (0,)),
    ("", "ReduceMean"): Rule(reduce.reduce_mean, (0,)),
    ("", "ReduceL2"): Rule(reduce.reduce_l2, (0,)),
    ("", "GlobalAveragePool"): Rule(pool.global_average_pool),
    ("", "AveragePool"): Rule(pool.average_pool),
    ("", "MaxPool"): Rule(pool.max_pool),
    ("", "Conv"): Rule(conv.conv),
    (RBE_EDGE_DOMAIN, "BitplaneDecode"): Rule(stop.stop_gradient, ()),
}


def find_rule(domain: str, op_type: str) -> Optional[Rule]:
    """Return the rule of an op, or None; "ai.onnx" and "" are the same domain."""
    if domain == "ai.onnx":
        domain = ""
    return RULES.get((domain, op_type))
