"""The README's "traits handled" table and what it stands on (issue 11).

``bench/bench_traits.py`` runs every command on one small model per trait (the suite's own
builders) and writes ``bench/results/traits.json``; ``bench/readme_tables.py`` makes the README
block from it (``tests/test_readme_figures.py`` checks the README shows it). Here: the committed
file covers every trait the issue names with no failure, its outcomes agree with what the suite's
trait tests assert, and the FP16 case the bench found (a converted node reading a graph output,
as a recurrent state does) gives a valid variant that computes what FP32 does.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest
from test_model_traits import stateful

from workbench.backends.onnxruntime.session import ort_session
from workbench.datasets import save_npz
from workbench.precision import Recipe, make_variant
from workbench.samples import REPO_ROOT

TRAITS_JSON = REPO_ROOT / "bench" / "results" / "traits.json"


def _bench_traits():
    spec = importlib.util.spec_from_file_location("bench_traits_module", REPO_ROOT / "bench" / "bench_traits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def traits() -> dict:
    return {r["trait"]: r for r in json.loads(TRAITS_JSON.read_text())["traits"]}


def test_every_trait_of_the_issue_is_in_the_table_without_a_failure(traits):
    data = json.loads(TRAITS_JSON.read_text())
    bench = _bench_traits()
    assert set(traits) == set(bench.TRAITS) and data["failures"] == []
    for record in traits.values():
        assert set(record["commands"]) == set(bench.COMMANDS)
        for command, result in record["commands"].items():
            assert result["outcome"] in ("ok", "valid variant", "refused", "no INT8 variant"), (record["trait"], command)
            if command.startswith("quantize") and result["outcome"] == "valid variant":
                assert result["variant"]["checker"] == "ok" and result["variant"]["ort_load"] == "ok"


def test_the_table_agrees_with_the_trait_tests(traits):
    """The outcomes tests/test_precision_traits.py and tests/test_model_traits.py assert."""
    cell = lambda trait, command: traits[trait]["commands"][command]["outcome"]  # noqa: E731
    for trait in ("opset10_initializer_inputs", "constant_weights", "int32_onehot", "unnamed_nodes", "dynamic_width"):
        assert cell(trait, "quantize_fp16") == cell(trait, "quantize_int8") == "valid variant", trait
        assert cell(trait, "doctor") == "ok", trait
    assert cell("if_weights", "quantize_fp16") == "valid variant"
    assert "inside an If/Loop/Scan subgraph" in traits["if_weights"]["commands"]["quantize_int8"]["error"]
    for command in ("quantize_fp16", "quantize_int8", "doctor"):
        assert "already dynamically quantized" in traits["dynamically_quantized"]["commands"][command]["error"]
    for trait, words in (("scalar_and_state", "input 'state' has dynamic dim 1"), ("dynamic_width", "--shapes x:")):
        assert cell(trait, "profile_nodata") == "refused" and cell(trait, "profile") == "ok"
        assert words in traits[trait]["commands"]["profile_nodata"]["error"]
    assert cell("scalar_and_state", "doctor") == "ok"


@pytest.mark.parametrize("rate", [2, 16000])
def test_fp16_of_a_model_that_reads_its_own_output(tmp_path, rate):
    """A state made from a graph output (Unsqueeze of ``out``): converted, the Unsqueeze read the float32
    output; with a sample rate of 16000 the output's producer overflows FP16 and stays FP32, and the
    converter declared the output float16. Both were refused by onnx.checker; now valid, FP32 outputs."""
    path = stateful(tmp_path / "vad.onnx")
    rng = np.random.default_rng(0)
    data = {"audio": rng.standard_normal((16, 16)).astype(np.float32), "sr": np.array(rate, np.int64),
            "state": rng.standard_normal((2, 16, 8)).astype(np.float32)}
    calib = save_npz(tmp_path / "vad.npz", data, sample_axes={"state": 1, "sr": None})
    variant = make_variant(path, Recipe("fp16"), calib, workspace=tmp_path / "ws", progress=False)
    onnx.checker.check_model(str(variant.path), full_check=True)
    outputs = onnx.load(str(variant.path)).graph.output
    assert [o.type.tensor_type.elem_type for o in outputs] == [onnx.TensorProto.FLOAT] * 2
    if rate == 16000:
        assert {"scale", "mix"} <= set(variant.record["kept_fp32"])
    feed = {"audio": data["audio"][:4], "sr": data["sr"], "state": data["state"][:, :4]}
    got = ort_session(variant.path).run(None, feed)
    want = ort_session(path).run(None, feed)
    # ``out`` comes from the kept Add (exact); at 16000 ``new_state`` passes FP16 between the two kept nodes
    # that make it (the converter's float16 hand-over) and exceeds its range: compared at rate 2 only.
    for g, w in zip(got if rate == 2 else got[:1], want):
        np.testing.assert_allclose(g, w, rtol=2e-2, atol=2e-2 * max(1.0, float(np.abs(w).max())))
