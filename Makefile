# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment sees the system site-packages, so a CUDA torch you already have is kept.
# When no torch is importable we install the CPU wheel $(TORCH_SPEC) (never an unpinned `torch`,
# which would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv install install-test test test-fast typecheck docs dist demo lint bench clean peers

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"

# `make demo` trains, so it installs the core with the `train` extra (pip install equiscale[train]).
install: venv
	$(PIP) install -q -e ".[train]"

install-test: venv
	$(PIP) install -q -e ".[test]"

# Everything: lint, types (so3, ops, nn), then every test (the docs build and the examples included).
test: install-test
	$(PY) -m ruff check src tests tools examples
	$(PY) -m ruff format --check src tests tools examples
	$(PY) -m mypy
	$(PY) -m pytest -q -x --durations=15

# While developing: the tests not marked slow (pytest -m fast).
test-fast: install-test
	$(PY) -m pytest -q -x -m fast

typecheck: install-test
	$(PY) -m mypy

# The documentation site under site/ (MkDocs, API pages from the docstrings); warnings are errors.
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# Wheel and sdist under dist/, as a user's pip would build them.
dist: install-test
	$(PY) -m build --outdir dist

demo: install
	$(VENV)/bin/equiscale train --config configs/demo_nbody.yaml --out runs/demo-$$(date +%Y%m%d-%H%M%S)

lint: install-test
	$(PY) -m ruff check src tests tools examples
	$(PY) -m ruff format --check src tests tools examples

# Regenerate the committed operator and context benchmarks on this machine (about an hour on a
# 2-core CPU); pass DEVICE=cuda on a GPU. Each writes JSON + PNG under results/.
DEVICE ?= cpu
bench: install-test
	$(VENV)/bin/equiscale bench tp --device $(DEVICE)
	$(VENV)/bin/equiscale bench conv --device $(DEVICE)
	$(VENV)/bin/equiscale bench context --device $(DEVICE)
	$(VENV)/bin/equiscale bench context-parallel

clean:
	rm -rf $(VENV) build dist site *.egg-info src/*.egg-info

# Peers in their own environment: mace-torch 0.3.16 pins e3nn 0.4.4 (equiscale needs >= 0.5.1).
# `equiscale bench mace --peers-python .venv-peers/bin/python` trains and scores MACE with it.
PEERS_VENV ?= .venv-peers
peers: $(PEERS_VENV)/bin/mace_run_train

$(PEERS_VENV)/bin/mace_run_train:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)" "mace-torch==0.3.16"
