#!/usr/bin/env python
"""Build the bundled sample models for trt-workbench.

Trains two small classifiers on scikit-learn's bundled ``load_digits`` data set
(8x8 grayscale digits, 10 classes, 1797 samples) and exports them to ONNX:

* ``digits_cnn``          - small CNN (Conv/BatchNorm/depthwise/pointwise/pool/Gemm)
* ``digits_transformer``  - tiny transformer encoder (MatMul/Softmax/LayerNorm/GELU)

For each model this writes, next to this file:

* ``<name>.onnx``        - FP32 ONNX model, opset 17, dynamic batch dim ``batch``
* ``<name>.calib.npz``   - calibration split: ``input`` float32 [N,1,8,8], ``labels`` int64 [N]
* ``<name>.eval.npz``    - evaluation split, same layout
* ``<name>.md``          - model card

plus ``README.md``.  Run from the repository root::

    python sample_models/build.py

Dev-only requirements: torch (CPU), onnx, onnxruntime, scikit-learn, numpy
(onnxscript is not needed: the legacy TorchScript exporter is used).
No network access is needed: the data ships inside scikit-learn.
Everything is seeded, single-process and limited to 2 threads, so a rebuild
on the same software versions reproduces the same files.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import os
import platform
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent
OPSET = 17
SEED = 20240601
N_EVAL = 360
N_CALIB = 256
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
PIXEL_MAX = 16.0  # load_digits pixels are integers 0..16

DATASET_TEXT = (
    "scikit-learn's bundled copy of the UCI *Optical Recognition of Handwritten Digits* "
    "data set (`sklearn.datasets.load_digits`: the 1797-sample optdigits test set, "
    "8x8 images with integer pixel values 0..16, 10 classes). Redistributed with "
    "scikit-learn under the BSD-3-Clause license; the original UCI data set is "
    "licensed CC BY 4.0 (E. Alpaydin, C. Kaynak, 1998, "
    "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits)."
)


# --------------------------------------------------------------------------
# helpers: atomic / deterministic writes
# --------------------------------------------------------------------------
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """Like np.savez_compressed, but with fixed zip timestamps so the bytes are
    reproducible (np.savez_compressed stamps the current time into the zip)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, arr_buf.getvalue())
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def preprocess(pixels: np.ndarray) -> np.ndarray:
    """Raw load_digits rows (N, 64), values 0..16 -> float32 (N, 1, 8, 8) in [0, 1]."""
    x = np.asarray(pixels, dtype=np.float32).reshape(-1, 1, 8, 8)
    return x / np.float32(PIXEL_MAX)


