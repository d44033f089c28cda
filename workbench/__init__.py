"""trt-workbench: load an ONNX model, make it fast with TensorRT, and watch what happens.

The public API is small and imports nothing heavy until used; TensorRT is never imported unless a
TensorRT backend is asked for, so ``import workbench`` works on any machine.

    >>> import workbench
    >>> model = workbench.load_model(workbench.sample_path("digits_cnn"))
    >>> model.summary.flops
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first use (PEP 562)
_EXPORTS = {
    "load_model": "workbench.model.loader",
    "LoadedModel": "workbench.model.loader",
    "ModelSummary": "workbench.model.summary",
    "WorkbenchError": "workbench.errors",
    "ModelLoadError": "workbench.errors",
    "sample_names": "workbench.samples",
    "sample_path": "workbench.samples",
    "sample_data_path": "workbench.samples",
    "workspace_dir": "workbench.workspace",
    "import_trt": "workbench.backends.trt_json",
    "get_backend": "workbench.backends",
    "ModelPicker": "workbench.views.model_picker",
    "netron_view": "workbench.views.netron_view",
    "evaluate": "workbench.analysis.accuracy",
    "ResultsTable": "workbench.analysis.results",
    "Recipe": "workbench.precision.recipe",
    "make_variant": "workbench.precision.variants",
    "diagnose": "workbench.analysis.doctor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
