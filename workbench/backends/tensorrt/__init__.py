"""The TensorRT backend (imported lazily) and the importers of TensorRT's JSON exports and trtexec logs."""
