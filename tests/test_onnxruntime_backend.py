"""ONNX Runtime backend on real models: small models built here with onnx.helper (seeded random
weights) and the committed sample model sample_models/digits_cnn.onnx with its eval data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.backends.base import BackendUnavailable
from workbench.backends.onnxruntime.engine import (
    LEVELS,
    OnnxRuntimeBackend,
    OnnxRuntimeEngine,
    join_profile,
)

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_models"
DIGITS_CNN = SAMPLE_DIR / "digits_cnn.onnx"
DIGITS_EVAL = SAMPLE_DIR / "digits_cnn.eval.npz"
ALL_LEVELS = sorted(LEVELS)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _finish(nodes, inputs, outputs, inits, name) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def make_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv->BN->Relu->MaxPool->Conv(1x1)->Relu->GlobalAveragePool->Flatten->Gemm, seeded."""
    rng = np.random.default_rng(seed)

    def init(name, shape, low=None, high=None):
        values = rng.uniform(low, high, shape) if low is not None else rng.normal(0, 0.2, shape)
        return numpy_helper.from_array(values.astype(np.float32), name)

    inits = [
        init("conv1.w", (8, 1, 3, 3)), init("conv1.b", (8,)),
        init("bn1.scale", (8,), 0.5, 1.5), init("bn1.bias", (8,)),
        init("bn1.mean", (8,)), init("bn1.var", (8,), 0.5, 1.5),
        init("conv2.w", (16, 8, 1, 1)), init("conv2.b", (16,)),
        init("fc.w", (10, 16)), init("fc.b", (10,)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["conv1_out"], name="conv1",
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization",
                         ["conv1_out", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
                         ["bn1_out"], name="bn1"),
        helper.make_node("Relu", ["bn1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1_out"], ["pool1_out"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1_out", "conv2.w", "conv2.b"], ["conv2_out"], name="conv2"),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["relu2_out"], ["gap_out"], name="gap"),
        helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten"),
        helper.make_node("Gemm", ["flat_out", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    return _finish(
        nodes,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits, "cnn",
    )


def make_block(seed: int = 1, width: int = 16) -> onnx.ModelProto:
    """MatMul->Add->LayerNormalization->Softmax on [batch, width]."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (width, width)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.3, width).astype(np.float32), "b"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, width).astype(np.float32), "ln.scale"),
        numpy_helper.from_array(rng.normal(0, 0.1, width).astype(np.float32), "ln.bias"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm_out"], name="matmul"),
        helper.make_node("Add", ["mm_out", "b"], ["add_out"], name="add_bias"),
        helper.make_node("LayerNormalization", ["add_out", "ln.scale", "ln.bias"], ["ln_out"],
                         name="layernorm", axis=-1, epsilon=1e-5),
        helper.make_node("Softmax", ["ln_out"], ["probs"], name="softmax", axis=-1),
    ]
    return _finish(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", width])],
        inits, "block",
    )


LN_NODES = ["ln_mean", "ln_sub", "ln_pow", "ln_var", "ln_add_eps", "ln_sqrt", "ln_div",
            "ln_mul", "ln_add"]
GELU_NODES = ["gelu_div", "gelu_erf", "gelu_add", "gelu_mul", "gelu_half"]


def make_decomposed_block(seed: int = 2, width: int = 16) -> onnx.ModelProto:
    """MatMul->Add, LayerNorm written op by op, GELU written with Erf, then Softmax: what
    exporters emit and ORT fuses back (MatMulAddFusion, LayerNormFusion, GeluFusion)."""
    rng = np.random.default_rng(seed)

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    inits = [
        const("w", rng.normal(0, 0.3, (width, width))), const("b", rng.normal(0, 0.3, width)),
        const("two", 2.0), const("eps", 1e-5), const("gamma", rng.uniform(0.5, 1.5, width)),
        const("beta", rng.normal(0, 0.1, width)), const("sqrt2", np.sqrt(2.0)),
        const("one", 1.0), const("half", 0.5),
    ]
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "w"], ["mm"], name="matmul"),
        n("Add", ["mm", "b"], ["h"], name="add_bias"),
        n("ReduceMean", ["h"], ["mu"], name="ln_mean", axes=[-1]),
        n("Sub", ["h", "mu"], ["dev"], name="ln_sub"),
        n("Pow", ["dev", "two"], ["sq"], name="ln_pow"),
        n("ReduceMean", ["sq"], ["var"], name="ln_var", axes=[-1]),
        n("Add", ["var", "eps"], ["var_eps"], name="ln_add_eps"),
        n("Sqrt", ["var_eps"], ["std"], name="ln_sqrt"),
        n("Div", ["dev", "std"], ["norm"], name="ln_div"),
        n("Mul", ["norm", "gamma"], ["scaled"], name="ln_mul"),
        n("Add", ["scaled", "beta"], ["ln"], name="ln_add"),
        n("Div", ["ln", "sqrt2"], ["g1"], name="gelu_div"),
        n("Erf", ["g1"], ["g2"], name="gelu_erf"),
        n("Add", ["g2", "one"], ["g3"], name="gelu_add"),
        n("Mul", ["ln", "g3"], ["g4"], name="gelu_mul"),
        n("Mul", ["g4", "half"], ["y"], name="gelu_half"),
        n("Softmax", ["y"], ["probs"], name="softmax", axis=-1),
    ]
    return _finish(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", width])],
        inits, "decomposed_block",
    )


def _cnn_inputs(batch: int = 4, seed: int = 3) -> dict:
    return {"input": np.random.default_rng(seed).random((batch, 1, 8, 8), dtype=np.float32)}


def _block_inputs(batch: int = 5, seed: int = 4, width: int = 16) -> dict:
    return {"x": np.random.default_rng(seed).normal(size=(batch, width)).astype(np.float32)}


@pytest.fixture(scope="module")
def digits():
    """The committed sample CNN and 64 of its eval samples; fails (not skips) if missing."""
    missing = [str(p) for p in (DIGITS_CNN, DIGITS_EVAL) if not p.is_file()]
    if missing:
        pytest.fail(f"sample model files missing: {missing}; run `python sample_models/build.py`")
    with np.load(DIGITS_EVAL, allow_pickle=False) as data:
        return {"input": data["input"][:64], "labels": data["labels"][:64]}


MODELS = {
    "cnn": (make_cnn, _cnn_inputs),
    "block": (make_block, _block_inputs),
    "decomposed": (make_decomposed_block, _block_inputs),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_case(request):
    make, inputs = MODELS[request.param]
    return request.param, make(), inputs()


def _build(model, level="all", **options) -> OnnxRuntimeEngine:
    return OnnxRuntimeBackend().build(model, {"graph_optimization_level": level, **options})


def _plain_run(model, inputs, level: str):
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


def _original_names(model) -> list[str]:
    proto = onnx.load(str(model)) if isinstance(model, Path) else model
    return [n.name for n in proto.graph.node]


def _row_with(table, onnx_node: str):
    rows = [r for r in table.itertuples() if onnx_node in r.onnx_nodes]
    assert len(rows) == 1, f"{onnx_node!r} is in {len(rows)} rows"
    return rows[0]


def _assert_accounting(table, original_names: list[str]) -> None:
    """Every original node is in exactly one row's onnx_nodes, or folded - never both."""
    counts = Counter(name for nodes in table["onnx_nodes"] for name in nodes)
    folded = set(table.attrs["folded_onnx_nodes"])
    assert set(counts) <= set(original_names), set(counts) - set(original_names)
    assert folded <= set(original_names)
    for name in original_names:
        if name in folded:
            assert counts[name] == 0, f"{name!r} is folded and claimed"
        else:
            assert counts[name] == 1, f"{name!r} claimed by {counts[name]} rows"


def _assert_inserted_rows_empty(table) -> None:
    for row in table.itertuples():
        assert row.inserted == (not row.onnx_nodes), row.name


# --------------------------------------------------------------------------------------------
# Helper-built models
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_run_matches_plain_session(model_case, level):
    _, model, inputs = model_case
    engine = _build(model, level)
    got = engine.run(inputs)
    same_level = _plain_run(model, inputs, level)
    unoptimized = _plain_run(model, inputs, "disable")
    assert list(got) == list(same_level)
    for name in got:
        np.testing.assert_array_equal(got[name], same_level[name])
        np.testing.assert_allclose(got[name], unoptimized[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("level", ["extended", "all"])
def test_conv_bn_relu_fused_into_one_row(level):
    table = _build(make_cnn(), level).layers()
    row = _row_with(table, "conv1")
    assert {"conv1", "bn1", "relu1"} <= set(row.onnx_nodes)
    assert row.type in ("com.microsoft.FusedConv", "com.microsoft.nchwc.Conv")
    assert not row.inserted
    conv2 = _row_with(table, "conv2")
    assert set(conv2.onnx_nodes) == {"conv2", "relu2"}
    assert table.attrs["folded_onnx_nodes"] == []


def test_basic_level_folds_bn_into_conv_only():
    table = _build(make_cnn(), "basic").layers()
    assert _row_with(table, "conv1").onnx_nodes == ["conv1", "bn1"]
    assert _row_with(table, "relu1").onnx_nodes == ["relu1"]


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_every_original_node_accounted_for(model_case, level):
    _, model, _ = model_case
    table = _build(model, level).layers()
    _assert_accounting(table, _original_names(model))
    _assert_inserted_rows_empty(table)
    assert table["name"].is_unique
    assert set(table["source"]) == {"onnxruntime"}


def test_nchwc_reorders_are_inserted():
    table = _build(make_cnn(), "all").layers()
    nchwc = table[table["type"].str.startswith("com.microsoft.nchwc.")]
    if nchwc.empty:
        pytest.skip("this CPU has no NCHWc kernels (MLAS block size 1); ORT skips the rewrite")
    reorders = nchwc[nchwc["type"].str.contains("Reorder")]
    assert len(reorders) >= 1
    assert reorders["inserted"].all()
    assert all(nodes == [] for nodes in reorders["onnx_nodes"])
    compute = nchwc[~nchwc["type"].str.contains("Reorder")]
    assert not compute["inserted"].any()
    assert all(compute["onnx_nodes"].map(len) > 0)
    # The NCHWc tensors between nodes are labelled as such.
    assert any(t["format"] == "NCHWc" for outs in compute["outputs"] for t in outs)


def test_extended_fusions_map_back_to_decomposed_nodes():
    table = _build(make_decomposed_block(), "extended").layers()
    gemm = _row_with(table, "matmul")
    assert gemm.type == "Gemm" and gemm.onnx_nodes == ["matmul", "add_bias"]
    ln = _row_with(table, "ln_mean")
    assert ln.type == "LayerNormalization" and sorted(ln.onnx_nodes) == sorted(LN_NODES)
    gelu = _row_with(table, "gelu_erf")
    assert gelu.type == "com.microsoft.Gelu" and sorted(gelu.onnx_nodes) == sorted(GELU_NODES)
    assert _row_with(table, "softmax").onnx_nodes == ["softmax"]
    assert len(table) == 4


def test_matmul_add_becomes_gemm_in_block():
    table = _build(make_block(), "all").layers()
    gemm = _row_with(table, "add_bias")
    assert gemm.type == "Gemm" and gemm.onnx_nodes == ["matmul", "add_bias"]
    assert _row_with(table, "layernorm").onnx_nodes == ["layernorm"]


@pytest.mark.parametrize("make", [make_cnn, make_block, make_decomposed_block])
def test_disable_gives_one_row_per_original_node(make):
    model = make()
    table = _build(model, "disable").layers()
    names = _original_names(model)
    assert sorted(table["name"]) == sorted(names)
    for row in table.itertuples():
        assert row.onnx_nodes == [row.name]
        assert not row.inserted
    assert table.attrs["folded_onnx_nodes"] == []


def test_layer_tensors_have_types_and_shapes():
    table = _build(make_cnn(), "extended").layers()
    conv1 = _row_with(table, "conv1")
    assert conv1.inputs[0] == {"name": "input", "dtype": "FP32", "format": None,
                               "shape": ["batch", 1, 8, 8]}
    assert conv1.outputs[0]["name"] == "relu1_out"
    assert conv1.precision == "FP32" and conv1.input_precision == "FP32"
    assert conv1.tactic == "CPUExecutionProvider"


def test_layers_returns_independent_copies():
    engine = _build(make_cnn(), "all")
    first = engine.layers()
    first.at[0, "onnx_nodes"].append("bogus")
    first.attrs["warnings"].append("bogus")
    second = engine.layers()
    assert "bogus" not in second.at[0, "onnx_nodes"]
    assert "bogus" not in second.attrs["warnings"]


@pytest.mark.parametrize("level", ["disable", "all"])
def test_profile_times_and_shares(model_case, level):
    _, model, inputs = model_case
    engine = _build(model, level)
    table = engine.profile(inputs, iterations=10)
    layers = engine.layers()
    assert list(table["name"]) == list(layers["name"])
    assert list(table["onnx_nodes"]) == list(layers["onnx_nodes"])
    assert table["share"].sum() == pytest.approx(100.0, abs=1e-6)
    compute = table[~table["inserted"]]
    assert (compute["time_ms"] > 0).all(), compute[["name", "time_ms"]]
    assert (table["median_ms"] >= 0).all()
    assert not any("no profiler event" in w or "no matching layer" in w
                   for w in table.attrs["warnings"])
    end_to_end = table.attrs["end_to_end_ms"]
    assert end_to_end > 0
    # Sequential execution: the kernels run inside model_run, one after another.
    assert table["time_ms"].sum() <= end_to_end * 1.01
    assert table.attrs["profile_iterations"] == 10
    # Runtime shapes from the profiler replace symbolic ones.
    first_input = table.iloc[0]["inputs"][0]
    assert first_input["shape"][0] == next(iter(inputs.values())).shape[0]


def test_profile_reports_unmatched_profiler_nodes():
    engine = _build(make_block(), "disable")
    layers = engine.layers()
    run = {"cat": "Session", "name": "model_run", "ts": 100, "dur": 50}
    events = [run,
              {"cat": "Node", "name": "matmul_kernel_time", "ts": 110, "dur": 10, "args": {}},
              {"cat": "Node", "name": "ghost_kernel_time", "ts": 120, "dur": 5, "args": {}},
              {"cat": "Node", "name": "add_bias_kernel_time", "ts": 10, "dur": 5, "args": {}}]
    table = join_profile(layers, events, iterations=1)
    warnings = " ".join(table.attrs["warnings"])
    assert "ghost" in warnings and "no matching layer" in warnings
    assert "no profiler event" in warnings  # add_bias's only event was before the timed run
    assert table.set_index("name").at["matmul", "time_ms"] == pytest.approx(0.010)
    assert table.attrs["end_to_end_ms"] == pytest.approx(0.050)


def _assert_benchmark_sane(result, *, batch, iterations=None, warmup=None):
    assert result.min_ms <= result.median_ms <= result.p90_ms <= result.p95_ms
    assert result.p95_ms <= result.p99_ms <= result.max_ms
    assert result.min_ms <= result.mean_ms <= result.max_ms
    assert result.min_ms > 0
    if iterations is not None:
        assert result.iterations == iterations
    if warmup is not None:
        assert result.warmup == warmup
    assert result.batch_size == batch
    assert result.throughput == pytest.approx(1000.0 * batch / result.mean_ms)
    assert result.backend == "onnxruntime"


def test_benchmark_statistics():
    inputs = _cnn_inputs(batch=6)
    engine = _build(make_cnn(), "all", intra_op_num_threads=1)
    result = engine.benchmark(inputs, iterations=50, warmup=5)
    _assert_benchmark_sane(result, batch=6, iterations=50, warmup=5)
    settings = result.settings
    assert settings["providers"] == ["CPUExecutionProvider"]
    assert settings["intra_op_num_threads"] == 1
    assert settings["graph_optimization_level"] == "all"
    assert settings["iterations"] == 50 and settings["duration_s"] is None


def test_benchmark_duration_and_iterations_are_both_minimums():
    engine = _build(make_block(), "all")
    inputs = _block_inputs(batch=3)
    long = engine.benchmark(inputs, iterations=5, warmup=1, duration_s=0.1)
    _assert_benchmark_sane(long, batch=3, warmup=1)
    assert long.iterations > 5
    assert long.mean_ms * long.iterations >= 0.9 * 100.0  # timed runs fill ~the duration
    assert long.settings["duration_s"] == 0.1
    short = engine.benchmark(inputs, iterations=40, warmup=0, duration_s=1e-6)
    _assert_benchmark_sane(short, batch=3, iterations=40, warmup=0)


def test_unnamed_nodes_get_profiler_style_names():
    model = make_cnn()
    for node in model.graph.node:
        if node.op_type in ("Relu", "Flatten"):
            node.name = ""
    engine = _build(model, "disable")
    assert [n.name for n in model.graph.node].count("") == 3  # caller's model untouched
    expected = {"Relu_2": "", "Relu_5": "", "Flatten_7": ""}
    assert engine.renamed_nodes == expected
    table = engine.profile(_cnn_inputs(), iterations=3)
    assert {"Relu_2", "Relu_5", "Flatten_7"} <= set(table["name"])
    assert table.attrs["renamed_onnx_nodes"] == expected
    assert not any("no matching layer" in w for w in table.attrs["warnings"])


def test_options_are_validated():
    backend = OnnxRuntimeBackend()
    with pytest.raises(ValueError, match="unknown onnxruntime option"):
        backend.build(make_block(), {"graph_optimisation_level": "all"})
    with pytest.raises(ValueError, match="graph_optimization_level"):
        backend.build(make_block(), {"graph_optimization_level": "max"})
    with pytest.raises(BackendUnavailable, match="NoSuchExecutionProvider"):
        backend.build(make_block(), {"providers": ["NoSuchExecutionProvider"]})
    with pytest.raises(KeyError, match="missing input"):
        _build(make_block()).run({})


def test_qdq_model_maps_quantize_nodes_into_qlinear_rows(tmp_path):
    from onnxruntime import quantization  # part of every onnxruntime wheel
    source, target = tmp_path / "cnn.onnx", tmp_path / "cnn_qdq.onnx"
    onnx.save(make_cnn(), source)
    samples = iter([_cnn_inputs(seed=s) for s in range(4)])

    class Reader(quantization.CalibrationDataReader):
        def get_next(self):
            return next(samples, None)

    quantization.quantize_static(str(source), str(target), Reader(),
                                 quant_format=quantization.QuantFormat.QDQ)
    table = _build(target, "extended").layers()
    conv = _row_with(table, "conv1")
    assert conv.type.endswith("QLinearConv")
    kinds = Counter(name.rsplit("_", 1)[-1] for name in conv.onnx_nodes)
    assert kinds["DequantizeLinear"] >= 2 and kinds["QuantizeLinear"] >= 1
    _assert_accounting(table, _original_names(target))
    _assert_inserted_rows_empty(table)


# --------------------------------------------------------------------------------------------
# The committed sample model
# --------------------------------------------------------------------------------------------

DIGITS_BLOCKS = [("conv1", "bn1", "relu1"), ("dwconv2", "bn2", "relu2"),
                 ("pwconv2", "bn3", "relu3"), ("dwconv3", "bn4", "relu4"),
                 ("pwconv3", "bn5", "relu5")]


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_digits_cnn_runs_like_plain_session(digits, level):
    engine = _build(DIGITS_CNN, level)
    inputs = {"input": digits["input"]}
    logits = engine.run(inputs)["logits"]
    np.testing.assert_array_equal(logits, _plain_run(DIGITS_CNN, inputs, level)["logits"])
    np.testing.assert_allclose(logits, _plain_run(DIGITS_CNN, inputs, "disable")["logits"],
                               rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == digits["labels"]).mean() >= 0.95


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_digits_cnn_layer_table(digits, level):
    table = _build(DIGITS_CNN, level).layers()
    names = _original_names(DIGITS_CNN)
    _assert_accounting(table, names)
    _assert_inserted_rows_empty(table)
    if level == "disable":
        assert [r.onnx_nodes for r in table.itertuples()] == [[r.name] for r in table.itertuples()]
        assert sorted(table["name"]) == sorted(names)
        return
    for conv, bn, relu in DIGITS_BLOCKS:
        conv_name, bn_name = f"/features/{conv}/Conv", f"/features/{bn}/BatchNormalization"
        row = _row_with(table, conv_name)
        assert bn_name in row.onnx_nodes  # BN folded into the conv from level basic on
        if level in ("extended", "all"):
            assert row.onnx_nodes == [conv_name, bn_name, f"/features/{relu}/Relu"]


def test_digits_cnn_profile_and_benchmark(digits):
    engine = _build(DIGITS_CNN, "all")
    inputs = {"input": digits["input"][:16]}
    table = engine.profile(inputs, iterations=10)
    assert table["share"].sum() == pytest.approx(100.0, abs=1e-6)
    assert (table.loc[~table["inserted"], "time_ms"] > 0).all()
    assert table.attrs["end_to_end_ms"] >= table["time_ms"].sum() * 0.99
    assert not any("no profiler event" in w or "no matching layer" in w
                   for w in table.attrs["warnings"])
    result = engine.benchmark(inputs, iterations=30, warmup=3)
    _assert_benchmark_sane(result, batch=16, iterations=30, warmup=3)


def test_digits_cnn_builds_from_loaded_model(digits):
    from workbench.model import load_model

    engine = OnnxRuntimeBackend().build(load_model(DIGITS_CNN))
    assert engine.input_names == ["input"] and engine.output_names == ["logits"]
    assert engine.run({"input": digits["input"][:2]})["logits"].shape == (2, 10)


DIGITS_TRANSFORMER = SAMPLE_DIR / "digits_transformer.onnx"


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_digits_transformer_every_node_accounted_for(level):
    if not DIGITS_TRANSFORMER.is_file():
        pytest.fail(f"sample model missing: {DIGITS_TRANSFORMER}; run sample_models/build.py")
    engine = _build(DIGITS_TRANSFORMER, level)
    table = engine.layers()
    names = _original_names(DIGITS_TRANSFORMER)
    counts = Counter(name for nodes in table["onnx_nodes"] for name in nodes)
    folded = set(table.attrs["folded_onnx_nodes"])
    warnings = " ".join(table.attrs["warnings"])
    for name in names:
        assert (counts[name] == 0) == (name in folded), name
        if counts[name] > 1:  # ORT split one node over several (transpose pushed through Gathers)
            assert repr(name) in warnings and "several layers" in warnings
    _assert_inserted_rows_empty(table)
    constants = {n.name for n in onnx.load(str(DIGITS_TRANSFORMER)).graph.node
                 if n.op_type == "Constant"}
    assert constants <= folded  # ORT turns Constant nodes into initializers at load
    x = np.zeros((2, 1, 8, 8), np.float32)
    np.testing.assert_allclose(engine.run({"input": x})["logits"],
                               _plain_run(DIGITS_TRANSFORMER, {"input": x}, "disable")["logits"],
                               rtol=1e-4, atol=1e-4)
