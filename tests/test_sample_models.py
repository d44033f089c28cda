"""Checks for the committed sample models in sample_models/ (built by
sample_models/build.py).  Needs onnx, onnxruntime and numpy; not torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

SAMPLE_DIR = Path(__file__).parent.parent / "sample_models"

MODELS = {
    "digits_cnn": 0.98,
    "digits_transformer": 0.95,
}

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def _load_model(name: str) -> onnx.ModelProto:
    path = SAMPLE_DIR / f"{name}.onnx"
    assert path.is_file(), f"missing {path}; run `python sample_models/build.py`"
    return onnx.load(str(path))


def _load_npz(name: str, split: str) -> dict[str, np.ndarray]:
    path = SAMPLE_DIR / f"{name}.{split}.npz"
    assert path.is_file(), f"missing {path}"
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return [
        d.dim_param if d.HasField("dim_param") else d.dim_value
        for d in value_info.type.tensor_type.shape.dim
    ]


@pytest.fixture(scope="module", params=sorted(MODELS))
def name(request) -> str:
    return request.param


def test_model_loads_and_checks(name):
    path = SAMPLE_DIR / f"{name}.onnx"
    model = _load_model(name)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert path.stat().st_size < 1_000_000
    # self-contained: no external data
    for init in model.graph.initializer:
        assert init.data_location != onnx.TensorProto.EXTERNAL, init.name
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert opsets["ai.onnx"] in (17, 18)


def test_io_names_and_dynamic_batch(name):
    model = _load_model(name)
    init_names = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    assert [i.name for i in inputs] == [INPUT_NAME]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    inp, out = inputs[0], model.graph.output[0]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(inp) == ["batch", 1, 8, 8]
    assert _dims(out) == ["batch", 10]


def test_node_names_unique_and_nonempty(name):
    model = _load_model(name)
    names = [n.name for n in model.graph.node]
    assert all(names), "every node needs a name"
    assert len(names) == len(set(names)), "node names must be unique"


def test_npz_files(name):
    splits = {s: _load_npz(name, s) for s in ("calib", "eval")}
    for split, data in splits.items():
        assert sorted(data) == [INPUT_NAME, "labels"], split
        x, y = data[INPUT_NAME], data["labels"]
        assert x.dtype == np.float32 and y.dtype == np.int64, split
        assert x.ndim == 4 and x.shape[1:] == (1, 8, 8), split
        assert y.shape == (x.shape[0],), split
        assert x.shape[0] > 0
        assert not np.isnan(x).any(), split
        assert np.isfinite(x).all(), split
        assert x.min() >= 0.0 and x.max() <= 1.0, split  # pixels / 16
        assert set(np.unique(y)) <= set(range(10)), split
    # calib and eval must not share any sample
    calib_rows = {r.tobytes() for r in splits["calib"][INPUT_NAME].reshape(len(splits["calib"][INPUT_NAME]), -1)}
    eval_rows = {r.tobytes() for r in splits["eval"][INPUT_NAME].reshape(len(splits["eval"][INPUT_NAME]), -1)}
    assert calib_rows.isdisjoint(eval_rows)


def test_onnxruntime_eval_accuracy(name):
    import onnxruntime as ort

    data = _load_npz(name, "eval")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(
        str(SAMPLE_DIR / f"{name}.onnx"), so, providers=["CPUExecutionProvider"]
    )
    logits = sess.run([OUTPUT_NAME], {INPUT_NAME: data[INPUT_NAME]})[0]
    assert logits.shape == (len(data["labels"]), 10)
    acc = float(np.mean(logits.argmax(axis=1) == data["labels"]))
    assert acc >= MODELS[name], f"{name}: eval top-1 {acc:.4f} < {MODELS[name]}"
    # dynamic batch: a single sample gives the same answer
    one = sess.run([OUTPUT_NAME], {INPUT_NAME: data[INPUT_NAME][:1]})[0]
    np.testing.assert_allclose(one, logits[:1], rtol=1e-4, atol=1e-4)


def test_cnn_graph_ops():
    model = _load_model("digits_cnn")
    ops = _op_types(model)
    assert "BatchNormalization" in ops
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert any(_attr(n, "group", 1) > 1 for n in convs), "no depthwise/grouped Conv"
    init_shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    assert any(
        _attr(n, "kernel_shape") == [1, 1] or init_shapes.get(n.input[1], [])[2:] == [1, 1]
        for n in convs
    ), "no 1x1 Conv"
    assert ops & {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
    assert ops & {"Gemm", "MatMul"}
    assert [n.name for n in convs] == [
        "/features/conv1/Conv",
        "/features/dwconv2/Conv",
        "/features/pwconv2/Conv",
        "/features/dwconv3/Conv",
        "/features/pwconv3/Conv",
    ]


def test_transformer_graph_ops():
    ops = _op_types(_load_model("digits_transformer"))
    assert {"MatMul", "Softmax", "LayerNormalization"} <= ops
    assert ops & {"Gelu", "Erf"}


def test_cards_exist():
    assert (SAMPLE_DIR / "README.md").is_file()
    for name in MODELS:
        card = SAMPLE_DIR / f"{name}.md"
        assert card.is_file()
        assert "License" in card.read_text() or "license" in card.read_text()
