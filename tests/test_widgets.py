"""The widgets as a user drives them: picking, loading bad input, uploading, switching engines."""

from __future__ import annotations

import math
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import onnx
import pytest

from workbench.backends import get_backend
from workbench.backends.tensorrt.trt_json import import_trt
from workbench.model import load_model
from workbench.samples import REPO_ROOT, sample_data_path, sample_path
from workbench.views.engine_explorer import EngineExplorer
from workbench.views.engine_figures import NODE_MARKERS, shorten
from workbench.views.model_picker import ModelPicker


@pytest.fixture(autouse=True)
def _workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def test_picker_opens_on_a_sample_and_switches():
    picker = ModelPicker()
    assert picker.model.name == "digits_cnn"
    seen = []
    picker.on_change(lambda model: seen.append(model.name))
    picker.sample_dropdown.value = "digits_transformer"
    assert picker.model.name == "digits_transformer" and seen == ["digits_transformer"]
    assert "digits_transformer" in picker.status.value
    summary, chart = _shown(picker.summary_out)  # summary table and op-type chart, of the new model
    assert "digits_transformer" in summary and "digits_transformer" in chart["layout"]["title"]["text"]


def test_picker_bad_path_shows_the_error_and_keeps_the_model(tmp_path):
    picker = ModelPicker()
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    picker.path_box.value = str(bad)
    picker.load_button.click()
    assert "wb-error" in picker.status.value and "notes.onnx" in picker.status.value
    assert "Traceback" not in picker.status.value
    assert picker.model.name == "digits_cnn"


PLOTLY = "application/vnd.plotly.v1+json"
TRT_QAT = REPO_ROOT.parent / "shared" / "fixtures" / "trt" / "resnet18-a100-qat"


