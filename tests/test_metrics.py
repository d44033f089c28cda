"""Metrics (workbench.analysis.metrics): each built-in against a computation by hand, streaming over
uneven batches equal to all samples at once, user metrics from a module and from a file (a CTC
string match), targets, the binomial noise of a share, and one-line refusals of bad specs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.analysis.metrics import (
    BUILT_IN,
    MetricError,
    binomial_stderr,
    default_metric,
    get_metric,
    noise_warning,
    resolve_target,
    samples_to_resolve,
)

RNG = np.random.default_rng(7)
SCORES = RNG.normal(size=(40, 6, 5)).astype(np.float32)  # [N, T, C] per-position class scores
NOISY = SCORES + RNG.normal(scale=0.4, size=SCORES.shape).astype(np.float32)


def streamed(metric, outputs, reference, labels, cuts=(3, 17, 18, 40)):
    """The metric accumulated over uneven batches."""
    acc = metric.accumulator()
    start = 0
    for stop in cuts:
        acc.add({k: v[start:stop] for k, v in outputs.items()},
                None if reference is None else {k: v[start:stop] for k, v in reference.items()},
                None if labels is None else labels[start:stop])
        start = stop
    return acc


def test_top1_for_classes_one_hot_and_positions_with_padding():
    top1 = get_metric("top1")
    flat = SCORES[:, 0, :]
    labels = RNG.integers(0, 5, size=40)
    expected = 100 * np.mean(flat.argmax(1) == labels)
    assert top1({"logits": flat}, None, labels) == pytest.approx(expected)
    assert top1({"logits": flat}, None, np.eye(5)[labels]) == pytest.approx(expected)  # one-hot rows
    seq_labels = RNG.integers(0, 5, size=(40, 6))
    seq_labels[::3, 4:] = -1  # padded positions are not counted
    counted = seq_labels >= 0
    expected = 100 * np.sum((SCORES.argmax(-1) == seq_labels) & counted) / counted.sum()
    acc = streamed(top1, {"logits": SCORES}, None, seq_labels)
    assert acc.value == pytest.approx(expected) and acc.samples == 40 and acc.trials == 40
    assert top1.unit == "%" and top1.proportion and top1.needs_labels
    with pytest.raises(MetricError, match=r"labels shaped \[40\] do not fit output 'logits' \[40, 6, 5\]"):
        top1({"logits": SCORES}, None, labels)
    with pytest.raises(MetricError, match="labels go up to 9"):
        top1({"logits": flat}, None, np.full(40, 9))


def test_agreement_per_position_cosine_sqnr_and_psnr_by_hand():
    out, ref = {"y": NOISY}, {"y": SCORES}
    agreement = streamed(BUILT_IN["agreement"], out, ref, None).value
    assert agreement == pytest.approx(100 * np.mean(NOISY.argmax(-1) == SCORES.argmax(-1)))
    assert 0 < agreement < 100
    v, r = NOISY.astype(np.float64), SCORES.astype(np.float64)
    per_sample = [np.dot(a.ravel(), b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(v, r)]
    assert streamed(BUILT_IN["cosine"], out, ref, None).value == pytest.approx(np.mean(per_sample))
    sqnr = 10 * np.log10(np.sum(r ** 2) / np.sum((v - r) ** 2))
    assert streamed(BUILT_IN["sqnr"], out, ref, None).value == pytest.approx(sqnr)
    psnr = 10 * np.log10((r.max() - r.min()) ** 2 / np.mean((v - r) ** 2))  # data range of the reference
    assert streamed(BUILT_IN["psnr"], out, ref, None).value == pytest.approx(psnr)
    for name in ("agreement", "cosine", "sqnr", "psnr"):  # the reference against itself
        value = BUILT_IN[name](ref, ref)
        assert value == {"agreement": 100.0, "cosine": 1.0}.get(name, math.inf), name


def test_agreement_refuses_outputs_without_a_class_axis():
    with pytest.raises(MetricError, match=r"shape \[8, 1\].*use --metric sqnr, psnr or cosine"):
        BUILT_IN["agreement"]({"p": np.zeros((8, 1))}, {"p": np.zeros((8, 1))})
    with pytest.raises(MetricError, match="compares with labels, and the data has none"):
        BUILT_IN["top1"]({"p": SCORES}, None, None)
    with pytest.raises(MetricError, match="compares with a reference"):
        BUILT_IN["sqnr"]({"p": SCORES}, None, None)


CTC_MODULE = '''
import numpy as np

unit = "%"


def _decode(row):
    """Greedy CTC: collapse repeats, drop the blank (class 0)."""
    out, last = [], None
    for c in row:
        if c != last and c != 0:
            out.append(int(c))
        last = c
    return out


def exact_match(outputs, reference, labels):
    """share of strings decoded exactly as the reference decodes them"""
    got = next(iter(outputs.values())).argmax(-1)
    want = next(iter(reference.values())).argmax(-1)
    return np.array([100.0 * (_decode(a) == _decode(b)) for a, b in zip(got, want)])


exact_match.unit = "%"
exact_match.proportion = True
exact_match.needs_reference = True
exact_match.default_drop = 1.0


def batch_mean(outputs, reference, labels):
    return float(next(iter(outputs.values())).mean())


def wrong_shape(outputs, reference, labels):
    return np.zeros(3)
'''


def _decode(row):
    out, last = [], None
    for c in row:
        if c != last and c != 0:
            out.append(int(c))
        last = c
    return out


@pytest.fixture
def ctc_module(tmp_path, monkeypatch):
    (tmp_path / "ctc_metrics.py").write_text(CTC_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "ctc_metrics.py"


def test_user_metric_from_a_module_and_a_file(ctc_module):
    expected = 100 * np.mean([_decode(a) == _decode(b) for a, b in zip(NOISY.argmax(-1), SCORES.argmax(-1))])
    for spec in ("python:ctc_metrics:exact_match", f"python:{ctc_module}:exact_match"):
        metric = get_metric(spec)
        assert metric.name == spec and metric.unit == "%" and metric.proportion and metric.needs_reference
        assert metric.description == "share of strings decoded exactly as the reference decodes them"
        assert streamed(metric, {"y": NOISY}, {"y": SCORES}, None).value == pytest.approx(expected)
        target = resolve_target(metric, 100.0)
        assert target.minimum == 99.0 and target.source == "default"
    mean = get_metric("python:ctc_metrics:batch_mean")  # one number per batch: weighted by its samples
    assert streamed(mean, {"y": NOISY}, None, None).value == pytest.approx(float(NOISY.mean()), rel=1e-5)
    assert mean.unit == "" and not mean.needs_reference and mean.uses_reference
    with pytest.raises(MetricError, match="no default target"):
        resolve_target(mean, 1.0)
    with pytest.raises(MetricError, match=r"returned shape \[3\] for a batch of 40"):
        get_metric("python:ctc_metrics:wrong_shape")({"y": NOISY})


@pytest.mark.parametrize("spec, message", [
    ("top2", "unknown metric 'top2'; choose top1, agreement"),
    ("", "metric must be a name"),
    ("python:score", "write python:module:function"),
    ("python:no_such_module_for_metrics:f", "cannot import no_such_module_for_metrics"),
    ("python:ctc_metrics:missing", "has no function 'missing'"),
    ("python:/no/such/file.py:f", "is not a file"),
])
def test_bad_specs_are_refused_in_one_line(spec, message, ctc_module):
    with pytest.raises(MetricError, match=message) as err:
        get_metric(spec)
    assert "\n" not in str(err.value)


def test_targets():
    top1, sqnr = BUILT_IN["top1"], BUILT_IN["sqnr"]
    target = resolve_target(top1, 97.0, target_drop=2.0)
    assert (target.minimum, target.drop, target.source) == (95.0, 2.0, "target_drop")
    assert target.passes(95.0) and not target.passes(94.9) and not target.passes(float("nan"))
    assert resolve_target(top1, 97.0).minimum == 96.5  # default: half a point
    assert resolve_target(top1, None, target=90.0).minimum == 90.0
    assert resolve_target(sqnr, math.inf).minimum == 30.0  # default minimum: a drop from inf means nothing
    with pytest.raises(MetricError, match="give --target"):
        resolve_target(sqnr, math.inf, target_drop=3.0)
    with pytest.raises(MetricError, match="not both"):
        resolve_target(top1, 97.0, target=90.0, target_drop=1.0)
    with pytest.raises(MetricError, match="zero or more"):
        resolve_target(top1, 97.0, target_drop=-1.0)
    assert target.to_dict() == {"metric": "top1", "unit": "%", "minimum": 95.0, "reference_value": 97.0,
                                "drop": 2.0, "source": "target_drop"}


def test_binomial_noise_and_the_samples_that_resolve_it():
    # the 4-class classifier: 552 samples at ~75 % -> 1.8 points of standard error
    assert binomial_stderr(75.0, 552) == pytest.approx(100 * math.sqrt(0.75 * 0.25 / 552))
    assert binomial_stderr(0.75, 552, unit="") == pytest.approx(math.sqrt(0.75 * 0.25 / 552))
    assert samples_to_resolve(75.0, 0.5) == math.ceil(0.75 * 0.25 / 0.005 ** 2)
    top1 = BUILT_IN["top1"]
    warning = noise_warning(top1, 552, resolve_target(top1, 75.5, target_drop=0.5))
    assert warning["stderr"] == pytest.approx(binomial_stderr(75.0, 552))
    assert warning["samples_needed"] == samples_to_resolve(75.0, 0.5) and warning["samples"] == 552
    assert "552 samples" in warning["message"] and str(warning["samples_needed"]) in warning["message"]
    assert noise_warning(top1, 552, resolve_target(top1, 75.5, target_drop=2.0)) is None
    assert noise_warning(BUILT_IN["sqnr"], 552, resolve_target(BUILT_IN["sqnr"], math.inf)) is None


def test_default_metric():
    assert default_metric(True, [None, 10]) == "top1"
    assert default_metric(False, ["N", 10]) == "agreement"
    assert default_metric(False, ["N", "T", 6625]) == "agreement"  # per position
    assert default_metric(False, ["N", 1]) == "sqnr"  # a probability per sample
    assert default_metric(False, ["N", 1, "H", "W"]) == "sqnr"  # a map or an image
    assert default_metric(False, None) == "agreement"
    assert default_metric(True, ["N", 1, 24, 24]) == "sqnr"  # labels that are not classes: compare with FP32
