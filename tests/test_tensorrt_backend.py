"""Tests of the TensorRT backend (workbench.backends.tensorrt: build side and runtime side).

TensorRT and CUDA cannot be installed on the CPU-only machines these tests run on, and there is
no fake ``tensorrt`` module. The TensorRT-facing layer is thin; everything it relies on is a
pure function tested here on real data:

* real TensorRT/trtexec outputs in ../shared/fixtures/trt/ (README there): the verbose TensorRT
  8.5 trtexec log (option echo, device, TensorRT's own log lines), ResNet-18 layer
  information, per-layer profiles, per-inference times and the GPU properties of the A100
  they ran on, and the trtexec summary TREx parsed out of that run's log;
* the sample models in sample_models/ (profile choice, fingerprints, build plans);
* a real ONNX parser error report from a public TensorRT issue (quoted where used).

Tests that need TensorRT and a GPU are at the end. They skip only where TensorRT is not
installed or no NVIDIA GPU is visible; a TensorRT or pycuda that is installed but broken (an
import error, a CUDA that fails beside a visible GPU) makes them fail.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from workbench.backends import BackendUnavailable, get_backend, tensorrt_status
from workbench.backends.base import BenchmarkResult, Engine
from workbench.backends.tensorrt.build import (
    BuildLog,
    BuildProgress,
    BuildRecipe,
    BuildRecipeError,
    EngineLocation,
    ParserErrorInfo,
    Platform,
    ShapeRange,
    cache_key,
    check_compatible,
    choose_profile,
    engine_dir,
    engine_metadata,
    format_compute_capability,
    format_parser_errors,
    load_recipe,
    plan_build,
    polygraphy_profile,
    profile_to_dict,
    resolve_progress,
    timing_cache_path,
    trtexec_command,
)
from workbench.backends.tensorrt.cache import (
    EngineIncompatible,
    incompatibility,
    metadata_path_for,
    platform_from_device_properties,
    platform_from_trtexec_log,
)
from workbench.backends.tensorrt.engine_io import (
    EngineIO,
    batch_size_of,
    prepare_feed,
    random_inputs,
)
from workbench.backends.tensorrt.log import (
    LogRecord,
    error_code_name,
    severity_label,
    summarize_build_log,
)
from workbench.backends.tensorrt.progress import ProgressEvent, TqdmProgressBars
from workbench.backends.tensorrt.runtime import (
    InputShapeError,
    LayerTimeRecorder,
    as_live_table,
    benchmark_result,
    check_input_shape,
    inputs_for_engine,
    onnx_node_names,
    profile_document,
    trace_record,
)
from workbench.backends.tensorrt.shapes import profile_from_dict
from workbench.backends.tensorrt.timing import (
    event_record,
    keep_timing,
    profiled_runs,
    summarize_trace,
)
from workbench.backends.tensorrt.trt_json import (
    check_profile,
    import_trt,
    summarize_times,
)
from workbench.backends.tensorrt.trt_json_precision import normalize_dtype
from workbench.backends.tensorrt.trtexec import (
    TRTEXEC_ECHO,
    TRTEXEC_NOT_ECHOED,
    format_shapes_spec,
    parse_trtexec_argv,
    trtexec_echo,
)
from workbench.backends.tensorrt.trtexec_log import parse_trtexec_log, split_log_line
from workbench.model.fingerprint import model_files, sha256_files
from workbench.samples import sample_data_path, sample_path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trt"
YOLO_LOG = FIXTURES / "yolo-int8-trtexec-8.5" / "trt.out"
RESNET = FIXTURES / "resnet18-a100-fp32"
DETAILED_FOLDERS = [
    "resnet18-a100-fp32",
    "resnet18-a100-fp16",
    "resnet18-a100-qat",
    "resnet18-a100-qat-residual",
    "mobilenet-qat",
    "mobilenet-v2-residuals-qat",
]
NEEDS_GPU = "needs TensorRT and an NVIDIA GPU"


def read_json(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def yolo_log() -> dict:
    return parse_trtexec_log(YOLO_LOG, require_summary=False)


@pytest.fixture(scope="module")
def a100() -> dict:
    """The GPU properties TREx saved for the ResNet-18 runs (pycuda's device attributes)."""
    return read_json(RESNET / "engine.metadata.json")[0]


@pytest.fixture(scope="module")
def digits_plan():
    return plan_build(sample_path("digits_cnn"), "default", batch=8)


# ------------------------------------------------------------------------------------------
# Availability: imports without TensorRT, one-line message with the fix


def test_modules_import_without_tensorrt_or_pycuda():
    # A fresh interpreter where importing tensorrt or pycuda fails, as on a machine without them.
    code = (
        "import sys; sys.modules['tensorrt'] = None; sys.modules['pycuda'] = None\n"
        "import pkgutil, importlib, workbench.backends.tensorrt as pkg\n"
        "for m in pkgutil.iter_modules(pkg.__path__): importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "from workbench.backends.tensorrt.api_names import TRT_NAMES_USED\n"
        "assert 'tensorrt' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(len(TRT_NAMES_USED))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 20


def test_get_backend_tensorrt_here():
    status = tensorrt_status()
    if status is None:  # a GPU machine: the backend is there
        assert get_backend("tensorrt").name == "tensorrt"
        return
    with pytest.raises(BackendUnavailable) as info:
        get_backend("tensorrt")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install -e '.[gpu]'" in message and "import_trt" in message
    assert message == status


def test_build_and_load_say_why_without_tensorrt(tmp_path):
    from workbench.backends.tensorrt.build import build_engine
    from workbench.backends.tensorrt.runtime import load_engine

    status = tensorrt_status()
    if status is None:
        pytest.skip("TensorRT works here: the GPU tests below build and load engines")
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        build_engine(sample_path("digits_cnn"), root=tmp_path)
    engine = tmp_path / "engine.plan"
    engine.write_bytes(b"not an engine")
    with pytest.raises(BackendUnavailable, match=r"\.\[gpu\]"):
        load_engine(engine)


# ------------------------------------------------------------------------------------------
# Recipes


def test_recipe_presets_and_defaults():
    default = load_recipe()
    assert default == BuildRecipe() and default.optimization_level == 3 and default.tf32
    assert load_recipe("max-perf").optimization_level == 5
    assert load_recipe("fast-build").optimization_level == 1
    # Overrides win; None means "not given".
    recipe = load_recipe("max-perf", workspace_mib=512, max_batch=None)
    assert (recipe.optimization_level, recipe.workspace_mib, recipe.max_batch, recipe.name) == (5, 512, 32, "max-perf")


def test_recipe_from_file_and_mapping(tmp_path):
    path = tmp_path / "edge.json"
    path.write_text(json.dumps({"optimization_level": 4, "max_batch": 8, "shapes": {"input": {"opt": [2, 1, 8, 8]}}}))
    recipe = load_recipe(str(path))
    assert recipe.name == "edge" and recipe.max_batch == 8
    assert load_recipe(recipe.to_dict()) == recipe
    assert load_recipe(recipe) == recipe
    assert load_recipe({"tf32": False}).name == "custom"


def test_recipe_errors_name_the_fix(tmp_path):
    with pytest.raises(BuildRecipeError, match="preset"):
        load_recipe("turbo")
    with pytest.raises(BuildRecipeError, match="Precision is not a build option"):
        load_recipe({"fp16": True})
    with pytest.raises(BuildRecipeError, match="0-5"):
        load_recipe({"optimization_level": 7})
    with pytest.raises(BuildRecipeError, match="workspace_mib"):
        load_recipe({"workspace_mib": 0})
    with pytest.raises(BuildRecipeError, match="true or false"):
        load_recipe({"tf32": "no"})
    with pytest.raises(BuildRecipeError, match="numbers"):
        load_recipe({"max_batch": "many"})
    assert load_recipe({"optimization_level": "5", "workspace_mib": "512"}).key_dict()["workspace_mib"] == 512.0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BuildRecipeError, match="not JSON"):
        load_recipe(str(bad))


def test_recipe_key_ignores_name_and_timing_cache():
    a = load_recipe({"name": "a", "timing_cache": False})
    b = load_recipe({"name": "b", "timing_cache": True})
    assert a.key_dict() == b.key_dict()
    assert a.key_dict()["strongly_typed"] is True
    assert load_recipe({"tf32": False}).key_dict() != a.key_dict()


# ------------------------------------------------------------------------------------------
# Optimization profiles


def digits_inputs() -> list[dict]:
    from workbench.model import load_model

    return load_model(sample_path("digits_cnn")).summary.inputs


def test_profile_defaults_for_the_sample_model():
    inputs = digits_inputs()
    assert inputs[0]["shape"] == ["batch", 1, 8, 8]
    profile = choose_profile(inputs)
    assert profile == {"input": ShapeRange((1, 1, 8, 8), (1, 1, 8, 8), (32, 1, 8, 8))}


def test_profile_opt_is_the_batch_not_the_data_size():
    data = np.load(sample_data_path("digits_cnn", "eval"))
    # The whole evaluation split (360 samples) is data, not a batch: opt stays 1, max 32
    # (issue 11: 552 samples became the opt and max batch).
    whole = choose_profile(digits_inputs(), data_shapes={"input": data["input"].shape}, max_batch=32)
    assert whole["input"] == ShapeRange((1, 1, 8, 8), (1, 1, 8, 8), (32, 1, 8, 8))
    # The batch given is the opt; a batch above max_batch raises max with it.
    assert choose_profile(digits_inputs(), data_shapes={"input": data["input"].shape}, batch=24)["input"] == ShapeRange(
        (1, 1, 8, 8), (24, 1, 8, 8), (32, 1, 8, 8))
    assert choose_profile(digits_inputs(), batch=64, max_batch=16)["input"] == ShapeRange(
        (1, 1, 8, 8), (64, 1, 8, 8), (64, 1, 8, 8)
    )


def test_profile_rejects_data_that_does_not_fit():
    with pytest.raises(BuildRecipeError, match="fixes it at 8"):
        choose_profile(digits_inputs(), data_shapes={"input": (4, 1, 8, 9)})
    with pytest.raises(BuildRecipeError, match="rank 3"):
        choose_profile(digits_inputs(), data_shapes={"input": (4, 8, 8)})
    with pytest.raises(BuildRecipeError, match="not model inputs"):
        choose_profile(digits_inputs(), overrides={"image": {"opt": [1, 1, 8, 8]}})


def test_profile_non_batch_dynamic_dims_need_data_or_shapes():
    # A sequence model input: batch and sequence length both dynamic.
    specs = [{"name": "tokens", "dtype": "int64", "shape": ["batch", "sequence"]}]
    with pytest.raises(BuildRecipeError, match="dimension 1 \\('sequence'\\)"):
        choose_profile(specs)
    profile = choose_profile(specs, data_shapes={"tokens": (4, 128)}, batch=4)
    assert profile["tokens"] == ShapeRange((1, 128), (4, 128), (32, 128))
    explicit = choose_profile(specs, overrides={"tokens": {"min": [1, 16], "opt": [8, 128], "max": [16, 512]}})
    assert explicit["tokens"] == ShapeRange((1, 16), (8, 128), (16, 512))


def test_profile_overrides_are_checked():
    specs = digits_inputs()
    assert choose_profile(specs, overrides={"input": {"opt": [4, 1, 8, 8]}})["input"] == ShapeRange(
        (4, 1, 8, 8), (4, 1, 8, 8), (4, 1, 8, 8)
    )
    for override, message in [
        ({"min": [1, 1, 8, 8], "opt": [4, 1, 8, 8]}, "both 'min' and 'max'"),
        ({"min": [8, 1, 8, 8], "opt": [4, 1, 8, 8], "max": [16, 1, 8, 8]}, "min <= opt <= max"),
        ({"opt": [4, 3, 8, 8]}, "fixed at 1"),
        ({"opt": [4, 1, 8]}, "rank 3"),
        ({"max": [4, 1, 8, 8]}, "at least 'opt'"),
    ]:
        with pytest.raises(BuildRecipeError, match=message):
            choose_profile(specs, overrides={"input": override})


def test_profile_round_trips_and_converts_to_polygraphy():
    profile = choose_profile(digits_inputs(), batch=8)
    assert profile_from_dict(json.loads(json.dumps(profile_to_dict(profile)))) == profile
    poly = polygraphy_profile(profile)
    assert list(poly) == ["input"]
    assert (poly["input"].min, poly["input"].opt, poly["input"].max) == ((1, 1, 8, 8), (8, 1, 8, 8), (32, 1, 8, 8))
    assert profile["input"].contains((20, 1, 8, 8)) and not profile["input"].contains((33, 1, 8, 8))


# ------------------------------------------------------------------------------------------
# Model fingerprint


def test_fingerprint_covers_external_data(tmp_path):
    source = onnx.load(str(sample_path("digits_cnn")))
    path = tmp_path / "cnn.onnx"
    onnx.save_model(source, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="cnn.weights", size_threshold=0)
    files = model_files(path)
    assert [f.name for f in files] == ["cnn.onnx", "cnn.weights"]
    before = sha256_files(files)
    assert before == sha256_files(model_files(path))
    weights = bytearray((tmp_path / "cnn.weights").read_bytes())
    weights[0] ^= 0xFF  # the same graph with one weight changed is another engine
    (tmp_path / "cnn.weights").write_bytes(bytes(weights))
    assert sha256_files(model_files(path)) != before
    assert model_files(sample_path("digits_cnn")) == [sample_path("digits_cnn")]


# ------------------------------------------------------------------------------------------
# Platform, cache key, refusal (real GPU data: the A100 of the ResNet-18 runs, the Orin of the
# TensorRT 8.5.2 trtexec log)


def test_platform_from_real_device_data(a100, yolo_log):
    a = platform_from_device_properties(a100, "10.16.1.11")
    assert a == Platform("10.16.1.11", "NVIDIA A100 80GB PCIe", "8.0")
    orin = platform_from_trtexec_log(yolo_log)
    assert orin == Platform("8.5.2", "Orin", "8.7")
    attrs_only = {k: v for k, v in a100.items() if k != "ComputeCapability"}
    assert platform_from_device_properties(attrs_only, "10.16.1").compute_capability == "8.0"
    assert format_compute_capability((8, 6)) == format_compute_capability("8.6") == "8.6"
    assert a.tensorrt_release == "10.16.1"


def test_cache_key_changes_with_what_changes_the_engine(digits_plan, a100, yolo_log):
    a100_platform = platform_from_device_properties(a100, "10.16.1.11")
    orin = platform_from_trtexec_log(yolo_log)
    recipe, profile, sha = digits_plan.recipe, digits_plan.profile, digits_plan.model_sha256
    key = cache_key(sha, recipe, profile, a100_platform)
    assert len(key) == 64 and key == cache_key(sha, recipe, profile, a100_platform)
    # Another build of the same TensorRT release makes the same engines.
    assert key == cache_key(sha, recipe, profile, Platform("10.16.1.2", a100_platform.gpu_name, "8.0"))
    assert key == cache_key(sha, load_recipe({"name": "other", "timing_cache": False}), profile, a100_platform)
    different = {
        cache_key("0" * 64, recipe, profile, a100_platform),
        cache_key(sha, load_recipe("max-perf"), profile, a100_platform),
        cache_key(sha, load_recipe({"workspace_mib": 256}), profile, a100_platform),
        cache_key(sha, load_recipe({"tf32": False}), profile, a100_platform),
        cache_key(sha, recipe, choose_profile(digits_inputs(), batch=16), a100_platform),
        cache_key(sha, recipe, profile, orin),
        cache_key(sha, recipe, profile, Platform("11.1.0", a100_platform.gpu_name, "8.0")),
    }
    assert key not in different and len(different) == 7
    folder = engine_dir(Path("/w"), "digits cnn", key)
    assert folder == Path("/w") / f"digits-cnn-{key[:16]}"


def test_refuses_engine_from_another_gpu_with_rebuild_command(digits_plan, a100, yolo_log):
    built_on = platform_from_device_properties(a100, "8.5.2")  # the A100 with the log's release
    here = platform_from_trtexec_log(yolo_log)  # the Orin of the real log
    metadata = engine_metadata(
        digits_plan, built_on, cache_key(digits_plan.model_sha256, digits_plan.recipe, digits_plan.profile, built_on),
        trtexec_argv=digits_plan.trtexec_command(), build_seconds=12.5, log_summary={}, engine_bytes=1000,
    )
    metadata = json.loads(json.dumps(metadata))  # as read back from metadata.json
    message = incompatibility(metadata, here, engine_path="/ws/engine.plan")
    assert message.startswith("engine /ws/engine.plan was built for a NVIDIA A100 80GB PCIe with compute capability 8.0")
    assert "this machine has a Orin, compute capability 8.7" in message
    assert "TensorRT 8.5.2" not in message  # same release: only the GPU is named
    assert f"workbench build {digits_plan.model_path} --recipe default" in message
    with pytest.raises(EngineIncompatible, match="only runs with the TensorRT release"):
        check_compatible(metadata, here)
    assert incompatibility(metadata, built_on) is None
    assert incompatibility(metadata, Platform("8.5.2.2", built_on.gpu_name, "8.0")) is None


def test_refuses_engine_from_another_tensorrt(digits_plan, a100):
    built_on = platform_from_device_properties(a100, "10.16.1.11")
    metadata = engine_metadata(digits_plan, built_on, "k", trtexec_argv=[], build_seconds=None,
                               log_summary=None, engine_bytes=1)
    here = platform_from_device_properties(a100, "11.1.0.6")
    message = incompatibility(metadata, here)
    assert message.startswith("this engine was built for TensorRT 10.16.1.11 (this machine has 11.1.0.6)")
    assert "compute capability" not in message.split(". A TensorRT")[0]
    both = incompatibility(metadata, Platform("11.1.0", "Orin", "8.7"))
    assert "TensorRT 10.16.1.11" in both and "Orin" in both


def test_engine_files_and_metadata_lookup(tmp_path, digits_plan, a100):
    location = EngineLocation(tmp_path / "digits-cnn-0123")
    assert not location.is_complete()
    location.folder.mkdir()
    location.engine.write_bytes(b"plan")
    assert not location.is_complete()  # metadata is written last and marks completeness
    platform = platform_from_device_properties(a100, "10.16.1")
    metadata = engine_metadata(digits_plan, platform, "k" * 64, trtexec_argv=["trtexec"], build_seconds=1.0,
                               log_summary={"counts": {}}, engine_bytes=4)
    location.metadata.write_text(json.dumps(metadata))
    assert location.is_complete() and location.read_metadata()["cache_key"] == "k" * 64
    assert metadata_path_for(location.engine) == location.metadata
    loose = tmp_path / "other.engine"
    assert metadata_path_for(loose) == tmp_path / "other.engine.json"
    assert metadata["format"] == "trt-workbench-engine/1"
    assert metadata["recipe"]["name"] == "default" and metadata["profile"]["input"]["opt"] == [8, 1, 8, 8]


def test_timing_cache_path_per_platform(tmp_path, a100):
    a = platform_from_device_properties(a100, "10.16.1.11")
    path = timing_cache_path(a, root=tmp_path)
    assert path.parent == tmp_path and path.name == "trt-10.16.1-nvidia-a100-80gb-pcie-sm80-tf32.cache"
    assert timing_cache_path(Platform("10.16.1.2", a.gpu_name, "8.0"), root=tmp_path) == path
    assert timing_cache_path(a, tf32=False, root=tmp_path) != path


# ------------------------------------------------------------------------------------------
# trtexec equivalent, checked against the real trtexec 8.5 log's command line and option echo


def test_trtexec_command_for_the_sample_model(digits_plan, tmp_path):
    location = EngineLocation(tmp_path / "e")
    argv = digits_plan.trtexec_command(location, timing_cache=tmp_path / "t.cache")
    assert argv[0] == "trtexec"
    flags = parse_trtexec_argv(argv)
    assert flags["--onnx"] == str(sample_path("digits_cnn").resolve())
    assert flags["--stronglyTyped"] == ""
    assert (flags["--minShapes"], flags["--optShapes"], flags["--maxShapes"]) == (
        "input:1x1x8x8", "input:8x1x8x8", "input:32x1x8x8")
    assert flags["--builderOptimizationLevel"] == "3"
    assert flags["--profilingVerbosity"] == "detailed"
    assert flags["--saveEngine"] == str(location.folder / "trtexec.plan")  # beside ours, not over it
    assert flags["--timingCacheFile"] == str(tmp_path / "t.cache")
    assert flags["--exportLayerInfo"] == str(location.folder / "trtexec.layers.json")
    assert flags["--exportProfile"] == str(location.folder / "trtexec.profile.json")
    assert flags["--exportTimes"] == str(location.folder / "trtexec.times.json")
    assert "--separateProfileRun" in flags and "--memPoolSize" not in flags and "--noTF32" not in flags
    # No weak-typing precision flag: TensorRT 11 removed them, and 10.x disables them when strongly typed.
    assert not {"--fp16", "--int8", "--bf16", "--fp8", "--best"} & set(flags)
    custom = trtexec_command("m.onnx", load_recipe({"workspace_mib": 1536, "tf32": False, "optimization_level": 5}), {})
    assert custom == ["trtexec", "--onnx=m.onnx", "--stronglyTyped", "--builderOptimizationLevel=5",
                      "--memPoolSize=workspace:1536", "--noTF32", "--profilingVerbosity=detailed"]
    assert format_shapes_spec({"input:0": (1, 3), "mask": (1,)}) == "'input:0':1x3,mask:1"


def test_trtexec_flags_are_spelled_as_the_real_log(yolo_log, digits_plan, tmp_path):
    real = parse_trtexec_argv(yolo_log["argv"][1:])
    assert yolo_log["tensorrt_version"] == "8.5.2"
    # The real run used --name=value for these, exactly as the workbench writes them.
    for flag in ("--onnx", "--exportTimes", "--exportProfile", "--exportLayerInfo"):
        assert flag in real and real[flag], flag
    ours = parse_trtexec_argv(digits_plan.trtexec_command(EngineLocation(tmp_path), timing_cache=tmp_path / "c"))
    echoed_keys = {(s, k) for s, section in yolo_log["options"].items() for k in section}
    unknown_to_8_5 = set()
    for flag in ours:
        assert flag in TRTEXEC_ECHO or flag in TRTEXEC_NOT_ECHOED, f"{flag}: document what trtexec echoes"
        if flag in TRTEXEC_ECHO and TRTEXEC_ECHO[flag][:2] not in echoed_keys:
            unknown_to_8_5.add(flag)
    # Only the optimization level (TensorRT 8.6+) is newer than the real log; every other flag's
    # echo line is in it.
    assert unknown_to_8_5 == {"--builderOptimizationLevel"}


def test_trtexec_echo_predicts_the_real_log(yolo_log):
    predicted = trtexec_echo(yolo_log["argv"][1:])
    options = yolo_log["options"]
    compared = 0
    for (section, key), value in predicted.items():
        if section not in options or key not in options[section]:
            continue
        printed = options[section][key]
        if key == "Memory Pools":
            assert printed.startswith(value)
        else:
            assert printed == value, (section, key, printed, value)
        compared += 1
    assert compared >= 10
    assert predicted[("Model Options", "Model")] == "yolo_pytorch_quantized.onnx"
    assert predicted[("Reporting Options", "Export timing to JSON file")] == "times.json"
    assert predicted[("Build Options", "Input build shapes")] == "model"


def test_trtexec_echo_of_inference_flags_matches_a_real_run():
    # The ResNet-18 run used --separateProfileRun and --useCudaGraph (TREx parsed its echo).
    printed = read_json(RESNET / "engine.profile.metadata.json")["inference_options"]
    predicted = trtexec_echo(["--loadEngine=e", "--separateProfileRun", "--useCudaGraph"])
    assert predicted[("Inference Options", "Separate profiling")] == printed["Separate profiling"] == "Enabled"
    assert predicted[("Inference Options", "CUDA Graph")] == printed["CUDA Graph"] == "Enabled"


def test_trtexec_echo_of_build_flags_newer_than_the_log():
    # Formats from trtexec 10.x's printers (sampleOptions.cpp): no real 10.x log is available.
    argv = trtexec_command("m.onnx", load_recipe({"workspace_mib": 1024, "optimization_level": 5}),
                           {"input": ShapeRange((1, 3), (8, 3), (32, 3))}, timing_cache="t.cache")
    echo = trtexec_echo(argv)
    assert echo[("Build Options", "Precision")] == "Strongly Typed"
    assert echo[("Build Options", "BuilderOptimizationLevel")] == "5"
    assert echo[("Build Options", "Memory Pools")] == "workspace: 1024 MiB"
    assert echo[("Build Options", "timingCacheMode")] == "global"
    assert echo[("Build Options", "Input build shape (profile 0)")] == "input=1x3+8x3+32x3"
    assert echo[("Build Options", "Profiling verbosity")] == "2"


def test_plan_to_dict_is_json(digits_plan):
    data = json.loads(json.dumps(digits_plan.to_dict()))
    assert data["profile"] == {"input": {"min": [1, 1, 8, 8], "opt": [8, 1, 8, 8], "max": [32, 1, 8, 8]}}
    assert data["trtexec_command_line"].startswith("trtexec --onnx=")
    assert data["inputs"][0]["name"] == "input" and data["outputs"][0]["name"] == "logits"


def test_build_command_plans_from_real_data_without_tensorrt(tmp_path):
    from workbench.workflows.build import build_command

    eval_split = sample_data_path("digits_cnn", "eval")
    result = build_command(sample_path("digits_cnn"), "max-perf", data=eval_split, batch=16, plan_only=True)
    assert result["built"] is False
    plan = result["plan"]
    assert plan["profile"]["input"] == {"min": [1, 1, 8, 8], "opt": [16, 1, 8, 8], "max": [32, 1, 8, 8]}
    assert "--builderOptimizationLevel=5" in plan["trtexec_command"]
    json.dumps(result)
    if tensorrt_status() is not None:  # where TensorRT works, building is covered by the GPU tests
        with pytest.raises(BackendUnavailable, match="--plan-only"):
            build_command(sample_path("digits_cnn"), progress=None)


# ------------------------------------------------------------------------------------------
# Build progress (IProgressMonitor bookkeeping)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_phases_nest_and_count_steps():
    events: list[ProgressEvent] = []
    clock = FakeClock()
    progress = BuildProgress(events.append, clock=clock)
    progress.phase_start("Building engine", None, 3)
    progress.phase_start("Computing tactics", "Building engine", 4)
    clock.now += 2.0
    for step in range(4):
        assert progress.step_complete("Computing tactics", step) is True
    progress.phase_finish("Computing tactics")
    assert progress.step_complete("Building engine", 0)
    assert progress.active == [("Building engine", 0, 1, 3)]
    # TensorRT may finish a phase before reporting all its steps.
    progress.phase_finish("Building engine")
    assert progress.active == []
    kinds = [(e.kind, e.phase, e.depth, e.done, e.total) for e in events]
    assert kinds[:3] == [("start", "Building engine", 0, 0, 3), ("start", "Computing tactics", 1, 0, 4),
                         ("step", "Computing tactics", 1, 1, 4)]
    assert kinds[-1] == ("finish", "Building engine", 0, 1, 3)
    tactics_finish = next(e for e in events if e.kind == "finish" and e.phase == "Computing tactics")
    assert tactics_finish.fraction == 1.0 and tactics_finish.elapsed_s == 2.0
    assert tactics_finish.parent == "Building engine"
    assert [e.phase for e in progress.finished] == ["Computing tactics", "Building engine"]


def test_progress_cancel_and_robustness():
    def broken(event):
        raise RuntimeError("widget gone")

    progress = BuildProgress(broken)
    progress.phase_start("p", None, 2)
    assert progress.step_complete("p", 0) is True
    progress.cancel()
    assert progress.step_complete("p", 1) is False  # TensorRT stops the build
    assert progress.step_complete("never started", 0) is False
    progress.phase_finish("never started")
    assert len(progress.errors) == 3 and isinstance(progress.errors[0], RuntimeError)
    progress.phase_start("q", None, 1)
    # A step index past the phase's count is clamped to it.
    assert progress.step_complete("q", 5) is False and progress.active == [("p", 0, 2, 2), ("q", 0, 1, 1)]


def test_tqdm_bars_follow_the_phases():
    from tqdm import tqdm

    out = io.StringIO()
    bars = TqdmProgressBars(tqdm, file=out, mininterval=0)
    progress = BuildProgress(bars)
    progress.phase_start("Building engine", None, 2)
    progress.phase_start("Tactics", "Building engine", 5)
    progress.step_complete("Tactics", 2)
    assert bars.bars["Tactics"].n == 3
    progress.phase_finish("Tactics")
    progress.step_complete("Building engine", 1)
    progress.phase_finish("Building engine")
    assert bars.bars == {} and not progress.errors
    assert "Building engine" in out.getvalue() and "2/2" in out.getvalue()


def test_resolve_progress():
    assert resolve_progress(None) is None
    given = BuildProgress()
    assert resolve_progress(given) is given
    assert isinstance(resolve_progress("tqdm").callback, TqdmProgressBars)
    events = []
    resolve_progress(events.append).phase_start("x", None, 1)
    assert events[0].phase == "x"
    with pytest.raises(ValueError):
        resolve_progress(42)


# ------------------------------------------------------------------------------------------
# Build log capture, on TensorRT's own messages from the real 8.5 build log


def real_trt_messages() -> list[tuple[str, str]]:
    """(severity letter, message) of every TensorRT message in the real log: what its logger got."""
    messages = []
    for line in YOLO_LOG.read_text(encoding="utf-8", errors="replace").splitlines():
        severity, message = split_log_line(line)
        if severity and message.startswith("[TRT] "):
            messages.append((severity, message[len("[TRT] "):]))
    return messages


def test_build_log_records_real_messages():
    messages = real_trt_messages()
    log = BuildLog("VERBOSE")
    for letter, message in messages:
        log.log(letter, message)
    summary = log.summary()
    assert summary["counts"] == {"INTERNAL_ERROR": 0, "ERROR": 0, "WARNING": 0, "INFO": 113, "VERBOSE": 12555}
    assert summary["total_host_persistent_memory_bytes"] == 123840
    assert summary["total_device_persistent_memory_bytes"] == 13626368
    assert summary["total_scratch_memory_bytes"] == 89769472
    # The builder logs an estimate (10399819264) before block assignment, then the real figure.
    assert summary["total_activation_memory_bytes"] == 756727296
    assert (summary["peak_cpu_mib"], summary["peak_gpu_mib"]) == (79, 1047)
    assert summary["engine_size_mib"] == 18
    assert summary["local_timing_cache"] is True  # trtexec ran without --timingCacheFile
    # The captured text reads back with the trtexec log parser's line splitter.
    lines = log.text().splitlines()
    assert len(lines) == len(messages)
    assert [split_log_line(line) for line in lines[:50]] == [(s, "[TRT] " + m) for s, m in messages[:50]]


def test_build_log_filters_by_severity_and_keeps_errors():
    info = BuildLog()  # INFO and above, the default
    for letter, message in real_trt_messages():
        info.log(letter, message)
    assert len(info.records) == 113
    info.log("ERROR", "4: [network.cpp::validate::2633] Error Code 4: Internal Error (Network must have at least one output)")
    info.log(1, "same again")
    assert info.errors[0].startswith("4: [network.cpp")
    assert summarize_build_log(info.records)["errors"] == info.errors
    assert summarize_build_log([LogRecord("WARNING", "w")] * 3)["warnings"] == ["w"]


@pytest.mark.parametrize(
    "value,label",
    [("Severity.WARNING", "WARNING"), ("kVERBOSE", "VERBOSE"), (0, "INTERNAL_ERROR"), ("E", "ERROR"),
     ("info", "INFO"), ("F", "INTERNAL_ERROR")],
)
def test_severity_labels(value, label):
    assert severity_label(value) == label


def test_severity_label_of_enum_like_objects():
    class Severity:  # what pybind11 enums offer: a name property
        name = "WARNING"

    assert severity_label(Severity()) == "WARNING"
    with pytest.raises(ValueError):
        severity_label("LOUD")
    with pytest.raises(ValueError):
        severity_label(7)


# ------------------------------------------------------------------------------------------
# ONNX parser errors


# A real report (triton-inference-server/server issue #281): TensorRT's ParserError fields
# for a MatMul the parser refused, printed field by field.
REAL_PARSER_ERROR = ParserErrorInfo(
    code=error_code_name("ErrorCode.UNSUPPORTED_NODE"),
    desc="Assertion failed: dims.nbDims == 3",
    node=2,
    file="builtin_op_importers.cpp",
    line=1238,
    func="importMatMul",
)


def test_parser_errors_name_the_node(digits_plan):
    nodes = digits_plan.onnx_nodes
    message = format_parser_errors([REAL_PARSER_ERROR], "digits_cnn.onnx", nodes)
    lines = message.splitlines()
    assert lines[0] == "digits_cnn.onnx: TensorRT's ONNX parser failed with 1 error(s):"
    name, op = nodes[2]
    assert lines[1] == (
        f"  node 2 '{name}' ({op}): UNSUPPORTED_NODE: Assertion failed: dims.nbDims == 3 "
        "[builtin_op_importers.cpp:1238 in importMatMul]"
    )
    assert lines[-1].startswith("Fix:")


def test_parser_errors_prefer_tensorrt_names_and_handle_graph_errors():
    tensorrt_10 = ParserErrorInfo("UNSUPPORTED_NODE", "No importer registered for op: GridSampler", node=7,
                                  node_name="/grid/GridSample", node_operator="GridSampler")
    graph = ParserErrorInfo("UNSUPPORTED_NODE", "Assertion failed: convert_onnx_weights(initializer, &weights)",
                            node=-1, func="importInputs")
    message = format_parser_errors([tensorrt_10, graph], "m.onnx", [("a", "Conv")] * 10)
    assert "node 7 '/grid/GridSample' (GridSampler): UNSUPPORTED_NODE: No importer" in message
    assert "the graph (not a node: inputs or initializers): UNSUPPORTED_NODE" in message
    assert "[ in importInputs]" not in message and "[in importInputs]" in message

    class Code:
        name = "INVALID_GRAPH"

    assert error_code_name(Code()) == "INVALID_GRAPH"


# ------------------------------------------------------------------------------------------
# Layer table from inspector JSON, and per-layer profile aggregation (IProfiler)


@pytest.mark.parametrize("folder", DETAILED_FOLDERS)
def test_inspector_json_becomes_the_live_layer_table(folder):
    # The engine inspector writes the same JSON as --exportLayerInfo; the live path reads it
    # with import_trt and marks the rows as coming from the engine itself.
    document = read_json(FIXTURES / folder / "engine.graph.json")
    imported = import_trt(document)
    live = as_live_table(imported, {"engine": "e.plan", "tensorrt_version": "10.16.1"})
    assert len(live) == len(imported) > 20
    assert set(live["source"]) == {"tensorrt"}
    assert live.attrs["source"] == "tensorrt" and live.attrs["engine"] == "e.plan" and live.attrs["layers_file"] is None
    assert list(live["name"]) == list(imported["name"])
    assert list(live["onnx_nodes"]) == list(imported["onnx_nodes"])
    assert live.attrs["verbosity"] == "detailed"


def profiler_calls(profile_path, runs: int, seed: int = 0) -> list[list[tuple[str, float]]]:
    """IProfiler.report_layer_time calls for ``runs`` inferences of a real engine.

    Each layer's times are its real average (from trtexec's profile) plus and minus the same
    jitter on paired runs, so per-layer means equal trtexec's ``averageMs`` exactly and, with an
    even number of runs, medians equal them too.
    """
    rng = np.random.default_rng(seed)
    layers = read_json(profile_path)[1:]
    calls: list[list[tuple[str, float]]] = [[] for _ in range(runs)]
    for layer in layers:
        jitter = rng.uniform(0, 0.2, runs // 2) * layer["averageMs"]
        values = np.concatenate([layer["averageMs"] + jitter, layer["averageMs"] - jitter])
        for run, value in zip(calls, rng.permutation(values)):
            run.append((layer["name"], float(value)))
    return calls


@pytest.mark.parametrize("folder", DETAILED_FOLDERS)
def test_profiler_aggregation_reproduces_trtexec_profile(folder):
    real = read_json(FIXTURES / folder / "engine.profile.json")
    recorder = LayerTimeRecorder()
    recorder.record("ignored: before the first run", 1.0)
    for run in profiler_calls(FIXTURES / folder / "engine.profile.json", runs=20):
        recorder.begin_run()
        for name, ms in run:
            recorder.record(name, ms)
    recorder.stop()
    recorder.record("ignored: after stop", 1.0)
    document = profile_document(recorder.runs)
    assert document[0] == {"count": 20}
    assert [r["name"] for r in document[1:]] == [r["name"] for r in real[1:]]
    for ours, theirs in zip(document[1:], real[1:]):
        assert ours["averageMs"] == pytest.approx(theirs["averageMs"], rel=1e-9)
        assert ours["medianMs"] == pytest.approx(theirs["averageMs"], rel=1e-9)
        assert ours["timeMs"] == pytest.approx(20 * theirs["averageMs"], rel=1e-9)
        assert ours["percentage"] == pytest.approx(theirs["percentage"], abs=0.01)
    checks = check_profile(document[0]["count"], document[1:])
    assert checks["messages"] == []
    # Through the same importer as trtexec's files: same table, same shares.
    graph = FIXTURES / folder / "engine.graph.json"
    from_live = import_trt(graph, profile_json=document)
    from_trtexec = import_trt(graph, profile_json=FIXTURES / folder / "engine.profile.json")
    assert from_live.attrs["profile_mismatches"] == from_trtexec.attrs["profile_mismatches"]
    np.testing.assert_allclose(from_live["time_ms"], from_trtexec["time_ms"], rtol=1e-9)
    np.testing.assert_allclose(from_live["share"], from_trtexec["share"], rtol=1e-6)


def test_profile_document_definitions():
    runs = [{"conv": 1.0, "relu": 0.5}, {"conv": 3.0, "relu": 0.5}, {"conv": 2.0}]
    document = profile_document(runs)
    assert document[0] == {"count": 3}
    conv, relu = document[1:]
    assert (conv["timeMs"], conv["averageMs"], conv["medianMs"]) == (6.0, 2.0, 2.0)
    assert (relu["timeMs"], relu["averageMs"], relu["medianMs"]) == (1.0, 1.0 / 3, 0.5)  # missing run = 0 ms
    assert conv["percentage"] + relu["percentage"] == pytest.approx(100.0)
    recorder = LayerTimeRecorder()
    recorder.begin_run()
    recorder.record("a", 1.0)
    recorder.record("a", 2.0)  # a repeated name within a run is summed
    assert recorder.runs == [{"a": 3.0}]
    with pytest.raises(ValueError, match="no profiled"):
        profile_document([])


def test_profiled_runs_leave_warmup_out_of_a_real_profile():
    # A session of 3 warm-up and 20 recorded inferences of the real ResNet-18 engine: the
    # warm-up inferences report absurd times, and none of them may reach the document.
    path = RESNET / "engine.profile.json"
    real = read_json(path)
    recorded = profiler_calls(path, runs=20)
    warmup_calls = [[(r["name"], 1000.0) for r in real[1:]] for _ in range(3)]
    calls = warmup_calls + recorded
    recorder = LayerTimeRecorder()
    steps = []
    for index in profiled_runs(recorder, warmup=3, iterations=20):
        steps.append(index)
        assert recorder.active == (index >= 3)
        for name, ms in calls[index]:
            recorder.record(name, ms)
    assert steps == list(range(23)) and not recorder.active
    document = profile_document(recorder.runs)
    assert document[0] == {"count": 20}
    for ours, theirs in zip(document[1:], real[1:]):
        assert ours["name"] == theirs["name"]
        assert ours["averageMs"] == pytest.approx(theirs["averageMs"], rel=1e-9)
    # a negative warm-up counts as none
    recorder = LayerTimeRecorder()
    assert list(profiled_runs(recorder, warmup=-2, iterations=2)) == [0, 1] and len(recorder.runs) == 2


# ------------------------------------------------------------------------------------------
# Timing: trtexec's records and summary (ResNet-18 on an A100: 1600 exported inferences and
# trtexec's own printed summary of that run)


@pytest.fixture(scope="module")
def resnet_times() -> list[dict]:
    return read_json(RESNET / "engine.timing.json")


@pytest.fixture(scope="module")
def resnet_printed() -> dict:
    return read_json(RESNET / "engine.profile.metadata.json")


def warmup_ms_of(printed) -> float:
    duration = printed["inference_options"]["Duration"]  # "3s (+ 200ms warm up)"
    return float(duration.split("(+ ")[1].split("ms")[0])


def test_trace_summary_matches_trtexec(resnet_times, resnet_printed):
    printed = resnet_printed["performance_summary"]
    summary = summarize_trace(resnet_times, warmup_ms=warmup_ms_of(resnet_printed), percentiles=(99,))
    # trtexec exported the 100 warm-up inferences too and left them out of its summary.
    assert summary["warmups"] == 100 and summary["count"] == 1500
    assert summary["throughput_qps"] == pytest.approx(printed["Throughput"], abs=0.001)
    for ours, theirs in [("latency", "Latency"), ("gpu_compute_time", "GPU Compute Time"),
                         ("h2d_latency", "H2D Latency"), ("d2h_latency", "D2H Latency")]:
        stats = summary[ours]
        assert [stats["min_ms"], stats["max_ms"], stats["mean_ms"], stats["median_ms"], stats["percentiles_ms"][99.0]] == \
            pytest.approx(printed[theirs], abs=1e-5), ours
    assert summary["total_host_walltime_s"] == pytest.approx(printed["Total Host Walltime"], abs=1e-5)
    assert summary["total_gpu_compute_time_s"] == pytest.approx(printed["Total GPU Compute Time"], abs=1e-4)
    # Enqueue time is not comparable from the file: its timestamps are rounded to 0.01 ms at
    # this magnitude (e.g. 3205.29) while an enqueue takes about 0.005 ms.
    assert summary["enqueue_time"]["mean_ms"] == pytest.approx(printed["Enqueue Time"][2], abs=0.001)


def test_trace_records_have_trtexec_definitions(resnet_times):
    # Rebuild every real record from its timestamps: stage and latency times agree with trtexec's
    # up to the timestamps' rounding (0.01 ms at 3000 ms).
    for real in resnet_times:
        ours = trace_record(real["startH2dMs"], real["endH2dMs"], real["startComputeMs"], real["endComputeMs"],
                            real["startD2hMs"], real["endD2hMs"], real["startEnqMs"], real["endEnqMs"])
        assert set(ours) == set(real)
        for key in ("h2dMs", "computeMs", "d2hMs", "latencyMs"):
            assert ours[key] == pytest.approx(real[key], abs=0.0101), key
    ours = [trace_record(*[r[k] for k in ("startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs", "startD2hMs",
                                          "endD2hMs", "startEnqMs", "endEnqMs")]) for r in resnet_times]
    # The same records feed the importer's end-to-end summary.
    assert summarize_times(ours)["count"] == 1600


def test_benchmark_result_from_real_trace(resnet_times, resnet_printed):
    printed = resnet_printed["performance_summary"]
    batch = int(resnet_printed["inference_options"]["Input inference shape"].split("=")[1].split("x")[0])
    assert batch == 32
    result = benchmark_result(resnet_times, batch_size=batch, warmup=0, warmup_ms=200.0, settings={"cuda_graph": True})
    assert isinstance(result, BenchmarkResult) and result.backend == "tensorrt"
    assert result.iterations == 1500
    assert (result.min_ms, result.max_ms, result.median_ms, result.p99_ms) == pytest.approx(
        [printed["Latency"][0], printed["Latency"][1], printed["Latency"][3], printed["Latency"][4]], abs=1e-5)
    assert result.mean_ms == pytest.approx(printed["Latency"][2], abs=1e-5)
    assert result.throughput == pytest.approx(printed["Throughput"] * batch, rel=1e-5)  # samples/s
    assert (result.h2d_ms, result.d2h_ms) == (0.0, 0.0)  # that run had --noDataTransfers
    assert result.compute_ms == pytest.approx(printed["GPU Compute Time"][2], abs=1e-5)
    assert result.settings["cuda_graph"] is True and result.settings["trtexec_summary"]["count"] == 1500
    json.dumps(result.to_dict())


def test_event_records_reproduce_trtexec_from_its_timestamps(resnet_times, resnet_printed):
    # Replay each real inference as the four CUDA events the engine records (before H2D, after
    # H2D, after compute, after D2H) and the host clock around the enqueue; trtexec's summary
    # of that run must come out again.
    host_base = 1234.5  # perf_counter seconds when the base event was recorded
    ours = []
    for real in resnet_times:
        stage_ms = [real["startH2dMs"], real["endH2dMs"], real["endComputeMs"], real["endD2hMs"]]
        record = event_record(stage_ms, host_base + real["startEnqMs"] / 1000, host_base + real["endEnqMs"] / 1000,
                              host_base)
        assert record["startEnqMs"] == pytest.approx(real["startEnqMs"], abs=1e-6)
        assert record["latencyMs"] == pytest.approx(real["latencyMs"], abs=0.0101)
        assert record["startComputeMs"] == record["endH2dMs"] and record["startD2hMs"] == record["endComputeMs"]
        ours.append(record)
    printed = resnet_printed["performance_summary"]
    summary = summarize_trace(ours, warmup_ms=warmup_ms_of(resnet_printed), percentiles=(99,))
    assert summary["count"] == 1500 and summary["throughput_qps"] == pytest.approx(printed["Throughput"], abs=0.001)
    # latencies come from timestamps rounded to 0.01 ms here, so each agrees within 0.01 ms
    latency = summary["latency"]
    assert [latency["min_ms"], latency["max_ms"], latency["median_ms"]] == pytest.approx(
        [printed["Latency"][0], printed["Latency"][1], printed["Latency"][3]], abs=0.0101)
    assert latency["mean_ms"] == pytest.approx(printed["Latency"][2], abs=0.001)


def test_keep_timing_counts_iterations_and_duration():
    assert keep_timing(0, 100, 0.0, None) and keep_timing(99, 100, 5.0, None)
    assert not keep_timing(100, 100, 0.0, None)
    assert keep_timing(100, 100, 0.5, 1.0)  # iterations done, duration not yet
    assert not keep_timing(100, 100, 1.5, 1.0)
    assert keep_timing(3, 0, 0.2, 1.0) and not keep_timing(3, 0, 1.0, 1.0)  # duration only


def test_summarize_trace_of_synthetic_stage_times():
    records = [trace_record(10.0 * i, 10.0 * i + 1, 10.0 * i + 1, 10.0 * i + 4, 10.0 * i + 4, 10.0 * i + 4.5,
                            10.0 * i, 10.0 * i + 0.1) for i in range(10)]
    summary = summarize_trace(records)
    assert summary["latency"]["mean_ms"] == pytest.approx(4.5)
    assert summary["h2d_latency"]["mean_ms"] == 1.0 and summary["d2h_latency"]["mean_ms"] == 0.5
    assert summary["gpu_compute_time"]["median_ms"] == 3.0
    assert summary["throughput_qps"] == pytest.approx(1000 * 10 / 94.5)
    with pytest.raises(ValueError, match="warm-up"):
        summarize_trace(records, warmup_ms=1000)


# ------------------------------------------------------------------------------------------
# Inputs against the engine's profile


def test_input_shapes_are_checked_against_the_profile(digits_plan):
    profile = digits_plan.profile["input"]
    check_input_shape("input", (8, 1, 8, 8), profile)
    check_input_shape("input", (32, 1, 8, 8), profile)
    with pytest.raises(InputShapeError, match="input 'input' batch 64 is outside the engine's profile \\(1 to 32"):
        check_input_shape("input", (64, 1, 8, 8), profile)
    with pytest.raises(InputShapeError, match="rank 3"):
        check_input_shape("input", (8, 8, 8), profile)
    check_input_shape("mask", (1, 4), None, (1, 4))
    with pytest.raises(InputShapeError, match="exactly"):
        check_input_shape("mask", (2, 4), None, (1, 4))


def test_inputs_for_engine_use_the_opt_shapes(digits_plan):
    metadata = engine_metadata(digits_plan, Platform("10.16.1", "GPU", "8.0"), "k", trtexec_argv=[],
                               build_seconds=None, log_summary=None, engine_bytes=1)
    inputs = inputs_for_engine(json.loads(json.dumps(metadata)))
    assert inputs["input"].shape == (8, 1, 8, 8) and inputs["input"].dtype == np.float32
    assert inputs_for_engine(metadata, batch=3)["input"].shape == (3, 1, 8, 8)
    names = onnx_node_names(sample_path("digits_cnn"))
    assert names == [n for n, _ in digits_plan.onnx_nodes] and onnx_node_names("/no/such.onnx") is None


def model_dtypes(model_path) -> dict[str, np.dtype]:
    """The numpy type of each input, from the ONNX model (what trt.nptype gives for its engine)."""
    model = onnx.load(str(model_path), load_external_data=False)
    return {i.name: np.dtype(helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)) for i in model.graph.input}


def resnet_engine_io() -> tuple[EngineIO, dict[str, np.dtype]]:
    """The I/O of the real ResNet-18 engine (static batch 32), from its layer information."""
    document = read_json(RESNET / "engine.graph.json")
    tensors = {t["Name"]: t for layer in document["Layers"] for t in layer["Inputs"] + layer["Outputs"]}
    produced = {t["Name"] for layer in document["Layers"] for t in layer["Outputs"]}
    inputs = [name for name in document["Bindings"] if name not in produced]
    outputs = [name for name in document["Bindings"] if name in produced]
    numpy_types = {"FP32": np.float32, "FP16": np.float16, "INT8": np.int8, "INT32": np.int32}
    dtypes = {name: np.dtype(numpy_types[normalize_dtype(tensors[name]["Format/Datatype"])]) for name in inputs}
    io = EngineIO(inputs, outputs, fixed_shapes={name: tuple(tensors[name]["Dimensions"]) for name in inputs})
    return io, dtypes


def test_feed_is_checked_and_converted(digits_plan):
    io = EngineIO(["input"], ["logits"], shape_profile=dict(digits_plan.profile))
    dtypes = model_dtypes(sample_path("digits_cnn"))
    asked = []

    def numpy_dtype(name):
        asked.append(name)
        return dtypes[name]

    data = np.load(sample_data_path("digits_cnn"))["input"][:8]
    feed = prepare_feed(io, {"input": np.asfortranarray(data.astype(np.float64))}, numpy_dtype)
    assert list(feed) == ["input"] and asked == ["input"]
    assert feed["input"].dtype == np.float32 and feed["input"].flags.c_contiguous
    np.testing.assert_array_equal(feed["input"], data)
    assert batch_size_of(feed, io.input_names) == 8
    with pytest.raises(InputShapeError, match="batch 64 is outside"):
        prepare_feed(io, {"input": np.zeros((64, 1, 8, 8), np.float32)}, numpy_dtype)
    asked.clear()
    with pytest.raises(ValueError, match=r"unknown input name\(s\) \['mask'\]"):  # before any missing input
        prepare_feed(io, {"mask": data}, numpy_dtype)
    assert asked == []  # names are checked before any type is looked up
    with pytest.raises(KeyError, match="missing input 'input'"):
        prepare_feed(io, {}, numpy_dtype)


def test_feed_of_a_static_engine_and_batch_sizes():
    io, dtypes = resnet_engine_io()
    assert io.input_names == ["input.1"] and io.output_names == ["191"]
    assert io.fixed_shapes == {"input.1": (32, 3, 224, 224)}
    with pytest.raises(InputShapeError, match=r"takes exactly \[32, 3, 224, 224\]"):
        prepare_feed(io, {"input.1": np.zeros((8, 3, 224, 224), np.float32)}, dtypes.get)
    assert batch_size_of({"x": np.float32(1.0)}, ["x"]) == 1 and batch_size_of({}, []) == 1


def test_random_inputs_use_the_engine_shapes(digits_plan):
    dynamic = EngineIO(["input"], ["logits"], shape_profile=dict(digits_plan.profile))
    dtypes = model_dtypes(sample_path("digits_cnn"))
    made = random_inputs(dynamic, dtypes.get, seed=3)
    assert made["input"].shape == tuple(digits_plan.profile["input"].opt) and made["input"].dtype == np.float32
    assert random_inputs(dynamic, dtypes.get, batch=3)["input"].shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(made["input"], random_inputs(dynamic, dtypes.get, seed=3)["input"])
    prepare_feed(dynamic, made, dtypes.get)  # the engine accepts what it made up
    static, static_dtypes = resnet_engine_io()
    made = random_inputs(static, static_dtypes.get, batch=4)  # a static input keeps its batch
    assert made["input.1"].shape == (32, 3, 224, 224) and made["input.1"].dtype == np.float32


def test_engine_attributes_do_not_hide_its_methods():
    # An instance attribute named like a method replaces it on the instance: TensorRTEngine once
    # stored its optimization profile as `self.profile`, so `engine.profile(inputs)` failed.
    source = (Path(__file__).resolve().parents[1] / "workbench" / "backends" / "tensorrt" / "runtime.py").read_text()
    engine_class = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == "TensorRTEngine")
    methods = {n.name for n in engine_class.body if isinstance(n, ast.FunctionDef)}
    methods |= {name for name in vars(Engine) if not name.startswith("__") and callable(getattr(Engine, name))}
    assigned = set()
    for node in ast.walk(engine_class):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        assigned |= {t.attr for t in targets if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                     and t.value.id == "self"}
    assert {"profile", "run", "benchmark", "layers"} <= methods and "io" in assigned
    assert sorted(assigned & methods) == []


