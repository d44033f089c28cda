"""The model explorer: loading, validation errors, and the summary, on the real sample models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import workbench
from workbench.errors import ModelLoadError
from workbench.model import load_model
from workbench.samples import sample_names, sample_path


@pytest.fixture(scope="module")
def cnn():
    return load_model(sample_path("digits_cnn"))


@pytest.fixture(scope="module")
def transformer():
    return load_model(sample_path("digits_transformer"))


def test_samples_are_listed():
    assert {"digits_cnn", "digits_transformer"} <= set(sample_names())


def test_cnn_summary_matches_the_graph(cnn):
    s = cnn.summary
    graph = onnx.load(str(sample_path("digits_cnn"))).graph
    assert s.node_count == len(graph.node)
    assert sum(s.op_histogram.values()) == len(graph.node)
    assert s.op_histogram["Conv"] == sum(n.op_type == "Conv" for n in graph.node)
    assert s.inputs == [{"name": "input", "dtype": "float32", "shape": ["batch", 1, 8, 8]}]
    assert s.outputs == [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}]
    expected_params = sum(int(np.prod(i.dims)) for i in graph.initializer)
    assert s.parameters == expected_params
    assert s.parameter_bytes == 4 * expected_params  # all FP32
    assert s.opset == 17
    assert s.subgraphs == {"If": 0, "Loop": 0, "Scan": 0}


def _conv_macs_by_hand(model):
    """MACs of every Conv/Gemm, computed independently by running the model's layers' shapes
    through ONNX Runtime with every intermediate tensor exposed."""
    import onnxruntime as ort

    m = onnx.load(str(model.path))
    wanted = [o for n in m.graph.node if n.op_type in ("Conv", "Gemm") for o in n.output]
    for name in wanted:
        m.graph.output.append(helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 1, 8, 8), np.float32)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    total = 0
    for node in m.graph.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]
            total += outs[node.output[0]].size * w[0].size
        elif node.op_type == "Gemm":
            w = inits[node.input[1]]
            total += w.size  # one sample: M=1
    return total


def test_cnn_flops_match_an_independent_count(cnn):
    macs = _conv_macs_by_hand(cnn)
    assert cnn.summary.macs == macs
    assert cnn.summary.flops == 2 * macs
    assert set(cnn.summary.flops_by_op) == {"Conv", "Gemm"}
    assert cnn.summary.flops_unknown_nodes == []


def _matmul_macs_at_runtime(path) -> int:
    """MACs of every MatMul of a model, from the shapes ONNX Runtime actually produces for one
    sample: each output element of ``a @ b`` takes ``a.shape[-1]`` multiply-adds."""
    import onnxruntime as ort

    m = onnx.load(str(path))
    matmuls = [n for n in m.graph.node if n.op_type == "MatMul"]
    exposed = sorted({name for n in matmuls for name in (n.input[0], n.output[0])})
    known = {o.name for o in m.graph.output}
    for name in exposed:
        if name not in known:
            m.graph.output.append(helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros([1 if not isinstance(d, int) else d for d in i.shape], np.float32)
            for i in session.get_inputs()}
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    return sum(values[n.output[0]].size * values[n.input[0]].shape[-1] for n in matmuls)


def test_transformer_summary(transformer):
    s = transformer.summary
    for op in ("MatMul", "Softmax", "LayerNormalization"):
        assert s.op_histogram.get(op, 0) > 0
    macs = _matmul_macs_at_runtime(sample_path("digits_transformer"))
    assert macs > 0 and s.flops_by_op["MatMul"] == 2 * macs
    assert s.flops_unknown_nodes == []


def test_matmul_and_gemm_flops_by_hand(tmp_path):
    """Every MatMul broadcasting rule and Gemm's transposes, against MACs counted by hand."""
    rng = np.random.default_rng(0)
    cases = [  # (a shape, b shape, output shape, MACs by hand)
        ([2, 3, 4], [4, 5], [2, 3, 5], 2 * 3 * 4 * 5),  # batched a, 2-D b: 120
        ([3, 4], [2, 4, 5], [2, 3, 5], 2 * 3 * 4 * 5),  # 2-D a broadcast over b's batch: 120
        ([4], [4, 5], [5], 4 * 5),  # 1-D a is a row: 20
        ([3, 4], [4], [3], 3 * 4),  # 1-D b is a column: 12
        ([2, 1, 3, 4], [5, 4, 6], [2, 5, 3, 6], 2 * 5 * 3 * 4 * 6),  # batch dims 1 and 5 broadcast: 720
    ]
    inputs, inits, nodes, outputs = [], [], [], []
    for k, (a, b, y, _) in enumerate(cases):
        inputs.append(helper.make_tensor_value_info(f"a{k}", TensorProto.FLOAT, a))
        inits.append(numpy_helper.from_array(rng.standard_normal(b).astype(np.float32), f"b{k}"))
        nodes.append(helper.make_node("MatMul", [f"a{k}", f"b{k}"], [f"y{k}"], name=f"matmul{k}"))
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, y))
    # Gemm: A [4, 3] with transA is M=3, K=4; B [5, 4] with transB is N=5: 3 * 4 * 5 = 60
    inputs.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, [4, 3]))
    inits.append(numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "gb"))
    nodes.append(helper.make_node("Gemm", ["g", "gb"], ["gy"], name="gemm", transA=1, transB=1))
    outputs.append(helper.make_tensor_value_info("gy", TensorProto.FLOAT, [3, 5]))
    model = helper.make_model(helper.make_graph(nodes, "matmuls", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "matmuls.onnx"))
    s = load_model(tmp_path / "matmuls.onnx").summary
    assert s.flops_unknown_nodes == []
    assert s.flops_by_op == {"MatMul": 2 * (120 + 120 + 20 + 12 + 720), "Gemm": 2 * 60}
    assert s.macs == 120 + 120 + 20 + 12 + 720 + 60 and s.flops == 2 * s.macs
    assert _matmul_macs_at_runtime(tmp_path / "matmuls.onnx") == 120 + 120 + 20 + 12 + 720


