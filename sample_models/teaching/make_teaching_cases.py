#!/usr/bin/env python
"""Make the INT8 teaching cases: digits_cnn with one channel rescaled, same function, broken INT8.

Each case multiplies one output channel of a Conv (and the BatchNormalization after it) by a
factor and divides the matching input channel of the next weighted node by it
(:func:`workbench.doctor.teaching.make_teaching_case`). The FP32 outputs do not change
(checked here on the evaluation set); the INT8 variant collapses, and the two nodes involved are
the known answer (stored in each model's ``metadata_props`` under ``workbench.teaching_case``).

Run from the repository root (a few seconds, no torch)::

    python sample_models/teaching/make_teaching_cases.py          # write the models
    python sample_models/teaching/make_teaching_cases.py --check  # verify the committed ones

The cases use ``digits_cnn``'s data: ``sample_models/digits_cnn.calib.npz`` and ``.eval.npz``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from workbench.doctor.teaching import make_teaching_case, max_output_difference, teaching_answer  # noqa: E402

SOURCE = REPO / "sample_models" / "digits_cnn.onnx"
EVAL = REPO / "sample_models" / "digits_cnn.eval.npz"
# name -> (conv, channel, factor); factors are not powers of two, so FP32 rounding differs a little
CASES = {
    "digits_cnn_conv1_c5_x300": ("/features/conv1/Conv", 5, 300.0),
    "digits_cnn_dwconv2_c3_x200": ("/features/dwconv2/Conv", 3, 200.0),
    "digits_cnn_pwconv3_c7_x500": ("/features/pwconv3/Conv", 7, 500.0),
}
MAX_ABS_DIFF = 1e-4  # logits are O(10); float32 rounding of the rescale stays far below this


def build(name: str) -> onnx.ModelProto:
    """The teaching model ``name`` (see :data:`CASES`)."""
    conv, channel, factor = CASES[name]
    return make_teaching_case(SOURCE, conv, channel, factor)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the committed models instead of writing them")
    args = parser.parse_args(argv)
    inputs = {"input": np.load(EVAL)["input"]}
    status = 0
    for name in CASES:
        path = HERE / f"{name}.onnx"
        model = build(name)
        diff = max_output_difference(SOURCE, model, inputs)
        if args.check:
            stored = onnx.load(str(path))
            same = stored.SerializeToString() == model.SerializeToString()
            print(f"{name}: committed file {'matches' if same else 'DIFFERS from'} a rebuild; "
                  f"answer {teaching_answer(stored)}")
            status |= 0 if same else 1
        else:
            onnx.save(model, str(path))
            print(f"{name}: wrote {path.name}; FP32 max |logit diff| vs digits_cnn {diff:.2e}; answer "
                  f"{teaching_answer(model)}")
        if diff > MAX_ABS_DIFF:
            print(f"{name}: FP32 outputs changed by {diff:.2e} (> {MAX_ABS_DIFF}); the rescale is not function-"
                  "preserving", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
