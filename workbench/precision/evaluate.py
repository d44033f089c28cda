"""Deprecated: these names moved (ort_session to workbench.backends.onnxruntime.session,
top1_accuracy to workbench.analysis.accuracy, evaluate_variant to workbench.workflows.sweep);
this alias goes in 0.3."""

import importlib
import warnings

_MOVED = {
    "LEVELS": "workbench.backends.onnxruntime.session",
    "ort_session": "workbench.backends.onnxruntime.session",
    "top1_accuracy": "workbench.analysis.accuracy",
    "evaluate_variant": "workbench.workflows.sweep",
}
warnings.warn("workbench.precision.evaluate is split up; import from workbench.analysis.accuracy, "
              "workbench.backends.onnxruntime.session or workbench.workflows.sweep (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(name)
    return getattr(importlib.import_module(_MOVED[name]), name)
