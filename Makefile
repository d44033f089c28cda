# The two entry points: `make lab` (JupyterLab on the notebooks) and `make test` (the whole suite).
# Both create .venv with the Python found as $(PYTHON) (3.11 or newer) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Docker image sets these: its venv sees the container's TensorRT, and installs the gpu extra.
VENV_FLAGS ?=
LAB_EXTRAS ?= notebook
LAB_ARGS ?=

.PHONY: lab install test samples bench clean-venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(LAB_EXTRAS)]'

lab: install
	$(BIN)/workbench lab $(LAB_ARGS)

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	bash tests/browser_setup.sh
	$(BIN)/python -m pytest

# Retrain and re-export the sample models (needs the dev extra: CPU torch, scikit-learn).
samples: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python sample_models/build.py

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
