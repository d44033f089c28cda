"""The ONNX Runtime backend: engine, sessions, layer table mapped back to the original graph."""
