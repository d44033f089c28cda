"""The trtexec command equivalent to a build, and reading one back."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from workbench.backends.tensorrt.recipe import (
    BuildRecipe,
)
from workbench.backends.tensorrt.shapes import (
    ShapeRange,
)


def format_dims(dims: Sequence[int]) -> str:
    """``[1, 3, 224, 224]`` -> ``"1x3x224x224"`` (trtexec's shape syntax)."""
    return "x".join(str(int(d)) for d in dims)

def format_shapes_spec(shapes: Mapping[str, Sequence[int]]) -> str:
    """trtexec's ``name:dims,name:dims`` shape spec; names with ``:`` or ``,`` are single-quoted."""
    parts = []
    for name, dims in shapes.items():
        label = f"'{name}'" if ":" in name or "," in name else name
        parts.append(f"{label}:{format_dims(dims)}")
    return ",".join(parts)

def parse_shapes_spec(text: str) -> dict[str, tuple[int, ...]]:
    """Read trtexec's ``name:dims,name:dims`` shape spec back (the inverse of :func:`format_shapes_spec`).

    Args:
        text: E.g. ``"x:1x3x32x320,'a:b':2x1x128"``; a name holding ``:`` or ``,`` is single-quoted;
            ``name:`` (no dims) is a scalar.

    Returns:
        Input name -> dims, in the order given.

    Raises:
        ValueError: A part without ``name:``, a dim that is not a whole number of at least 1,
            or a name given twice; the message quotes the part.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    rest = text.strip()
    while rest:
        if rest.startswith("'"):
            end = rest.find("'", 1)
            if end < 0 or rest[end + 1:end + 2] != ":":
                raise ValueError(f"shape spec {text!r}: a quoted name needs a closing quote and ':' after it")
            name, rest = rest[1:end], rest[end + 2:]
        else:
            name, colon, rest = rest.partition(":")
            if not colon or not name.strip() or "," in name:
                raise ValueError(f"shape spec {text!r}: expected name:dims such as x:1x3x224x224, got {name!r}")
            name = name.strip()
        dims_text, _, rest = rest.partition(",")
        try:
            dims = tuple(int(d) for d in dims_text.strip().split("x")) if dims_text.strip() else ()
        except ValueError:
            raise ValueError(f"shape spec {text!r}: dims of {name!r} must be whole numbers joined by 'x', "
                             f"got {dims_text!r}") from None
        if any(d < 1 for d in dims):
            raise ValueError(f"shape spec {text!r}: every dim of {name!r} must be at least 1, got {dims_text!r}")
        if name in shapes:
            raise ValueError(f"shape spec {text!r}: {name!r} is given twice")
        shapes[name] = dims
        rest = rest.strip()
    if not shapes:
        raise ValueError("empty shape spec; give name:dims such as x:1x3x224x224")
    return shapes

def format_mib(value: float) -> str:
    """MiB for ``--memPoolSize`` without a unit suffix (trtexec's default unit is MiB in every
    release; suffixes only exist since 10.x)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"

def trtexec_command(
    model_path,
    recipe: BuildRecipe,
    profile: Mapping[str, ShapeRange],
    *,
    engine_path=None,
    timing_cache=None,
    export_prefix=None,
    trtexec: str = "trtexec",
    cuda_graph: bool = False,
) -> list[str]:
    """The trtexec command line that builds the same engine and exports what the workbench shows.

    Args:
        model_path: The ONNX file.
        recipe: The recipe.
        profile: The optimization profile (dynamic inputs only; trtexec takes static inputs'
            shapes from the model).
        engine_path: Where trtexec saves the engine (``--saveEngine``); None omits it.
        timing_cache: The timing cache file (``--timingCacheFile``); None omits it.
        export_prefix: Path prefix of the exported ``layers.json``, ``profile.json`` and
            ``times.json`` (``--exportLayerInfo/--exportProfile/--exportTimes``), e.g.
            ``folder/"trtexec."``; None omits them.
        trtexec: The trtexec executable.
        cuda_graph: Time with a CUDA graph (``--useCudaGraph``).

    Returns:
        argv, ready for :func:`subprocess.run` (``shlex.join`` it to print).
    """
    argv = [trtexec, f"--onnx={model_path}", "--stronglyTyped"]
    if profile:
        argv += [
            f"--minShapes={format_shapes_spec({n: r.min for n, r in profile.items()})}",
            f"--optShapes={format_shapes_spec({n: r.opt for n, r in profile.items()})}",
            f"--maxShapes={format_shapes_spec({n: r.max for n, r in profile.items()})}",
        ]
    argv.append(f"--builderOptimizationLevel={int(recipe.optimization_level)}")
    if recipe.workspace_mib is not None:
        argv.append(f"--memPoolSize=workspace:{format_mib(recipe.workspace_mib)}")
    if not recipe.tf32:
        argv.append("--noTF32")
    if timing_cache is not None:
        argv.append(f"--timingCacheFile={timing_cache}")
    argv.append("--profilingVerbosity=detailed")
    if engine_path is not None:
        argv.append(f"--saveEngine={engine_path}")
    if export_prefix is not None:
        argv += [
            f"--exportLayerInfo={export_prefix}layers.json",
            f"--exportProfile={export_prefix}profile.json",
            f"--exportTimes={export_prefix}times.json",
            # The per-layer profiler synchronizes after every layer; a separate run keeps it
            # out of the end-to-end timings (and trtexec then prints its performance summary).
            "--separateProfileRun",
        ]
    if cuda_graph:
        argv.append("--useCudaGraph")
    return argv

def parse_trtexec_argv(argv: Sequence[str]) -> dict[str, str]:
    """Split trtexec arguments the way trtexec does: ``--name=value`` at the first ``=``.

    Args:
        argv: Arguments (the executable, if first, is skipped).

    Returns:
        ``{"--name": value}``; a flag without ``=`` has the value ``""``.
    """
    flags = {}
    for arg in argv:
        if not arg.startswith("-"):
            continue
        name, _, value = arg.partition("=")
        flags[name] = value
    return flags

# against the real TensorRT 8.5 log in tests wherever 8.5 already had the flag.
TRTEXEC_ECHO: dict[str, tuple[str, str, Any, str | None]] = {
    "--onnx": ("Model Options", "Model", None, None),
    "--saveEngine": ("Build Options", "Save engine", None, ""),
    "--timingCacheFile": ("Build Options", "timingCacheFile", None, ""),
    "--profilingVerbosity": (
        "Build Options",
        "Profiling verbosity",
        # printed as the ProfilingVerbosity enum value: kLAYER_NAMES_ONLY 0, kNONE 1, kDETAILED 2
        {"layer_names_only": "0", "none": "1", "detailed": "2"},
        "0",
    ),
    "--separateProfileRun": ("Inference Options", "Separate profiling", "Enabled", "Disabled"),
    "--useCudaGraph": ("Inference Options", "CUDA Graph", "Enabled", "Disabled"),
    "--exportTimes": ("Reporting Options", "Export timing to JSON file", None, ""),
    "--exportProfile": ("Reporting Options", "Export profile to JSON file", None, ""),
    # Since 8.6 (absent from the 8.5 log); the default value is not predicted.
    "--builderOptimizationLevel": ("Build Options", "BuilderOptimizationLevel", None, None),
    # Since the strongly typed networks of 9.x/10.x: "Precision: Strongly Typed".
    "--stronglyTyped": ("Build Options", "Precision", "Strongly Typed", None),
}

TRTEXEC_NOT_ECHOED = {
    "--exportLayerInfo": "spelled as in the real TensorRT 8.5 command line (yolo-int8-trtexec-8.5/trt.out)",
    "--noTF32": "parsed as a negative option (getAndDelNegOption) in sampleOptions.cpp; not printed",
    "--minShapes": "echoed together with --optShapes/--maxShapes as 'Input build shape' (see trtexec_echo)",
    "--optShapes": "see --minShapes",
    "--maxShapes": "see --minShapes",
    "--memPoolSize": "echoed as 'Memory Pools: workspace: N MiB, ...' (see trtexec_echo)",
}

def trtexec_echo(argv: Sequence[str]) -> dict[tuple[str, str], str]:
    """Predict what trtexec prints in its option sections for these arguments.

    Only the options the workbench emits are predicted (:data:`TRTEXEC_ECHO` plus memory
    pools and build shapes). Values are compared with what
    :func:`~workbench.backends.tensorrt.trtexec_log.parse_trtexec_log` reads back.

    Args:
        argv: trtexec arguments.

    Returns:
        ``{(section, key): value}``. ``Memory Pools`` holds only the workspace part
        (``"workspace: 1024 MiB"`` or ``"workspace: default"``), the start of trtexec's line.
        Build shapes: with no shape flags, ``("Build Options", "Input build shapes") ==
        "model"``; with them, ``("Build Options", "Input build shape (profile 0)")`` holds
        ``name=min+opt+max`` of the first input (the format of trtexec 10.x).
    """
    flags = parse_trtexec_argv(argv)
    echo: dict[tuple[str, str], str] = {}
    for flag, (section, key, given, absent) in TRTEXEC_ECHO.items():
        if flag in flags:
            value = flags[flag]
            if isinstance(given, Mapping):
                echo[(section, key)] = given[value]
            else:
                echo[(section, key)] = value if given is None else given
        elif absent is not None:
            echo[(section, key)] = absent
    if "--timingCacheFile" in flags:
        echo[("Build Options", "timingCacheMode")] = "global"
    else:
        echo[("Build Options", "timingCacheMode")] = "local"
    pools = dict(p.split(":", 1) for p in flags.get("--memPoolSize", "").split(",") if ":" in p)
    workspace = pools.get("workspace")
    echo[("Build Options", "Memory Pools")] = (
        f"workspace: {format_mib(float(workspace))} MiB" if workspace else "workspace: default"
    )
    if "--optShapes" in flags:
        ranges = [flags.get(f, flags["--optShapes"]).split(",")[0] for f in ("--minShapes", "--optShapes", "--maxShapes")]
        name = ranges[1].rsplit(":", 1)[0]
        echo[("Build Options", "Input build shape (profile 0)")] = (
            f"{name}=" + "+".join(r.rsplit(":", 1)[1] for r in ranges)
        )
    else:
        echo[("Build Options", "Input build shapes")] = "model"
    return echo