def load_splits():
    """Deterministic, disjoint train / calib / eval split of load_digits.

    Identical images (there are none in sklearn 1.x, but be safe) are kept in
    the same split so that no sample row is shared between splits.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.data.astype(np.float32)
    labels = digits.target.astype(np.int64)
    assert pixels.shape == (1797, 64), pixels.shape

    _, group = np.unique(pixels, axis=0, return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1
    order = np.random.default_rng(SEED).permutation(n_groups)

    eval_idx, calib_idx, train_idx = [], [], []
    members = collections.defaultdict(list)
    for i, g in enumerate(group):
        members[int(g)].append(i)
    for g in order:
        idx = members[int(g)]
        if len(eval_idx) < N_EVAL:
            eval_idx.extend(idx)
        elif len(calib_idx) < N_CALIB:
            calib_idx.extend(idx)
        else:
            train_idx.extend(idx)
    splits = {}
    for name, idx in (("train", train_idx), ("calib", calib_idx), ("eval", eval_idx)):
        idx = np.asarray(idx, dtype=np.int64)
        splits[name] = (preprocess(pixels[idx]), labels[idx])
    return splits


# --------------------------------------------------------------------------
# models (torch is imported lazily so the helpers above stay importable)
# --------------------------------------------------------------------------
def build_models():
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        """conv3x3 -> depthwise3x3 -> pointwise1x1 -> maxpool -> dw/pw block -> GAP -> Linear."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                collections.OrderedDict(
                    [
                        ("conv1", nn.Conv2d(1, 32, 3, padding=1, bias=False)),
                        ("bn1", nn.BatchNorm2d(32)),
                        ("relu1", nn.ReLU()),
                        ("dwconv2", nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)),
                        ("bn2", nn.BatchNorm2d(32)),
                        ("relu2", nn.ReLU()),
                        ("pwconv2", nn.Conv2d(32, 64, 1, bias=False)),
                        ("bn3", nn.BatchNorm2d(64)),
                        ("relu3", nn.ReLU()),
                        ("pool1", nn.MaxPool2d(2)),  # 8x8 -> 4x4
                        ("dwconv3", nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)),
                        ("bn4", nn.BatchNorm2d(64)),
                        ("relu4", nn.ReLU()),
                        ("pwconv3", nn.Conv2d(64, 96, 1, bias=False)),
                        ("bn5", nn.BatchNorm2d(96)),
                        ("relu5", nn.ReLU()),
                        ("gap", nn.AdaptiveAvgPool2d(1)),  # -> GlobalAveragePool
                    ]
                )
            )
            self.dropout = nn.Dropout(0.2)
            self.classifier = nn.Linear(96, 10)

        def forward(self, x):
            x = self.features(x)
            x = torch.flatten(x, 1)
            return self.classifier(self.dropout(x))

    class SelfAttention(nn.Module):
        def __init__(self, dim: int, heads: int, tokens: int) -> None:
            super().__init__()
            self.heads, self.tokens, self.head_dim = heads, tokens, dim // heads
            self.scale = 1.0 / math.sqrt(self.head_dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):  # x: [B, T, D]
            t, h, hd = self.tokens, self.heads, self.head_dim
            qkv = self.qkv(x).reshape(-1, t, 3, h, hd).permute(2, 0, 3, 1, 4)  # [3,B,H,T,hd]
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = torch.matmul(q, k.transpose(-2, -1)) * self.scale  # MatMul
            attn = torch.softmax(attn, dim=-1)  # Softmax
            out = torch.matmul(attn, v)  # [B,H,T,hd]
            out = out.transpose(1, 2).reshape(-1, t, h * hd)
            return self.proj(out)

    class EncoderBlock(nn.Module):
        """Pre-LN transformer encoder block."""

        def __init__(self, dim: int, heads: int, mlp_dim: int, tokens: int, drop: float) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(dim)
            self.attn = SelfAttention(dim, heads, tokens)
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(
                collections.OrderedDict(
                    [
                        ("fc1", nn.Linear(dim, mlp_dim)),
                        ("gelu", nn.GELU()),  # exact (erf) GELU
                        ("fc2", nn.Linear(mlp_dim, dim)),
                    ]
                )
            )
            self.drop = nn.Dropout(drop)

        def forward(self, x):
            x = x + self.drop(self.attn(self.ln1(x)))
            return x + self.drop(self.mlp(self.ln2(x)))

    class DigitsTransformer(nn.Module):
        """8 row tokens x 8 pixels -> Linear embed + learned pos -> 2 blocks -> LN -> mean -> Linear."""

        def __init__(self, dim: int = 64, heads: int = 4, mlp_dim: int = 128, depth: int = 2) -> None:
            super().__init__()
            self.tokens = 8
            self.embed = nn.Linear(8, dim)
            self.pos_embed = nn.Parameter(torch.zeros(1, self.tokens, dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            self.blocks = nn.Sequential(
                *[EncoderBlock(dim, heads, mlp_dim, self.tokens, 0.1) for _ in range(depth)]
            )
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 10)

        def forward(self, x):  # [B,1,8,8]
            x = x.reshape(-1, self.tokens, 8)  # 8 tokens (image rows) of 8 pixels
            x = self.embed(x) + self.pos_embed
            x = self.blocks(x)
            x = self.norm(x)
            x = x.mean(dim=1)  # mean-pool over tokens
            return self.head(x)

    return DigitsCNN, DigitsTransformer


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------
def random_shift(x, gen, max_shift: int = 1):
    """Shift each image by an integer offset in [-max_shift, max_shift] (zero fill)."""
    import torch

    n = x.shape[0]
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    offs = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(offs[i, 0]), int(offs[i, 1])
        out[i] = pad[i, :, dy : dy + 8, dx : dx + 8]
    return out


def train_model(model, x_train, y_train, *, epochs, lr, weight_decay, batch_size, seed, shift_p):
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(x_train)
    y = torch.from_numpy(y_train)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size : (s + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            if shift_p > 0:
                shifted = random_shift(xb, gen)
                mask = (torch.rand(len(xb), generator=gen) < shift_p).view(-1, 1, 1, 1)
                xb = torch.where(mask, shifted, xb)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


# --------------------------------------------------------------------------
# export + verification
# --------------------------------------------------------------------------
def export_onnx(model, name: str):
    import onnx
    import torch

    model.eval()
    dummy = torch.zeros(2, 1, 8, 8)
    fd, tmp = tempfile.mkstemp(dir=OUT_DIR, prefix=f".{name}.", suffix=".export.onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Legacy TorchScript exporter (dynamo=False): gives readable, scoped
            # node names (/features/conv1/Conv).  training=PRESERVE with the model
            # in eval mode exports inference-mode BatchNormalization nodes and
            # skips the eval peephole pass that would fold BN into the Conv.
            torch.onnx.export(
                model,
                (dummy,),
                tmp,
                dynamo=False,
                export_params=True,
                opset_version=OPSET,
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.PRESERVE,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
            )
        proto = onnx.load(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return proto


def rename_anonymous_initializers(proto, model):
    """The exporter stores nn.Linear weights used by MatMul pre-transposed under
    anonymous names (``onnx::MatMul_123``).  Give them readable names
    (``<module>.weight_T``) by matching values against the torch weights."""
    from onnx import numpy_helper

    candidates = []
    for mod_name, mod in model.named_modules():
        if hasattr(mod, "weight") and getattr(mod, "weight") is not None and mod.weight.dim() == 2:
            candidates.append((f"{mod_name}.weight_T", mod.weight.detach().numpy().T))
    taken = {t.name for t in proto.graph.initializer}
    renames = {}
    for init in proto.graph.initializer:
        if not init.name.startswith("onnx::"):
            continue
        arr = numpy_helper.to_array(init)
        for new_name, ref in candidates:
            if new_name not in taken and arr.shape == ref.shape and np.array_equal(arr, ref):
                renames[init.name] = new_name
                taken.add(new_name)
                break
    for init in proto.graph.initializer:
        if init.name in renames:
            init.name = renames[init.name]
    for node in proto.graph.node:
        for i, inp in enumerate(node.input):
            if inp in renames:
                node.input[i] = renames[inp]
    for vi in list(proto.graph.value_info) + list(proto.graph.input):
        if vi.name in renames:
            vi.name = renames[vi.name]
    leftovers = [t.name for t in proto.graph.initializer if t.name.startswith("onnx::")]
    if leftovers:
        print(f"note: anonymous initializers left: {leftovers}")
    return proto


def clean_graph(proto):
    """Drop Identity nodes that only alias initializers and unused nodes, then
    make every node name non-empty and unique."""
    graph = proto.graph
    inits = {t.name for t in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    alias = {}
    keep = []
    for node in graph.node:
        if (
            node.op_type == "Identity"
            and node.input[0] in inits
            and node.output[0] not in graph_outputs
        ):
            alias[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    for node in keep:
        for i, inp in enumerate(node.input):
            while inp in alias:
                inp = alias[inp]
            node.input[i] = inp
    # dead-code elimination (e.g. unused Constant nodes left by tracing)
    graph_outputs = {o.name for o in graph.output}
    while True:
        consumed = {i for n in keep for i in n.input} | graph_outputs
        live = [n for n in keep if any(o in consumed for o in n.output)]
        if len(live) == len(keep):
            break
        keep = live
    del graph.node[:]
    graph.node.extend(keep)

    seen = set()
    counters = collections.Counter()
    for node in graph.node:
        base = node.name or f"/{node.op_type}"
        name = base
        while name in seen:
            counters[base] += 1
            name = f"{base}_{counters[base]}"
        node.name = name
        seen.add(name)

    # drop initializers that are no longer referenced
    used = {i for n in graph.node for i in n.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return proto


def finalize_proto(proto, name: str, meta: dict):
    import onnx

    proto.producer_name = "trt-workbench sample_models/build.py (torch.onnx)"
    proto.doc_string = f"trt-workbench sample model {name}; see {name}.md"
    del proto.metadata_props[:]
    for k, v in meta.items():
        p = proto.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(inferred, full_check=True)
    return inferred


def ort_logits(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def verify(model, model_bytes: bytes, x_eval: np.ndarray, y_eval: np.ndarray):
    import torch

    with torch.no_grad():
        ref = model(torch.from_numpy(x_eval)).numpy()
    got = ort_logits(model_bytes, x_eval)
    max_diff = float(np.max(np.abs(ref - got)))
    if max_diff > 1e-4:
        raise RuntimeError(f"ONNX Runtime vs torch mismatch: max |diff| = {max_diff:.3g}")
    # different batch size exercises the dynamic batch dimension
    got1 = ort_logits(model_bytes, x_eval[:1])
    if got1.shape != (1, 10) or float(np.max(np.abs(got1 - ref[:1]))) > 1e-4:
        raise RuntimeError("batch-1 inference mismatch")
    torch_acc = float(np.mean(ref.argmax(1) == y_eval))
    ort_acc = float(np.mean(got.argmax(1) == y_eval))
    if np.any(ref.argmax(1) != got.argmax(1)):
        raise RuntimeError("torch and ONNX Runtime top-1 predictions differ")
    return ort_acc, torch_acc, max_diff


# --------------------------------------------------------------------------
# model cards
# --------------------------------------------------------------------------
def op_histogram(proto) -> collections.Counter:
    return collections.Counter(n.op_type for n in proto.graph.node)


def md_table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_card(info: dict) -> None:
    proto = info["proto"]
    ops = op_histogram(proto)
    node_rows = [(i, f"`{n.name}`", n.op_type) for i, n in enumerate(proto.graph.node)]
    versions = info["versions"]
    text = f"""# {info['name']}

{info['summary']}

| | |
|---|---|
| File | `{info['name']}.onnx` ({info['onnx_size']:,} bytes, self-contained, sha256 `{info['onnx_sha'][:16]}…`) |
| Task | 10-class handwritten digit classification (0-9) |
| Input | `{INPUT_NAME}`: float32 `[{BATCH_DIM}, 1, 8, 8]` |
| Output | `{OUTPUT_NAME}`: float32 `[{BATCH_DIM}, 10]` (raw logits, class = argmax) |
| ONNX opset | {OPSET} (ai.onnx), IR version {proto.ir_version} |
| Parameters | {info['params']:,} trainable |
| **FP32 eval top-1 (ONNX Runtime)** | **{info['ort_acc'] * 100:.2f}%** ({info['correct']}/{info['n_eval']}) |
| torch vs ORT max abs logit diff | {info['max_diff']:.2e} |

## Architecture

{info['arch']}

## Input preprocessing

`load_digits` pixels are integers 0..16. The model expects
`x = pixels.reshape(N, 1, 8, 8).astype(float32) / 16.0`, i.e. values in [0, 1],
no mean/std normalization. The `input` arrays in `{info['name']}.calib.npz` and
`{info['name']}.eval.npz` are already preprocessed this way.

## Dataset and license

{DATASET_TEXT}

Deterministic disjoint split (numpy `default_rng({SEED})` permutation of the
1797 samples; identical images would be kept in one split, there are none):

| split | samples | use |
|---|---|---|
| train | {info['n_train']} | training only (not shipped) |
| calib | {info['n_calib']} | `{info['name']}.calib.npz` - INT8 calibration; not used for training |
| eval | {info['n_eval']} | `{info['name']}.eval.npz` - reported accuracy; never used for training or model selection |

Each `.npz` holds `input` (float32 `[N, 1, 8, 8]`, preprocessed) and `labels` (int64 `[N]`).

## Training

{info['training']}

## Export

`torch.onnx.export(..., dynamo=False, opset_version={OPSET}, do_constant_folding=True,
training=TrainingMode.PRESERVE)` with the model in eval mode, dynamic axis 0 named
`{BATCH_DIM}` on `{INPUT_NAME}` and `{OUTPUT_NAME}`. The legacy TorchScript exporter is used
because it produces readable scoped node names. {info['export_note']}
After export, Identity nodes that merely alias de-duplicated initializers and
unused (dead) nodes are removed, pre-transposed MatMul weights get readable names
(`<module>.weight_T` instead of `onnx::MatMul_N`), and every node name is checked
to be non-empty and unique. The model
passes `onnx.checker.check_model(full_check=True)` and strict ONNX shape inference;
ONNX Runtime (CPU) outputs match torch within 1e-4 and give the same top-1.

### Op types in the graph

{md_table(sorted(ops.items()), ["op_type", "count"])}

### Nodes

{md_table(node_rows, ["#", "name", "op_type"])}

## Rebuild

```
python sample_models/build.py
```

Needs (dev only) torch {versions['torch']} (CPU; `pip install torch==2.13.0`), onnx {versions['onnx']},
onnxruntime {versions['onnxruntime']}, scikit-learn {versions['sklearn']}, numpy {versions['numpy']};
built with Python {versions['python']}. `onnxscript` is not needed (the legacy exporter is used).
Training is seeded and limited to 2 threads; rebuilding with the same versions
on the same platform should reproduce the files (different CPUs/BLAS builds may
change the last bits of the weights and therefore the file hash).
"""
    _atomic_write_text(OUT_DIR / f"{info['name']}.md", text)


def write_readme(infos) -> None:
    rows = [
        (
            f"[`{i['name']}`]({i['name']}.md)",
            i["kind"],
            f"{i['params']:,}",
            f"{i['onnx_size'] / 1024:.0f} KiB",
            f"{i['ort_acc'] * 100:.2f}%",
            ", ".join(i["key_ops"]),
        )
        for i in infos
    ]
    table = md_table(rows, ["model", "type", "params", "size", "eval top-1 (ORT FP32)", "notable ops"])
    text = f"""# Sample models

Small, real models for trying out trt-workbench without downloading anything.
Both are trained on scikit-learn's bundled `load_digits` data (8x8 handwritten
digits, 10 classes; BSD-3 via scikit-learn, originally UCI optdigits, CC BY 4.0).

{table}

All models: ONNX opset {OPSET}, input `{INPUT_NAME}` float32 `[{BATCH_DIM}, 1, 8, 8]` with pixel
values scaled to [0, 1] (raw 0..16 divided by 16), output `{OUTPUT_NAME}` float32 `[{BATCH_DIM}, 10]`.

Per model `<name>`:

- `<name>.onnx` - the model (self-contained, no external data)
- `<name>.calib.npz` - {N_CALIB} calibration samples (`input`, `labels`)
- `<name>.eval.npz` - {N_EVAL} held-out evaluation samples (`input`, `labels`)
- `<name>.md` - model card (architecture, preprocessing, license, accuracy, node list)

The calib and eval splits are disjoint from each other and from the training split,
and identical for both models.

Rebuild everything (a minute or two on 2 CPU cores; needs dev-only torch, onnx,
onnxruntime, scikit-learn, numpy):

```
python sample_models/build.py
```

Checked by `tests/test_sample_models.py` (no torch needed).
"""
    _atomic_write_text(OUT_DIR / "README.md", text)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main() -> int:
    import onnx
    import onnxruntime
    import sklearn
    import torch

    t_start = time.time()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    np.random.seed(SEED)
    torch.manual_seed(SEED)

    versions = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }

    splits = load_splits()
    x_tr, y_tr = splits["train"]
    x_cal, y_cal = splits["calib"]
    x_ev, y_ev = splits["eval"]
    print(f"split sizes: train={len(y_tr)} calib={len(y_cal)} eval={len(y_ev)}")

    DigitsCNN, DigitsTransformer = build_models()

    specs = [
        dict(
            name="digits_cnn",
            kind="CNN",
            cls=DigitsCNN,
            min_acc=0.98,
            train=dict(epochs=40, lr=1e-2, weight_decay=1e-4, batch_size=64, shift_p=0.5),
            summary=(
                "Small convolutional classifier for 8x8 handwritten digits with BatchNorm, "
                "a depthwise (grouped) 3x3 conv, pointwise 1x1 convs, MaxPool, "
                "GlobalAveragePool and a Gemm classifier head."
            ),
            arch="""| # | module | layer | output shape |
|---|---|---|---|
| 1 | `features.conv1` | Conv 3x3, 1->32, pad 1, no bias | 32x8x8 |
| 2 | `features.bn1` + `relu1` | BatchNorm + ReLU | 32x8x8 |
| 3 | `features.dwconv2` | depthwise Conv 3x3, 32->32, group=32, pad 1 | 32x8x8 |
| 4 | `features.bn2` + `relu2` | BatchNorm + ReLU | 32x8x8 |
| 5 | `features.pwconv2` | pointwise Conv 1x1, 32->64 | 64x8x8 |
| 6 | `features.bn3` + `relu3` | BatchNorm + ReLU | 64x8x8 |
| 7 | `features.pool1` | MaxPool 2x2 stride 2 | 64x4x4 |
| 8 | `features.dwconv3` | depthwise Conv 3x3, 64->64, group=64, pad 1 | 64x4x4 |
| 9 | `features.bn4` + `relu4` | BatchNorm + ReLU | 64x4x4 |
| 10 | `features.pwconv3` | pointwise Conv 1x1, 64->96 | 96x4x4 |
| 11 | `features.bn5` + `relu5` | BatchNorm + ReLU | 96x4x4 |
| 12 | `features.gap` | global average pool (GlobalAveragePool) | 96x1x1 |
| 13 | flatten, `dropout` (p=0.2, train only), `classifier` | Flatten + Linear 96->10 (Gemm) | 10 |""",
            training_extra="Augmentation: with probability 0.5 each training image is shifted by a "
            "random integer offset in [-1, 1] pixels in x and y (zero fill).",
            export_note="BatchNorm is **not** folded: the graph contains one "
            "BatchNormalization node (inference mode, running statistics) after each Conv.",
            key_ops=["Conv (group>1, 1x1)", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Gemm"],
        ),
        dict(
            name="digits_transformer",
            kind="Transformer encoder",
            cls=DigitsTransformer,
            min_acc=0.95,
            train=dict(epochs=120, lr=3e-3, weight_decay=5e-2, batch_size=64, shift_p=0.5),
            summary=(
                "Tiny ViT-style transformer classifier for 8x8 handwritten digits: each image "
                "row is a token (8 tokens x 8 pixels), linear embedding + learned positional "
                "embedding, 2 pre-LN encoder blocks with explicit MatMul/Softmax self-attention, "
                "LayerNormalization and exact (erf) GELU, mean pooling and a linear head."
            ),
            arch="""| # | module | layer | output shape |
|---|---|---|---|
| 1 | - | reshape `[B,1,8,8]` -> `[B,8,8]` (8 row tokens x 8 pixels) | 8x8 |
| 2 | `embed` + `pos_embed` | Linear 8->64 (MatMul+Add) + learned positional embedding `[1,8,64]` | 8x64 |
| 3 | `blocks.0`, `blocks.1` | 2 x pre-LN encoder block (below) | 8x64 |
| 4 | `norm` | LayerNorm(64) | 8x64 |
| 5 | - | mean over tokens (ReduceMean) | 64 |
| 6 | `head` | Linear 64->10 (Gemm) | 10 |

Encoder block (`blocks.N`), dim 64, 4 heads of 16, MLP 128, dropout 0.1 (train only):

- `x = x + attn.proj(softmax(Q K^T / sqrt(16)) V)` with `Q, K, V` from `attn.qkv`
  (Linear 64->192) applied to `ln1(x)`; attention is written as
  `MatMul -> Mul(scale) -> Softmax -> MatMul` (no fused attention op).
- `x = x + mlp.fc2(GELU(mlp.fc1(ln2(x))))` with `fc1` 64->128, `fc2` 128->64.""",
            training_extra="Augmentation: with probability 0.5 each training image is shifted by a "
            "random integer offset in [-1, 1] pixels in x and y (zero fill).",
            export_note="LayerNorm exports as a single `LayerNormalization` node (opset 17). "
            "The ONNX `Gelu` op only exists from opset 20, so at opset 17 GELU is exported as "
            "the exact erf formulation `0.5 * x * (1 + Erf(x / sqrt(2)))` "
            "(Div, Erf, Add, Mul, Mul nodes under `/blocks/blocks.N/mlp/gelu/`).",
            key_ops=["MatMul", "Softmax", "LayerNormalization", "Erf (GELU)"],
        ),
    ]

    infos = []
    for i, spec in enumerate(specs):
        name = spec["name"]
        print(f"[{name}] training ...", flush=True)
        torch.manual_seed(SEED + i)
        model = spec["cls"]()
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        t0 = time.time()
        train_model(model, x_tr, y_tr, seed=SEED + i, **spec["train"])
        train_s = time.time() - t0
        print(f"[{name}] trained in {train_s:.1f}s, params={params}", flush=True)

        proto = clean_graph(rename_anonymous_initializers(export_onnx(model, name), model))
        # first pass verification on the cleaned graph (before metadata)
        ort_acc, torch_acc, max_diff = verify(model, proto.SerializeToString(), x_ev, y_ev)
        meta = {
            "description": spec["summary"],
            "preprocessing": "x = pixels.reshape(N,1,8,8).astype(float32) / 16.0  (load_digits pixels 0..16)",
            "labels": "0,1,2,3,4,5,6,7,8,9",
            "dataset": "sklearn.datasets.load_digits (UCI optdigits test set); BSD-3 via scikit-learn, CC BY 4.0 (UCI)",
            "eval_top1_fp32_onnxruntime": f"{ort_acc:.4f}",
            "eval_samples": str(len(y_ev)),
            "source": "sample_models/build.py",
            "torch_version": torch.__version__,
        }
        proto = finalize_proto(proto, name, meta)
        model_bytes = proto.SerializeToString()
        ort_acc2, _, max_diff2 = verify(model, model_bytes, x_ev, y_ev)
        assert ort_acc2 == ort_acc
        max_diff = max(max_diff, max_diff2)
        if len(model_bytes) >= 1_000_000:
            raise RuntimeError(f"{name}.onnx is too large: {len(model_bytes)} bytes")
        if ort_acc < spec["min_acc"]:
            raise RuntimeError(f"{name}: eval top-1 {ort_acc:.4f} < required {spec['min_acc']}")
        ops = op_histogram(proto)
        if name == "digits_cnn":
            spec["export_note"] = (
                spec["export_note"]
                if ops.get("BatchNormalization")
                else "BatchNorm was folded into the preceding Conv by the exporter."
            )
        print(
            f"[{name}] ORT eval top-1 = {ort_acc:.4f} (torch {torch_acc:.4f}), "
            f"max|diff| = {max_diff:.2e}, size = {len(model_bytes)} bytes",
            flush=True,
        )

        _atomic_write_bytes(OUT_DIR / f"{name}.onnx", model_bytes)
        _atomic_write_bytes(
            OUT_DIR / f"{name}.calib.npz", _npz_bytes(**{INPUT_NAME: x_cal, "labels": y_cal})
        )
        _atomic_write_bytes(
            OUT_DIR / f"{name}.eval.npz", _npz_bytes(**{INPUT_NAME: x_ev, "labels": y_ev})
        )

        tr = spec["train"]
        training = (
            f"AdamW (lr {tr['lr']}, weight decay {tr['weight_decay']}) with a one-cycle LR schedule, "
            f"{tr['epochs']} epochs, batch size {tr['batch_size']}, cross-entropy with label "
            f"smoothing 0.05, on the {len(y_tr)}-sample train split only; the final epoch's "
            f"weights are exported (no early stopping / no checkpoint selection). "
            f"{spec['training_extra']} Seeds fixed (`{SEED}+{i}`), `torch.set_num_threads(2)`, "
            f"`torch.use_deterministic_algorithms(True)`. torch {torch.__version__}; "
            f"training takes well under a minute on 2 CPU threads."
        )
        info = dict(
            name=name,
            kind=spec["kind"],
            summary=spec["summary"],
            arch=spec["arch"],
            training=training,
            export_note=spec["export_note"],
            key_ops=spec["key_ops"],
            proto=proto,
            params=params,
            ort_acc=ort_acc,
            correct=int(round(ort_acc * len(y_ev))),
            n_eval=len(y_ev),
            n_calib=len(y_cal),
            n_train=len(y_tr),
            max_diff=max_diff,
            train_s=train_s,
            onnx_size=len(model_bytes),
            onnx_sha=_sha256(model_bytes),
            versions=versions,
        )
        write_card(info)
        infos.append(info)

    write_readme(infos)
    print(f"done in {time.time() - t_start:.1f}s; wrote files to {OUT_DIR}")
    for info in infos:
        convs = [n.name for n in info["proto"].graph.node if n.op_type == "Conv"]
        if convs:
            print(f"[{info['name']}] Conv nodes: {convs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
