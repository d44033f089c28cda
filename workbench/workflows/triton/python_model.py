"""The Triton Python-backend model that serves an exported ``model.onnx`` with ONNX Runtime.

``workbench serve`` copies this file as ``model.py`` into each version folder of the repository it
stages for a ``tritonserver`` without the ONNX Runtime backend (the one PyPI's nvidia-pytriton
ships, on CPU machines). Triton's core still does everything else for real: HTTP/gRPC, the
config's inputs, outputs and ``max_batch_size``, the dynamic batcher, instances, statistics.
The requests of one execution are concatenated along the batch dimension and run as one ONNX
Runtime call, as Triton's own ONNX Runtime backend does with a batch the batcher formed.

It runs inside the Python-backend stub (the ``.venv-triton`` interpreter), not in the workbench,
and imports only numpy, onnxruntime and Triton's ``triton_python_backend_utils``.
"""

import json
import os

import numpy as np
import onnxruntime as ort

ONNX_FILE_PARAMETER = "onnx_file"
THREADS_PARAMETER = "intra_op_thread_count"


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args):
        """Open an ONNX Runtime session on the version folder's ONNX file."""
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        parameters = {k: v.get("string_value") for k, v in (config.get("parameters") or {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        if parameters.get(THREADS_PARAMETER):
            options.intra_op_num_threads = int(parameters[THREADS_PARAMETER])
        path = os.path.join(folder, parameters.get(ONNX_FILE_PARAMETER) or "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.batched = int(config.get("max_batch_size") or 0) > 0

    def execute(self, requests):
        """One response per request; batched models run all requests as one batch when shapes allow."""
        feeds = [self._feed(r) for r in requests]
        if self.batched and len(feeds) > 1 and self._same_sample_shapes(feeds):
            sizes = [next(iter(f.values())).shape[0] for f in feeds]
            joined = {n: np.concatenate([f[n] for f in feeds]) for n in self.inputs}
            try:
                results = self.session.run(self.outputs, joined)
            except Exception:  # run them one by one below, so each request gets its own error
                results = None
            if results is not None:
                bounds = np.cumsum([0] + sizes)
                return [self._response([r[lo:hi] for r in results]) for lo, hi in zip(bounds[:-1], bounds[1:])]
        responses = []
        for feed in feeds:
            try:
                responses.append(self._response(self.session.run(self.outputs, feed)))
            except Exception as err:  # the client gets ONNX Runtime's message, the server keeps going
                responses.append(self.pb.InferenceResponse(output_tensors=[],
                                                           error=self.pb.TritonError(f"ONNX Runtime: {err}")))
        return responses

    def _feed(self, request):
        return {n: self.pb.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs}

    def _same_sample_shapes(self, feeds):
        return all(len({f[n].shape[1:] for f in feeds}) == 1 for n in self.inputs)

    def _response(self, arrays):
        tensors = [self.pb.Tensor(n, np.ascontiguousarray(a)) for n, a in zip(self.outputs, arrays)]
        return self.pb.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        """Release the session."""
        self.session = None
