"""Fast calibration gives ONNX Runtime's calibrator's ranges on the sample models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from precision_traits import calibration_for, cnn

from workbench.datasets.calibration_sets import from_npz
from workbench.precision.calib_run import tensor_bytes_per_sample
from workbench.precision.calibrator import (
    CalibrationError,
    CalibrationOptions,
    build_histogram_model,
    calibrate,
    compare_ranges,
    derivations,
    histogram_spec,
    make_session,
    ort_calibrate,
    prepare_for_calibration,
    select_tensors,
)
from workbench.samples import sample_data_path, sample_path

MODELS = ("digits_cnn", "digits_transformer")
TRT_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]
BATCH = 32  # divides the 256 calibration samples (ORT's histogram calibrators need equal batches)


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    name = request.param
    model = prepare_for_calibration(onnx.load(str(sample_path(name))))
    return name, model, from_npz(sample_data_path(name, "calib"), ["input"])


@pytest.mark.parametrize("op_types", [None, TRT_OPS], ids=["all-ops", "tensorrt-ops"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_minmax_ranges_exactly_equal_ort(case, op_types, symmetric):
    _, model, calib = case
    options = CalibrationOptions("minmax", symmetric=symmetric)
    ours = calibrate(model, calib, options, op_types=op_types, batch_size=BATCH, progress=False, exact=True)
    theirs = ort_calibrate(model, calib, options, op_types=op_types, batch_size=BATCH)
    result = compare_ranges(ours.tensors_range, theirs)
    assert result["exact"], result
    assert result["tensors"] == len(ours.tensors) > 5
    assert list(ours.pass_seconds) == ["ranges"]  # one pass, reductions in the graph


@pytest.mark.parametrize(
    "options",
    [
        CalibrationOptions("entropy"),
        CalibrationOptions("entropy", num_bins=256, num_quantized_bins=128),
        CalibrationOptions("percentile"),
        CalibrationOptions("percentile", symmetric=False),
        CalibrationOptions("percentile", percentile=99.9),
        CalibrationOptions("distribution"),
    ],
    ids=["entropy", "entropy-256", "percentile", "percentile-2sided", "percentile-99.9", "distribution"],
)
def test_histogram_method_ranges_equal_ort(case, options):
    _, model, calib = case
    theirs = ort_calibrate(model, calib, options, batch_size=BATCH)
    ours = calibrate(model, calib, options, batch_size=BATCH, progress=False, exact=True)
    result = compare_ranges(ours.tensors_range, theirs)
    assert result["exact"], result


@pytest.mark.parametrize("method", ["entropy", "percentile", "distribution"])
def test_full_histograms_equal_ort_bin_for_bin(case, method):
    """histograms='full' reproduces ORT's histogram, edges, avg and std exactly."""
    _, model, calib = case
    options = CalibrationOptions(method)
    theirs = ort_calibrate(model, calib, options, op_types=TRT_OPS, batch_size=BATCH)
    ours = calibrate(model, calib, options, op_types=TRT_OPS, batch_size=BATCH, progress=False, histograms="full",
                     exact=True)
    fields = {"entropy": ("hist", "bins"), "percentile": (),
              "distribution": ("hist", "hist_edges", "avg", "std")}[method]
    result = compare_ranges(ours.tensors_range, theirs, fields=fields)
    assert result["exact"] and result["fields_equal"], result
    assert "histograms" in ours.pass_seconds


def test_in_graph_histogram_matches_numpy_on_real_activations():
    """The in-graph binning (float32 arithmetic + edge corrections) equals np.histogram per bin."""
    model = prepare_for_calibration(onnx.load(str(sample_path("digits_transformer"))))
    x = from_npz(sample_data_path("digits_transformer", "calib"), ["input"]).inputs["input"][:64]
    tensors = select_tensors(model, ["MatMul"])[:6]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    values = dict(zip(tensors, make_session(probe).run(tensors, {"input": x})))
    specs = []
    for name in tensors:
        t = np.float32(np.abs(values[name]).max())
        specs.append(histogram_spec(name, -t, t, 2048, absolute=False))
    counts = make_session(build_histogram_model(model, specs)).run(
        [f"wb_calib_hist_{k}" for k in range(len(specs))], {"input": x})
    for name, spec, got in zip(tensors, specs, counts):
        want, _ = np.histogram(values[name].ravel(), 2048, range=(spec.first_edge, spec.last_edge))
        assert np.array_equal(got, want), name


def test_relu_and_reshape_ranges_derived_not_reduced():
    model = prepare_for_calibration(onnx.load(str(sample_path("digits_cnn"))))
    tensors = select_tensors(model, None)
    derived = derivations(model, tensors)
    assert derived["/features/relu1/Relu_output_0"] == ("/features/bn1/BatchNormalization_output_0", "relu")
    assert derived["/Flatten_output_0"][1] == "same"


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_optimized_graph_default_is_within_rounding(case, method):
    """The default (ORT optimizes the calibration graph) differs only by kernel rounding."""
    _, model, calib = case
    ours = calibrate(model, calib, method, batch_size=BATCH, progress=False)
    theirs = ort_calibrate(model, calib, method, batch_size=BATCH)
    result = compare_ranges(ours.tensors_range, theirs)
    assert result["max_rel_diff"] < 1e-5 and result["missing"] == result["extra"] == [], result


