"""Data in: loading ONNX models and summarizing what is in them."""

from workbench.model.loader import LoadedModel, load_model
from workbench.model.summary import ModelSummary, summarize

__all__ = ["LoadedModel", "ModelSummary", "load_model", "summarize"]
