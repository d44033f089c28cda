"""How long `load_model` (parse, check, shape inference, summary) takes on a large graph.

The largest graph made here: a stack of transformer encoder blocks written out op by op
(MatMul, Add, Softmax, LayerNormalization, Gelu-as-Erf...), thousands of nodes, with real
(random) weights: 120 blocks (~3,600 nodes, 23 MB) and 600 (~18,000 nodes, 115 MB). Prints a
table and writes bench/results/load_model.json.

    python bench/bench_load_model.py [--blocks 120 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine import machine_info  # noqa: E402  (bench/machine.py)

from workbench.model import load_model  # noqa: E402
from workbench.workspace import write_atomic  # noqa: E402

HIDDEN, HEADS, SEQ = 64, 4, 16


def encoder_stack(blocks: int, seed: int = 0) -> onnx.ModelProto:
    """A transformer encoder of ``blocks`` blocks, each about 30 nodes."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name, shape):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.05, name))
        return name

    def const(name, values, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(op, inputs, name, **attrs):
        out = f"{name}_out"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    head_dim = HIDDEN // HEADS
    split_shape = const("split_shape", [-1, SEQ, HEADS, head_dim])
    merge_shape = const("merge_shape", [-1, SEQ, HIDDEN])
    scale = const("scale", [1.0 / np.sqrt(head_dim)], np.float32)
    half, one, sqrt2 = (const(n, [v], np.float32) for n, v in (("half", 0.5), ("one", 1.0), ("sqrt2", np.sqrt(2.0))))
    x = "x"
    for b in range(blocks):
        p = f"/block{b}"
        ln1 = node("LayerNormalization", [x, weight(f"{p}.ln1.g", [HIDDEN]), weight(f"{p}.ln1.b", [HIDDEN])], f"{p}/ln1", axis=-1)
        heads = {}
        for t in ("q", "k", "v"):
            proj = node("MatMul", [ln1, weight(f"{p}.{t}.w", [HIDDEN, HIDDEN])], f"{p}/{t}/MatMul")
            proj = node("Add", [proj, weight(f"{p}.{t}.b", [HIDDEN])], f"{p}/{t}/Add")
            proj = node("Reshape", [proj, split_shape], f"{p}/{t}/Reshape")
            heads[t] = node("Transpose", [proj], f"{p}/{t}/Transpose", perm=[0, 2, 1, 3] if t != "k" else [0, 2, 3, 1])
        scores = node("MatMul", [heads["q"], heads["k"]], f"{p}/attn/scores")
        scores = node("Mul", [scores, scale], f"{p}/attn/scale")
        probs = node("Softmax", [scores], f"{p}/attn/Softmax", axis=-1)
        ctx = node("MatMul", [probs, heads["v"]], f"{p}/attn/context")
        ctx = node("Transpose", [ctx], f"{p}/attn/merge_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge_shape], f"{p}/attn/merge")
        out = node("MatMul", [ctx, weight(f"{p}.o.w", [HIDDEN, HIDDEN])], f"{p}/o/MatMul")
        x = node("Add", [x, out], f"{p}/residual1")
        ln2 = node("LayerNormalization", [x, weight(f"{p}.ln2.g", [HIDDEN]), weight(f"{p}.ln2.b", [HIDDEN])], f"{p}/ln2", axis=-1)
        h = node("MatMul", [ln2, weight(f"{p}.fc1.w", [HIDDEN, 4 * HIDDEN])], f"{p}/fc1")
        g = node("Div", [h, sqrt2], f"{p}/gelu/div")
        g = node("Erf", [g], f"{p}/gelu/erf")
        g = node("Add", [g, one], f"{p}/gelu/add")
        g = node("Mul", [h, g], f"{p}/gelu/mul")
        g = node("Mul", [g, half], f"{p}/gelu/half")
        h = node("MatMul", [g, weight(f"{p}.fc2.w", [4 * HIDDEN, HIDDEN])], f"{p}/fc2")
        x = node("Add", [x, h], f"{p}/residual2")
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes,
        "encoder_stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SEQ, HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", SEQ, HIDDEN])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench_load_model")


def measure(blocks: int, repeats: int) -> dict:
    """Time ``load_model`` (with its summary) on an encoder stack of ``blocks`` blocks.

    Args:
        blocks: Encoder blocks (about 30 nodes each).
        repeats: Timed loads (the median is the figure).

    Returns:
        ``model``, ``blocks``, ``nodes``, ``parameters``, ``file_mb``, ``load_and_summary_s``
        (``min``/``median``/``max``/``all``) and ``repeats``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder_stack.onnx"
        onnx.save(encoder_stack(blocks), str(path))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model = load_model(path)
            summary = model.summary  # the summary is part of what is timed
            times.append(time.perf_counter() - start)
        return {
            "model": f"encoder_stack({blocks} blocks)",
            "blocks": blocks,
            "nodes": summary.node_count,
            "parameters": summary.parameters,
            "file_mb": round(path.stat().st_size / 2**20, 2),
            "load_and_summary_s": {"min": min(times), "median": float(np.median(times)), "max": max(times),
                                   "all": times},
            "repeats": repeats,
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[120, 600],
                        help="encoder blocks per model, one model per value (default 120 600)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "load_model.json"))
    args = parser.parse_args(argv)
    results = [measure(blocks, args.repeats) for blocks in args.blocks]
    print(f"{'model':<28}{'nodes':>8}{'params':>12}{'MB':>8}{'load+summary (median s)':>26}")
    for result in results:
        print(
            f"{result['model']:<28}{result['nodes']:>8}{result['parameters']:>12,}{result['file_mb']:>8}"
            f"{result['load_and_summary_s']['median']:>26.3f}"
        )
    payload = {"what": "load_model + summary on encoder stacks", "machine": machine_info(), "results": results}
    write_atomic(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