# ------------------------------------------------------------------------------------------
# With TensorRT and a GPU (skipped here)


def nvidia_gpu_visible() -> bool:
    """Whether the NVIDIA driver shows this process a GPU, seen without CUDA (so a broken CUDA
    or pycuda cannot hide one): its device nodes, unless ``CUDA_VISIBLE_DEVICES`` hides them all."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or any(Path("/proc/driver/nvidia/gpus").glob("*"))


def gpu_tests_skip_reason() -> str | None:
    """Why the GPU tests cannot run here: TensorRT is not installed, or no NVIDIA GPU is visible.

    Nothing else: with TensorRT installed and a GPU visible, the tests run, and a TensorRT or
    pycuda that does not import (or a CUDA that fails) fails them with its error.
    """
    if importlib.util.find_spec("tensorrt") is None:
        return f"{NEEDS_GPU}: TensorRT is not installed"
    if not nvidia_gpu_visible():
        return f"{NEEDS_GPU}: no NVIDIA GPU is visible"
    return None


needs_gpu = pytest.mark.skipif(gpu_tests_skip_reason() is not None, reason=gpu_tests_skip_reason() or "")


@pytest.fixture
def isolated_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path))
    return tmp_path


def require_working_tensorrt() -> None:
    """Fail (not skip) when TensorRT is installed and a GPU is visible but the stack is broken."""
    problem = tensorrt_status()
    assert problem is None, f"TensorRT is installed and an NVIDIA GPU is visible, but {problem}"


def test_gpu_tests_skip_only_without_tensorrt_or_gpu(monkeypatch):
    """With CUDA_VISIBLE_DEVICES hiding every GPU the GPU tests skip, and the only reasons they
    give are a missing TensorRT or a missing GPU (a broken install is not one: it fails them)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert not nvidia_gpu_visible()
    reason = gpu_tests_skip_reason()
    assert reason in (f"{NEEDS_GPU}: TensorRT is not installed", f"{NEEDS_GPU}: no NVIDIA GPU is visible")


