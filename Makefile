# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment sees the system site-packages, so a CUDA torch you already have is kept.
# When no torch is importable we install the CPU wheel $(TORCH_SPEC) (never an unpinned `torch`,
# which would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv install install-test test demo lint bench clean

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"

install: venv
	$(PIP) install -q -e .

install-test: venv
	$(PIP) install -q -e ".[test]"

test: install-test
	$(PY) -m ruff check src tests
	$(PY) -m pytest -q -x --durations=15

demo: install
	$(VENV)/bin/equiscale train --config configs/demo_nbody.yaml --out runs/demo-$$(date +%Y%m%d-%H%M%S)

lint: install-test
	$(PY) -m ruff check src tests

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
