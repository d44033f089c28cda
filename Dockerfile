# trt-workbench on an NVIDIA GPU: the NGC TensorRT container (TensorRT 11.x) plus the workbench.
#   docker build -t trt-workbench .
#   docker run --gpus all -p 8888:8888 -e WORKBENCH_LAB_TOKEN=change-me trt-workbench
# Inside the container JupyterLab listens on the container's interface, always with a token
# (WORKBENCH_LAB_TOKEN, or a random one printed in the log). The image can also be a Dask worker
# (docs/distributed.md): docker run --gpus device=0 --network host trt-workbench .venv/bin/dask worker ...
# The one place the container release is pinned; pick a release whose notes list TensorRT 11.x.
ARG TRT_CONTAINER_TAG=26.10-py3
FROM nvcr.io/nvidia/tensorrt:${TRT_CONTAINER_TAG}
# The NGC release, recorded when an engine is exported for Triton: the Triton container of the same
# release ships the same TensorRT (workbench serve --print-command picks its tag from it).
ARG TRT_CONTAINER_TAG
ENV WORKBENCH_NGC_RELEASE=${TRT_CONTAINER_TAG}

RUN apt-get update && apt-get install -y --no-install-recommends make git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/trt-workbench
COPY . .
# The same steps as `make lab`: the venv sees the container's TensorRT (--system-site-packages)
# and installs the gpu extra (pycuda; tensorrt is already satisfied by the container).
RUN make install VENV_FLAGS=--system-site-packages LAB_EXTRAS=notebook,gpu,distributed
ENV WORKBENCH_WORKSPACE=/opt/trt-workbench/workspace
EXPOSE 8888
CMD ["make", "lab", "VENV_FLAGS=--system-site-packages", "LAB_EXTRAS=notebook,gpu,distributed", "LAB_ARGS=--ip 0.0.0.0 --no-browser"]
