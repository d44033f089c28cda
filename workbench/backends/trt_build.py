"""Deprecated alias of :mod:`workbench.backends.tensorrt.build`, kept for one release (removed in 0.3)."""

import warnings

import workbench.backends.tensorrt.build as _moved

warnings.warn("workbench.backends.trt_build moved to workbench.backends.tensorrt.build; import it from there (this alias goes in 0.3).",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):
    if name == "RecipeError":  # renamed: one RecipeError family (workbench.precision's)
        name = "BuildRecipeError"
    return getattr(_moved, name)
