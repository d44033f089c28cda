"""trt-workbench: load an ONNX model, make it fast with TensorRT, and watch what happens.

The public API is small and imports nothing heavy until used; TensorRT is never imported unless a
TensorRT backend is asked for, so ``import workbench`` works on any machine.

    >>> import workbench
    >>> model = workbench.load_model(workbench.sample_path("digits_cnn"))
    >>> model.summary.flops
"""

from __future__ import annotations

from workbench._lazy import lazy_exports

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
    "trt_example_dir": "workbench.samples",
    "workspace_dir": "workbench.workspace",
    "import_trt": "workbench.backends.tensorrt.trt_json",
    "get_backend": "workbench.backends",
    "ModelPicker": "workbench.views.model_picker",
    "netron_view": "workbench.views.netron_view",
    "evaluate": "workbench.analysis.accuracy",
    "ResultsTable": "workbench.tables.results",
    "Recipe": "workbench.precision.recipe",
    "make_variant": "workbench.precision.variants",
    "diagnose": "workbench.doctor.diagnose",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