def test_public_api_is_lazy_and_complete():
    assert workbench.load_model is load_model
    code = "import sys, workbench; workbench.load_model; print('tensorrt' in sys.modules, 'plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- bad input ----------------------------------------------------------------------------


def _small_model(*, domain_op=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")]
    opsets = [helper.make_opsetid("", 17)]
    if domain_op:
        nodes = [helper.make_node(domain_op, ["x"], ["y"], name="custom", domain="acme.ops")]
        opsets.append(helper.make_opsetid("acme.ops", 1))
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    return helper.make_model(graph, opset_imports=opsets)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file") as info:
        load_model(tmp_path / "absent.onnx")
    assert "absent.onnx" in str(info.value)


def test_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n" * 20)
    with pytest.raises(ModelLoadError, match="not a readable ONNX model"):
        load_model(path)


def test_truncated(tmp_path):
    data = sample_path("digits_cnn").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_missing_external_data(tmp_path):
    model = _small_model()
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.weights", size_threshold=0)
    assert load_model(path).summary.uses_external_data  # loads while the data file is there
    (tmp_path / "ext.weights").unlink()
    with pytest.raises(ModelLoadError, match="ext.weights.*missing"):
        load_model(path)


def test_unknown_domain(tmp_path):
    path = tmp_path / "custom.onnx"
    onnx.save(_small_model(domain_op="Frobnicate"), str(path))
    with pytest.raises(ModelLoadError, match="Frobnicate.*acme.ops"):
        load_model(path)
    loaded = load_model(path, allow_unknown_domains=True)
    assert any("plugin" in w for w in loaded.summary.warnings)


def test_checker_failure_names_the_file(tmp_path):
    model = _small_model()
    model.graph.node[0].input[1] = "not_defined_anywhere"
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="ONNX checker") as info:
        load_model(path)
    assert "broken.onnx" in str(info.value)


def test_subgraphs_are_counted(tmp_path):
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    branch = lambda v, name: helper.make_graph(  # noqa: E731
        [helper.make_node("Constant", [], ["out_" + name], value=numpy_helper.from_array(np.array([v], np.float32)))],
        name, [], [helper.make_tensor_value_info("out_" + name, TensorProto.FLOAT, [1])],
    )
    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch(1.0, "a"), else_branch=branch(0.0, "b"))
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(helper.make_graph([node], "g", [cond], [y]), opset_imports=[helper.make_opsetid("", 17)]), str(path))
    s = load_model(path).summary
    assert s.subgraphs["If"] == 1
    assert s.node_count == 1 and s.subgraph_node_count == 2


# --- the command line contract --------------------------------------------------------------


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_inspect_json_contract():
    result = _cli("inspect", str(sample_path("digits_cnn")), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("inputs", "outputs", "opset", "node_count", "op_histogram", "parameters", "flops"):
        assert key in data
    assert data["inputs"][0] == {"name": "input", "dtype": "float32", "shape": ["batch", 1, 8, 8]}
    assert data["node_count"] == load_model(sample_path("digits_cnn")).summary.node_count


def test_inspect_bad_input_exits_non_zero(tmp_path):
    result = _cli("inspect", str(tmp_path / "nope.onnx"), "--json")
    assert result.returncode == 2
    assert "nope.onnx" in result.stderr and "no such file" in result.stderr
    assert "no such file" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize("sub", ["inspect", "lab"])
def test_every_subcommand_has_help(sub):
    result = _cli(sub, "--help")
    assert result.returncode == 0
    assert "--json" in result.stdout


def test_lab_binds_loopback_with_a_token():
    data = json.loads(_cli("lab", "--json").stdout)
    argv = data["command"]
    assert "--ServerApp.ip=127.0.0.1" in argv
    token = [a for a in argv if a.startswith("--IdentityProvider.token=")]
    assert token and len(token[0].split("=", 1)[1]) >= 20
    assert any(a.endswith("00_tour.ipynb") for a in argv)
    # the printed URL carries the same token and port (JupyterLab's log would hide the token)
    port = [a for a in argv if a.startswith("--ServerApp.port=")][0].split("=", 1)[1]
    assert data["url"] == f"http://127.0.0.1:{port}/lab/tree/00_tour.ipynb?token={token[0].split('=', 1)[1]}"


def test_lab_skips_a_taken_port():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = json.loads(_cli("lab", "--json", "--port", str(port)).stdout)
    chosen = int([a for a in data["command"] if a.startswith("--ServerApp.port=")][0].split("=", 1)[1])
    assert chosen > port and f":{chosen}/" in data["url"]
