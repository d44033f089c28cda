"""The model a variant is made from: refusals that come before any work, and the opset it needs.

:func:`workbench.model.load_model` has already normalized the model (Constant weights folded into
initializers, initializers out of the graph inputs, IR version raised, nodes named). What is left
depends on the variant:

- an **already-quantized** model (Q/DQ pairs, ``MatMulInteger``, ``QLinearConv``...) is refused
  for every reduced precision: converting or re-quantizing it gives an invalid or meaningless
  graph; variants are made from its float original;
- **INT8/FP8 on ONNX Runtime's quantizer** needs the op types to quantize in the main graph (the
  quantizer does not reach into If/Loop/Scan bodies): a model whose weighted ops all sit in
  subgraphs is refused, one with some there gets a note;
- **the opset**: per-channel weight scales need ``DequantizeLinear``'s ``axis`` (opset 13),
  per-tensor Q/DQ opset 10 and float8 Q/DQ opset 19. A model below is upgraded with ONNX's
  version converter (:func:`workbench.model.normalize.upgrade_opset`) and the upgrade is recorded,
  or the variant is refused naming what would work.
"""

from __future__ import annotations

from typing import Sequence

import onnx

from workbench.errors import WorkbenchError
from workbench.model import LoadedModel
from workbench.model.normalize import default_opset, upgrade_opset
from workbench.precision.lowp import graphs_of
from workbench.precision.recipe import QUANTIZED, Recipe
from workbench.precision.validate import VariantError


def refuse_unsuitable(loaded: LoadedModel, recipe: Recipe, tool: str) -> None:
    """Refuse a variant that cannot be made from this model, before any work.

    Args:
        loaded: The (normalized) source model.
        recipe: The recipe.
        tool: The tool that makes the variant (:func:`workbench.precision.variants.resolve_tool`).

    Raises:
        VariantError: The model is already quantized (any precision but fp32), or every op to
            quantize sits inside a subgraph (INT8/FP8 with ONNX Runtime's quantizer).
    """
    summary = loaded.summary
    if recipe.precision != "fp32" and getattr(summary, "quantized", False):
        raise VariantError(f"{loaded.path.name}: {summary.quantized_statement()} (converting or quantizing it "
                           f"again to {recipe.precision} would give an invalid or meaningless graph).")
    if recipe.precision in QUANTIZED and tool == "onnxruntime":
        _refuse_subgraph_only(loaded, recipe.quantized_op_types)


def subgraph_nodes(model: onnx.ModelProto, op_types: Sequence[str]) -> list[str]:
    """Names (or op types, for unnamed ones) of nodes of ``op_types`` inside If/Loop/Scan bodies."""
    inner = list(graphs_of(model.graph))[1:]
    return [node.name or node.op_type for graph in inner for node in graph.node if node.op_type in op_types]


def _refuse_subgraph_only(loaded: LoadedModel, op_types: Sequence[str]) -> None:
    main = {node.op_type for node in loaded.proto.graph.node}
    if main & set(op_types):
        return
    inside = subgraph_nodes(loaded.proto, op_types)
    if inside:
        raise VariantError(
            f"{loaded.path.name}: every node to quantize ({len(inside)}: {', '.join(inside[:4])}"
            f"{', ...' if len(inside) > 4 else ''}) is inside an If/Loop/Scan subgraph, which ONNX Runtime's "
            "quantizer does not reach, so an INT8/FP8 variant would quantize nothing. Make an FP16 variant "
            "instead, or export the model with those branches unrolled.")


def minimum_opset(recipe: Recipe) -> tuple[int, str]:
    """The lowest ``ai.onnx`` opset the variant's Q/DQ nodes need, and why.

    Returns:
        ``(opset, reason)``; ``(0, "")`` for precisions without Q/DQ.
    """
    if recipe.precision == "fp8":
        return 19, "float8 QuantizeLinear/DequantizeLinear need opset 19"
    if recipe.precision == "int8" and recipe.per_channel:
        return 13, "per-channel weight scales need DequantizeLinear's axis attribute (opset 13)"
    if recipe.precision == "int8":
        return 10, "QuantizeLinear/DequantizeLinear exist from opset 10"
    return 0, ""


def with_opset_for(loaded: LoadedModel, recipe: Recipe) -> tuple[onnx.ModelProto, dict | None]:
    """The source model at the opset the variant needs (upgraded when it is below).

    Args:
        loaded: The (normalized) source model.
        recipe: An int8/fp8 recipe.

    Returns:
        ``(model, upgrade)``: the model (``loaded.proto`` itself when no upgrade is needed) and
        ``{"from", "to", "why"}`` when it was upgraded, else None.

    Raises:
        VariantError: ONNX's version converter cannot upgrade the model; the message says which
            variant the model's own opset allows.
    """
    needed, why = minimum_opset(recipe)
    current = default_opset(loaded.proto)
    if current >= needed:
        return loaded.proto, None
    try:
        upgraded = upgrade_opset(loaded.proto, needed, path=loaded.path)
    except WorkbenchError as err:
        hint = (" Per-tensor weight scales (--per-tensor; per_channel=False) need only opset 10."
                if recipe.precision == "int8" and recipe.per_channel and current >= 10 else "")
        raise VariantError(f"{err}{hint}") from err
    return upgraded, {"from": current, "to": default_opset(upgraded), "why": why}
