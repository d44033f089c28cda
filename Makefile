# The two entry points: `make lab` (JupyterLab on the notebooks) and `make test` (the whole suite).
# Both create .venv with the Python found as $(PYTHON) (3.11 or newer) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Docker image sets these: its venv sees the container's TensorRT, and installs the gpu extra.
VENV_FLAGS ?=
LAB_EXTRAS ?= notebook
LAB_ARGS ?=

.PHONY: lab install test test-modelopt triton samples bench clean-venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(if $(findstring pytorch,$(LAB_EXTRAS)),$(BIN)/python -m pip install --quiet torch==2.13.0)
	$(BIN)/python -m pip install --quiet -e '.[$(LAB_EXTRAS)]'

lab: install triton
	$(BIN)/workbench lab $(LAB_ARGS)

# CPU torch 2.13.0 before the pytorch extra (notebook 07), as for the ModelOpt venv below.
test: $(BIN)/python triton
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,pytorch]'
	bash tests/browser_setup.sh
	$(BIN)/lint-imports
	$(BIN)/python -m pytest
	$(MAKE) test-modelopt

# NVIDIA ModelOpt pins onnx and pulls onnxruntime-gpu and CuPy, so its real runs get their own venv.
# CPU torch 2.13.0 first: otherwise pip takes a CUDA build of several GB for ModelOpt's torch>=2.8.
MO_VENV := .venv-modelopt
$(MO_VENV)/bin/python:
	$(PYTHON) -m venv $(MO_VENV)
	$(MO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MO_VENV)/bin/python -m pip install --quiet torch==2.13.0

test-modelopt: $(MO_VENV)/bin/python
	$(MO_VENV)/bin/python -m pip install --quiet -e '.[test,modelopt]'
	$(MO_VENV)/bin/python -m pytest -o addopts=-ra tests/modelopt

# A real Triton server for `workbench serve` and the serving tests: the tritonserver binary PyPI's
# nvidia-pytriton ships (Python backend; it pins numpy<2, hence a venv of its own), with ONNX
# Runtime for the Python-backend model that runs the exported model.onnx.
TRITON_VENV := .venv-triton
$(TRITON_VENV)/bin/python:
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet --upgrade pip

triton: $(TRITON_VENV)/bin/python
	$(TRITON_VENV)/bin/python -m pip install --quiet 'nvidia-pytriton==0.7.0' 'onnxruntime>=1.20,<2'

# Retrain and re-export the sample models (needs the dev extra: CPU torch, scikit-learn).
samples: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python sample_models/build.py

# Each bench script writes bench/results/<name>.json (committed); the README's measured figures
# are then made from them (tests/test_readme_figures.py checks the README against the results).
bench: $(BIN)/python triton
	$(BIN)/python -m pip install --quiet -e '.[test]'
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done
	$(BIN)/python bench/readme_tables.py --write

clean-venv:
	rm -rf $(VENV) $(MO_VENV) $(TRITON_VENV)
