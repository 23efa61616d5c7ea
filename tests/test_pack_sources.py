"""Weights wherever exporters put them: dtypes, sharing, graph inputs, Constant
nodes, If/Loop/Scan subgraphs and external data."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import bundle_models
from rbe_edge.model_io import make_samples, make_session, relative_error, run_outputs
from rbe_edge.pack import pack_model
from rbe_edge.weights import PackError, iterate_graphs

DIM = 64


def weight(name, seed, dtype=np.float32, shape=(DIM, DIM)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(dtype)


def make(nodes, initializers, inputs=None, outputs=None, graph_inputs_extra=()):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, DIM])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, DIM])]
    graph = helper.make_graph(nodes, "g", list(inputs) + list(graph_inputs_extra), outputs,
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def pack_and_compare(model, tmp_path, expected_tensors, tolerance=0.01, **options):
    path = bundle_models.save(model, tmp_path)
    bundle = pack_model(path, tmp_path / "bundle", **options)
    assert sorted(bundle.tensor_names) == sorted(expected_tensors)

    infer = onnx.load(str(bundle.path / "infer.onnx"))
    onnx.checker.check_model(infer, full_check=True)
    decodes = [node for graph, _ in iterate_graphs(infer.graph) for node in graph.node
               if node.op_type == "BitplaneDecode"]
    assert len(decodes) == len(expected_tensors)

    feeds = make_samples(model, 2, seed=9)
    reference = run_outputs(make_session(model, "float"), feeds, "float")
    for planes in (None, 1, 4):
        got = run_outputs(bundle.session(planes), feeds, "bundle")
        if planes is None:
            error = relative_error(got, reference)
            assert error < tolerance, f"output error {error:.4f}"
    return bundle


def test_float16_weights(tmp_path):
    model = bundle_models.mlp(dtype=np.float16)
    bundle = pack_and_compare(model, tmp_path, ["w1", "w2", "w3"], tolerance=0.02)
    assert {t["dtype"] for t in bundle.manifest["tensors"]} == {"float16"}


def test_bfloat16_weight_behind_cast(tmp_path):
    values = weight("w", 1)
    tensor = helper.make_tensor("w", TensorProto.BFLOAT16, [DIM, DIM], values.ravel().tolist())
    nodes = [helper.make_node("Cast", ["w"], ["w32"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["x", "w32"], ["y"])]
    bundle = pack_and_compare(make(nodes, [tensor]), tmp_path, ["w"])
    assert bundle.manifest["tensors"][0]["dtype"] == "bfloat16"


def test_shared_initializer_packed_once(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("MatMul", ["t", "w"], ["y"])]
    pack_and_compare(make(nodes, [numpy_helper.from_array(weight("w", 2), "w")]), tmp_path, ["w"])


def test_initializer_that_is_graph_input(tmp_path):
    init = numpy_helper.from_array(weight("w", 3), "w")
    extra = [helper.make_tensor_value_info("w", TensorProto.FLOAT, [DIM, DIM])]
    model = make([helper.make_node("MatMul", ["x", "w"], ["y"])], [init], graph_inputs_extra=extra)
    bundle = pack_and_compare(model, tmp_path, ["w"])
    infer = onnx.load(str(bundle.path / "infer.onnx"))
    assert [value.name for value in infer.graph.input] == ["x"]


def test_constant_node_weight(tmp_path):
    constant = helper.make_node("Constant", [], ["w"],
                                value=numpy_helper.from_array(weight("w", 4), "w"))
    model = make([constant, helper.make_node("MatMul", ["x", "w"], ["y"])], [])
    pack_and_compare(model, tmp_path, ["w"])


def test_if_branches(tmp_path):
    inner = numpy_helper.from_array(weight("w_then", 5), "w_then")
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w_then"], ["y_then"])], "then", [],
        [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1, DIM])],
        initializer=[inner])
    # The else branch reads a weight of the enclosing graph.
    else_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w_outer"], ["y_else"])], "else", [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [1, DIM])])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then_graph,
                              else_branch=else_graph)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, DIM]),
              helper.make_tensor_value_info("cond", TensorProto.BOOL, [])]
    model = make(nodes, [numpy_helper.from_array(weight("w_outer", 6), "w_outer")], inputs)
    bundle = pack_and_compare(model, tmp_path, ["w_then", "w_outer"])

    feed = {"x": make_samples(model, 1)[0]["x"], "cond": np.array(True)}
    reference = make_session(model, "float").run(None, feed)
    got = bundle.session().run(None, feed)
    assert relative_error([got], [reference]) < 0.01


def test_loop_body_constant(tmp_path):
    constant = helper.make_node("Constant", [], ["w_loop"],
                                value=numpy_helper.from_array(weight("w_loop", 7), "w_loop"))
    body = helper.make_graph(
        [constant,
         helper.make_node("MatMul", ["state", "w_loop"], ["product"]),
         helper.make_node("Tanh", ["product"], ["state_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, DIM])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, DIM])])
    trips = numpy_helper.from_array(np.array(3, np.int64), "trips")
    keep_going = numpy_helper.from_array(np.array(True), "keep_going")
    nodes = [helper.make_node("Loop", ["trips", "keep_going", "x"], ["y"], body=body)]
    pack_and_compare(make(nodes, [trips, keep_going]), tmp_path, ["w_loop"])


def test_scan_body_initializer(tmp_path):
    inner = numpy_helper.from_array(weight("w_scan", 8), "w_scan")
    body = helper.make_graph(
        [helper.make_node("MatMul", ["row", "w_scan"], ["out_row"]),
         helper.make_node("Identity", ["acc"], ["acc_out"])],
        "scan_body",
        [helper.make_tensor_value_info("acc", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("row", TensorProto.FLOAT, [1, DIM])],
        [helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("out_row", TensorProto.FLOAT, [1, DIM])],
        initializer=[inner])
    acc = numpy_helper.from_array(np.zeros(1, np.float32), "acc0")
    nodes = [helper.make_node("Scan", ["acc0", "x3"], ["acc_final", "y"], body=body,
                              num_scan_inputs=1)]
    inputs = [helper.make_tensor_value_info("x3", TensorProto.FLOAT, [4, 1, DIM])]
    outputs = [helper.make_tensor_value_info("acc_final", TensorProto.FLOAT, [1]),
               helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1, DIM])]
    pack_and_compare(make(nodes, [acc], inputs, outputs), tmp_path, ["w_scan"])


def test_external_data(tmp_path):
    model = bundle_models.transformer_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    bundle = pack_model(path, tmp_path / "bundle")
    assert len(bundle.tensor_names) == 6
    model = bundle_models.transformer_block()     # onnx.save moved the weights out of `model`
    feeds = make_samples(model, 2, seed=3)
    reference = run_outputs(make_session(model, "float"), feeds, "float")
    assert relative_error(run_outputs(bundle.session(), feeds, "b"), reference) < 0.01


def test_external_data_missing(tmp_path):
    model = bundle_models.transformer_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(PackError, match="weights.bin.*missing"):
        pack_model(path, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_external_data_truncated(tmp_path):
    model = bundle_models.transformer_block()
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    data = tmp_path / "weights.bin"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(PackError, match="truncated"):
        pack_model(path, tmp_path / "bundle")


def test_unsupported_dtype_names_tensor(tmp_path):
    tensor = helper.make_tensor("w8", TensorProto.FLOAT8E4M3FN, [DIM, DIM],
                                np.zeros(DIM * DIM, np.float32).tolist())
    nodes = [helper.make_node("MatMul", ["x", "w8"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT8E4M3FN, [1, DIM])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, [1, DIM])],
        initializer=[tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    path = bundle_models.save(model, tmp_path)
    with pytest.raises(PackError, match="'w8'.*float8e4m3fn.*MatMul"):
        pack_model(path, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