@needs_gpu
def test_gpu_build_run_matches_onnxruntime(isolated_workspace):
    require_working_tensorrt()
    from workbench.backends.tensorrt.build import build_engine
    from workbench.backends.tensorrt.runtime import load_engine

    data = np.load(sample_data_path("digits_cnn", "eval"))["input"][:16]
    events = []
    result = build_engine(sample_path("digits_cnn"), "fast-build", inputs={"input": data}, progress=events.append)
    assert not result.cached and result.engine_path.is_file() and result.location.layers.is_file()
    assert events and events[-1].kind == "finish"
    assert result.metadata["profile"]["input"]["opt"] == [16, 1, 8, 8]
    engine = load_engine(result.engine_path)
    ort = get_backend("onnxruntime").build(sample_path("digits_cnn"))
    expected = ort.run({"input": data})["logits"]
    np.testing.assert_allclose(engine.run({"input": data})["logits"], expected, rtol=1e-3, atol=1e-3)
    again = build_engine(sample_path("digits_cnn"), "fast-build", inputs={"input": data})
    assert again.cached and again.engine_path == result.engine_path


@needs_gpu
def test_gpu_benchmark_layers_and_profile(isolated_workspace):
    require_working_tensorrt()
    backend = get_backend("tensorrt")
    engine = backend.build(sample_path("digits_cnn"), {"recipe": "fast-build", "batch": 8})
    inputs = engine.synthetic_inputs()
    result = engine.benchmark(inputs, iterations=50, warmup=5)
    assert result.iterations == 50 and result.compute_ms > 0 and result.h2d_ms >= 0
    assert result.mean_ms >= result.compute_ms
    graph_result = engine.benchmark(inputs, iterations=20, warmup=2, cuda_graph=True)
    assert graph_result.settings["cuda_graph"] is True
    layers = engine.layers()
    assert set(layers["source"]) == {"tensorrt"} and layers.attrs["verbosity"] == "detailed"
    profiled = engine.profile(inputs, iterations=10)
    assert profiled["share"].sum() == pytest.approx(100.0)
    with pytest.raises(InputShapeError):
        engine.run({"input": np.zeros((64, 1, 8, 8), np.float32)})


@needs_gpu
def test_gpu_refuses_engine_with_foreign_metadata(isolated_workspace):
    require_working_tensorrt()
    from workbench.backends.tensorrt.build import build_engine
    from workbench.backends.tensorrt.runtime import load_engine

    result = build_engine(sample_path("digits_cnn"), "fast-build")
    metadata = result.location.read_metadata()
    metadata["tensorrt_version"] = "8.5.2"
    result.location.metadata.write_text(json.dumps(metadata))
    with pytest.raises(EngineIncompatible, match="TensorRT 8.5.2"):
        load_engine(result.engine_path)


@needs_gpu
def test_gpu_parser_errors_are_reported_per_node(isolated_workspace, tmp_path):
    require_working_tensorrt()
    from workbench.backends.tensorrt.build import TensorRTBuildError, build_engine

    # An operator no TensorRT knows, from a custom domain with no plugin registered for it.
    node = helper.make_node("MadeUpOp", ["x"], ["y"], name="made_up", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "bad.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(path))
    with pytest.raises(TensorRTBuildError) as info:
        build_engine(path)
    assert "node 0 'made_up' (MadeUpOp)" in str(info.value)
    assert "Reproduce with: trtexec --onnx=" in str(info.value)
