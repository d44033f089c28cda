"""Serving with NVIDIA Triton Inference Server: export a chosen variant as a Triton model
repository (:mod:`.export`, configs built with Triton's own protobuf in :mod:`.config`), serve it
through a real ``tritonserver`` (:mod:`.serve`), and measure it through ``tritonclient``
(:mod:`.perf`), with served rows joining the results table (backend ``"triton"``).

The public names are exported lazily by :mod:`workbench.workflows`."""