class _Tables(HTMLParser):
    """The cells of every ``<table>`` in an HTML text, row by row; ``header`` flags rows without ``<td>``."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self.header: list[bool] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
            self.header.append(True)
        elif tag in ("td", "th"):
            self._cell = []
            if tag == "td":
                self.header[-1] = False

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _shown(output) -> list:
    """What an Output area shows, in order: plotly figure dicts, HTML texts (tables, widgets' values)."""
    from ipywidgets.widgets.widget import _instances

    shown = []
    for item in output.outputs:
        data = item["data"]
        if PLOTLY in data:
            shown.append(data[PLOTLY])
        elif "application/vnd.jupyter.widget-view+json" in data:
            shown.append(_instances[data["application/vnd.jupyter.widget-view+json"]["model_id"]].value)
        else:
            shown.append(data["text/html"])
    return shown


def _column(html_text: str, header: str) -> list[str]:
    """One column of a pandas HTML table, by its header."""
    tables = _Tables(html_text)
    index = tables.rows[0].index(header)
    return [row[index] for row, is_header in zip(tables.rows, tables.header) if not is_header]


def _expected_timing(table, top=40):
    """The layers the Timing tab must draw: timed rows, slowest first, at most ``top``."""
    timed = table[table["time_ms"].notna()].sort_values("time_ms", ascending=False, kind="stable")
    return timed.head(top)


def _assert_timing_tab_draws(explorer, table):
    """The Timing tab shows ``table``: bars, treemap, precision sums and the top-10 table."""
    bars, treemap, precision, top = _shown(explorer.timing_out)
    expected = _expected_timing(table)
    drawn = {label: x for trace in bars["data"] for label, x in zip(trace["y"], trace["x"])}
    assert drawn == dict(zip(expected["name"], expected["time_ms"]))
    assert bars["layout"]["yaxis"]["categoryarray"][::-1] == expected["name"].tolist()  # slowest on top
    by_precision = {trace["name"]: set(trace["y"]) for trace in bars["data"]}
    assert by_precision == {p: set(expected.loc[expected["precision"] == p, "name"]) for p in expected["precision"].unique()}
    total = table["time_ms"].sum()
    assert f"({len(expected)} of {len(table)} layers, sum {expected['time_ms'].sum():.4f} ms)" in bars["layout"]["title"]["text"]

    (tree,) = treemap["data"]
    leaves = {i: v for i, v in zip(tree["ids"], tree["values"]) if i.startswith("layer:")}
    assert sorted(leaves.values()) == sorted(table["time_ms"]) and math.isclose(sum(tree["values"]), total)
    types = [label for label, parent in zip(tree["labels"], tree["parents"]) if parent == "all"]
    assert types == list(dict.fromkeys(table["type"]))
    assert f"({total:.4f} ms summed over {len(table)} layers)" in treemap["layout"]["title"]["text"]

    (per_precision,) = precision["data"]
    sums = table.groupby("precision")["time_ms"].sum().sort_values(ascending=False)
    assert per_precision["x"] == sums.index.tolist()  # categories, slowest first
    assert np.allclose(per_precision["y"], sums.tolist())

    slowest = expected.head(10)
    assert _column(top, "name") == [shorten(n, 48) for n in slowest["name"]]
    assert _column(top, "time_ms") == [f"{t:.4f}" for t in slowest["time_ms"]]


def _assert_fusion_tab_draws(explorer, table, model=None):
    """The Fusion tab shows ``table``'s layers (and, with a model, one marker per ONNX node)."""
    shown = _shown(explorer.fusion_out)
    summary, frame = shown[0], shown[-1]
    counts = {row[0]: row[1] for row in _Tables(summary).rows}
    assert counts["engine layers"] == str(len(table))
    assert counts["inserted layers (reformat, copy)"] == str(int(table["inserted"].sum()))
    assert _column(frame, "layer")[: len(table)] == [shorten(n, 44) for n in table["name"]]
    if model is None:
        assert len(shown) == 2  # no model: no graph
        return
    graph = shown[1]
    markers = sum(len(trace["x"]) for trace in graph["data"] if trace.get("meta") == NODE_MARKERS)
    names = [node.name for node in onnx.load(str(model)).graph.node]
    assert markers == len(names)
    assert f"{len(names)} nodes in {len(table)} layers" in graph["layout"]["title"]["text"]


def _assert_compare_tab_draws(explorer, a, b, groups=None):
    """The Compare tab shows B - A: the totals of both tables in the title, and bars that add up
    to the difference of the totals (``groups``: how many groups there are, when more than the
    40 drawn)."""
    (figure, frame) = _shown(explorer.compare_out)[-2:]
    (bars,) = figure["data"]
    total_a, total_b = explorer.tables[a]["time_ms"].sum(), explorer.tables[b]["time_ms"].sum()
    title = figure["layout"]["title"]["text"]
    assert title.startswith(f"{a} → {b}: layer time {total_a:.4f} → {total_b:.4f} ms")  # names in the numbers' order
    assert f"({b} " in title and (" faster than " in title) == (total_b < total_a)
    if groups is None:
        assert math.isclose(sum(bars["x"]), total_b - total_a, rel_tol=1e-9, abs_tol=1e-12)
    header = _Tables(frame).rows[0]
    assert f"{a} (ms)" in header and f"{b} (ms)" in header
    return bars


@pytest.fixture(scope="module")
def engine_tables():
    batch = {"input": np.load(sample_data_path("digits_cnn"))["input"][:8]}
    backend = get_backend("onnxruntime")
    fused = backend.build(sample_path("digits_cnn")).profile(batch, iterations=3)
    plain = backend.build(sample_path("digits_cnn"), {"graph_optimization_level": "disable"}).profile(batch, iterations=3)
    qat = import_trt(TRT_QAT / "engine.graph.json", TRT_QAT / "engine.profile.json")
    # the three differ in every figure: layer names and counts, types, precisions (QAT: INT8/FP16/FP32)
    assert len({len(fused), len(plain), len(qat)}) == 3
    return {"fused": fused, "plain": plain, "qat": qat,
            "layers only": fused.drop(columns=["time_ms", "median_ms", "share"])}


def test_engine_explorer_draws_the_engine_picked(engine_tables):
    explorer = EngineExplorer(engine_tables, {"fused": sample_path("digits_cnn"), "plain": sample_path("digits_cnn")})
    _assert_timing_tab_draws(explorer, engine_tables["fused"])
    _assert_fusion_tab_draws(explorer, engine_tables["fused"], sample_path("digits_cnn"))
    for label in ("qat", "plain", "fused"):
        explorer.engine_dropdown.value = label
        assert explorer.engine == label
        _assert_timing_tab_draws(explorer, engine_tables[label])
        model = sample_path("digits_cnn") if label != "qat" else None
        _assert_fusion_tab_draws(explorer, engine_tables[label], model)
    explorer.engine_dropdown.value = "layers only"
    (note,) = _shown(explorer.timing_out)
    assert "no times" in note  # a note, no figures
    _assert_fusion_tab_draws(explorer, engine_tables["layers only"])


def test_engine_explorer_compares_the_engines_picked(engine_tables):
    explorer = EngineExplorer(engine_tables)
    assert (explorer.compare_a.value, explorer.compare_b.value) == ("fused", "plain")
    _assert_compare_tab_draws(explorer, "fused", "plain")
    explorer.compare_a.value = "plain"
    (note,) = _shown(explorer.compare_out)
    assert "Pick two different engines" in note
    explorer.compare_b.value = "fused"
    _assert_compare_tab_draws(explorer, "plain", "fused")
    explorer.compare_b.value = "layers only"  # no times to compare: the error, not a figure
    (error,) = _shown(explorer.compare_out)
    assert "wb-error" in error and "time_ms" in error


def test_show_in_puts_figures_into_the_output_widget(capsys):
    """A plotly figure goes into the Output's outputs as plotly's mime bundle, not to the cell.

    IPython's formatter calls a figure's ``_ipython_display_``, which shows it in the running cell
    (outside the widget, so it cannot follow the picker) and leaves the Output area empty.
    """
    import ipywidgets as widgets
    import plotly.graph_objects as go

    from workbench.views.output import show_in

    out = widgets.Output()
    figure = go.Figure(go.Bar(x=["Conv", "Relu"], y=[3, 2]), layout_title_text="op types")
    show_in(out, widgets.HTML("<b>summary</b>"), figure)
    assert [o["output_type"] for o in out.outputs] == ["display_data", "display_data"]
    table, chart = (o["data"] for o in out.outputs)
    assert "application/vnd.jupyter.widget-view+json" in table
    assert chart["application/vnd.plotly.v1+json"]["data"][0]["type"] == "bar"
    assert chart["application/vnd.plotly.v1+json"]["layout"]["title"]["text"] == "op types"
    show_in(out, figure)  # replaces, does not append
    assert len(out.outputs) == 1
    assert capsys.readouterr().out == ""


def _op_counts(name: str) -> list[tuple[str, int]]:
    """Op types of a sample's main graph as loaded, counted here, most common first.

    Loading turns Constant nodes into initializers (``workbench.model.normalize``), so the
    chart counts the nodes of the loaded graph, not of the file.
    """
    counts = Counter(node.op_type for node in load_model(sample_path(name)).proto.graph.node)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def test_picker_chart_draws_the_op_types_of_the_model_picked():
    picker = ModelPicker()
    for name in ("digits_cnn", "digits_transformer", "digits_cnn"):
        picker.sample_dropdown.value = name
        summary, chart = _shown(picker.summary_out)
        (bars,) = chart["data"]
        expected = _op_counts(name)
        assert list(zip(bars["x"], bars["y"])) == expected  # categories, counts and order
        nodes = sum(n for _, n in expected)
        assert chart["layout"]["title"]["text"] == f"Op types in {name}.onnx ({nodes} nodes)"
        facts = {row[0]: row[1] for row in _Tables(summary).rows if len(row) == 2}
        assert facts["file"] == f"{name}.onnx" and facts["nodes"] == str(nodes)


def test_engine_explorer_warns_when_engines_share_no_nodes():
    backend = get_backend("onnxruntime")
    cnn = backend.build(sample_path("digits_cnn")).profile(
        {"input": np.load(sample_data_path("digits_cnn"))["input"][:4]}, iterations=2)
    transformer = backend.build(sample_path("digits_transformer")).profile(
        {"input": np.load(sample_data_path("digits_transformer"))["input"][:4]}, iterations=2)
    explorer = EngineExplorer({"cnn": cnn, "transformer": transformer})
    assert (explorer.compare_a.value, explorer.compare_b.value) == ("cnn", "transformer")
    warning, figure, frame = _shown(explorer.compare_out)
    assert "share no ONNX nodes" in warning and "cnn" in warning and "transformer" in warning
    # nothing matched: every layer is a group of its own, -time for cnn's, +time for the
    # transformer's; the figure keeps the 40 largest
    bars = _assert_compare_tab_draws(explorer, "cnn", "transformer", groups=len(cnn) + len(transformer))
    pool = [-t for t in cnn["time_ms"]] + list(transformer["time_ms"])
    expected = sorted(pool, key=abs, reverse=True)[:40]
    # ties in |time| at the cut may keep either layer: compare magnitudes, and signs from the pool
    assert sorted(map(abs, bars["x"])) == sorted(map(abs, expected))
    assert all(pool.count(x) >= list(bars["x"]).count(x) for x in bars["x"])
    explorer.compare_b.value = "cnn"
    (note,) = _shown(explorer.compare_out)  # same engine twice: a note only
    assert "Pick two different engines" in note