def test_uneven_last_batch_and_fixed_batch_models(case):
    _, model, calib = case
    subset = calib.subset(100)
    ours = calibrate(model, subset, "percentile", batch_size=48, progress=False, exact=True)  # 48 + 48 + 4
    theirs = ort_calibrate(model, subset, "percentile", batch_size=50)
    assert compare_ranges(ours.tensors_range, theirs)["exact"]


def test_percentile_tail_too_short_falls_back_to_full_histogram(case, monkeypatch):
    """If the tail kept per batch turns out too short, the tensor is histogrammed in full."""
    import workbench.precision.calibrator as cal

    _, model, calib = case
    monkeypatch.setattr(cal, "elements_per_sample", lambda model, tensor: 1)  # far too few
    ours = calibrate(model, calib, "percentile", batch_size=BATCH, progress=False, exact=True)
    assert "histograms" in ours.pass_seconds
    theirs = ort_calibrate(model, calib, "percentile", batch_size=BATCH)
    assert compare_ranges(ours.tensors_range, theirs)["exact"]


def test_percentile_counts_elements_with_a_probe_when_shapes_are_not_static(case, monkeypatch):
    import workbench.precision.calibrator as cal

    _, model, calib = case
    monkeypatch.setattr(cal, "elements_per_sample", lambda model, tensor: None)
    ours = calibrate(model, calib, "percentile", batch_size=BATCH, progress=False, exact=True)
    assert "histograms" not in ours.pass_seconds
    theirs = ort_calibrate(model, calib, "percentile", batch_size=BATCH)
    assert compare_ranges(ours.tensors_range, theirs)["exact"]


def test_unknown_method_and_no_tensors_refused(case):
    _, model, calib = case
    with pytest.raises(CalibrationError, match="unknown calibration method"):
        calibrate(model, calib, "kl")
    with pytest.raises(CalibrationError, match="no float tensor to calibrate"):
        calibrate(model, calib, "minmax", op_types=["NonMaxSuppression"], progress=False)


def test_calibrator_keeps_its_public_names():
    """The calib_* modules hold the pieces; the calibrator and the package face still offer them."""
    import workbench.precision as face
    import workbench.precision.calibrator as cal
    from workbench.precision import (
        calib_graph,
        calib_options,
        calib_ranges,
        calib_reference,
    )

    names = ("CalibrationError", "CalibrationOptions", "CalibrationResult", "canonical_method", "METHODS",
             "select_tensors", "derivations", "build_range_model", "build_histogram_model", "histogram_spec",
             "make_session", "calibrate", "thresholds_from_histograms", "ArrayReader", "ort_calibrate",
             "compare_ranges", "prepare_for_calibration", "fixed_batch_size", "elements_per_sample", "MAX_TAIL")
    assert set(names) <= set(cal.__all__)
    assert cal.CalibrationOptions is calib_options.CalibrationOptions is face.CalibrationOptions
    assert cal.build_histogram_model is calib_graph.build_histogram_model
    assert cal.thresholds_from_histograms is calib_ranges.thresholds_from_histograms
    assert cal.ort_calibrate is calib_reference.ort_calibrate is face.ort_calibrate
    assert face.calibrate is cal.calibrate and face.prepare_for_calibration is cal.prepare_for_calibration


@pytest.mark.parametrize("version", [10, 11])
@pytest.mark.parametrize("options", [CalibrationOptions("percentile"), CalibrationOptions("entropy", num_bins=256)],
                         ids=["percentile-tails", "entropy-histograms"])
def test_old_opsets_calibrate_to_ort_s_ranges(version, options):
    """The calibration graph's tails (int64 Min: opset 12) and histograms (ScatterElements' reduction:
    opset 16) run on an upgraded copy of an opset 10/11 model; the ranges stay ORT's own."""
    model = prepare_for_calibration(cnn(version))
    calib = calibration_for(model, 64)
    ours = calibrate(model, calib, options, op_types=None, batch_size=BATCH, progress=False, exact=True)
    theirs = ort_calibrate(model, calib, options, op_types=None, batch_size=BATCH)
    result = compare_ranges(ours.tensors_range, theirs)
    assert result["tensors"] == len(ours.tensors) >= 4 and not result["missing"]
    assert result["max_rel_diff"] <= 1e-6, result


@pytest.mark.parametrize("method", ["minmax", "percentile", CalibrationOptions("entropy", num_bins=2048)],
                         ids=["minmax", "percentile-tails", "entropy-full-histograms"])
def test_batches_are_sized_to_the_memory_budget_and_ranges_do_not_change(method):
    """A calibration graph holds every calibrated tensor of a batch at once: with a budget of three
    samples' tensors the batch shrinks (to 1 where a pass holds copies), the ranges stay the same."""
    model = prepare_for_calibration(onnx.load(str(sample_path("digits_cnn"))))
    calib = from_npz(sample_data_path("digits_cnn", "calib"), ["input"])
    free = calibrate(model, calib, method, batch_size=BATCH, progress=False, memory_budget=None)
    tensors = select_tensors(model, None)
    sources = [t for t in tensors if t not in derivations(model, tensors)]  # what the graph reduces
    per_sample = sum(tensor_bytes_per_sample(model, calib, sources).values())
    bounded = calibrate(model, calib, method, batch_size=BATCH, progress=False, memory_budget=3 * per_sample)
    assert free.batch_size == BATCH
    assert bounded.batch_size == (1 if method == "percentile" else 3)  # |x| and the tails: 4 bytes per byte
    diff = compare_ranges(bounded.tensors_range, free.tensors_range)
    assert diff["max_rel_diff"] <= 1e-6, diff
