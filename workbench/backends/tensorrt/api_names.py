"""Every TensorRT (and pycuda) name the backend uses, declared; tests/test_trt_api_names.py checks each against TensorRT 10.16 and 11.1."""

from __future__ import annotations

TRT_BUILD_NAMES_USED = (
    "Builder",
    "Builder.create_network",
    "EngineInspector",
    "EngineInspector.get_engine_information",
    "ICudaEngine",
    "ICudaEngine.create_engine_inspector",
    "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_shape",
    "ICudaEngine.num_io_tensors",
    "ILogger",
    "ILogger.log",
    "INetworkDefinition",
    "INetworkDefinition.get_input",
    "INetworkDefinition.num_inputs",
    "IProgressMonitor",
    "IProgressMonitor.phase_finish",
    "IProgressMonitor.phase_start",
    "IProgressMonitor.step_complete",
    "ITensor",
    "ITensor.name",
    "LayerInformationFormat.JSON",
    "MemoryPoolType.WORKSPACE",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "OnnxParser",
    "OnnxParser.get_error",
    "OnnxParser.num_errors",
    "OnnxParser.parse_from_file",
    "ParserError",
    "ParserError.code",
    "ParserError.desc",
    "ParserError.file",
    "ParserError.func",
    "ParserError.line",
    "ParserError.node",
    "ParserError.node_name",
    "ParserError.node_operator",
    "ProfilingVerbosity.DETAILED",
    "Runtime",
    "Runtime.deserialize_cuda_engine",
    "TensorIOMode.INPUT",
    "__version__",
    "init_libnvinfer_plugins",
)


TRT_RUNTIME_NAMES_USED = (
    "EngineInspector",
    "EngineInspector.execution_context",
    "EngineInspector.get_engine_information",
    "ICudaEngine",
    "ICudaEngine.create_engine_inspector",
    "ICudaEngine.create_execution_context",
    "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_profile_shape",
    "ICudaEngine.get_tensor_shape",
    "ICudaEngine.is_shape_inference_io",
    "ICudaEngine.num_io_tensors",
    "IExecutionContext",
    "IExecutionContext.execute_async_v3",
    "IExecutionContext.get_tensor_shape",
    "IExecutionContext.profiler",
    "IExecutionContext.set_input_shape",
    "IExecutionContext.set_tensor_address",
    "IProfiler",
    "IProfiler.report_layer_time",
    "LayerInformationFormat.JSON",
    "Runtime",
    "Runtime.deserialize_cuda_engine",
    "TensorIOMode.INPUT",
    "__version__",
    "init_libnvinfer_plugins",
    "nptype",
)

# Every TensorRT name used by the build side (recipe, shapes, cache, trtexec, progress, log,
# build) and the runtime side (runtime, engine_io, execution, timing): Class, Class.member,
# Enum.VALUE or a module function, each present in both TensorRT 10.16 and 11.1.
TRT_NAMES_USED = tuple(sorted(set(TRT_BUILD_NAMES_USED) | set(TRT_RUNTIME_NAMES_USED)))

# Names present in only one supported major version, each used only inside an
# ``if trt_major() >= N`` / ``< N`` branch: name -> the major version ("10" or "11") that has
# it. The test checks each exists in that version's list. None is needed today: strongly typed
# networks and the name-based I/O API are the same in 10.x and 11.x.
VERSION_GUARDED: dict[str, str] = {}

# pycuda calls, for the record (pycuda has no name list to check against; the CUDA graph calls
# follow pycuda's test/test_graph.py).
PYCUDA_NAMES_USED = (
    "driver.init",
    "driver.Device.name",
    "driver.Device.compute_capability",
    "driver.Stream",
    "driver.Stream.handle",
    "driver.Stream.synchronize",
    "driver.Stream.begin_capture",
    "driver.Stream.end_capture",
    "driver.Graph.instantiate",
    "driver.GraphExec.launch",
    "driver.Event",
    "driver.Event.record",
    "driver.Event.time_since",
    "driver.pagelocked_empty",
    "driver.mem_alloc",
    "driver.memcpy_htod_async",
    "driver.memcpy_dtoh_async",
    "driver.Device.retain_primary_context",
    "driver.Context.push",
    "driver.Context.pop",
)
