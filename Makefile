# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment sees the system site-packages, so a CUDA torch you already have is kept.
# When no torch is importable we install the CPU wheel $(TORCH_SPEC) (never an unpinned `torch`,
# which would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: venv install install-test test demo lint bench clean peers

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

test: install-test
	$(PY) -m ruff check src tests
	$(PY) -m pytest -q -x --durations=15

demo: install
	$(VENV)/bin/equiscale train --config configs/demo_nbody.yaml --out runs/demo-$$(date +%Y%m%d-%H%M%S)

lint: install-test
	$(PY) -m ruff check src tests

# Regenerate the committed operator and context benchmarks on this machine (about an hour on a
# 2-core CPU); pass DEVICE=cuda on a GPU. Each writes JSON + PNG under results/.
DEVICE ?= cpu
bench: install-test
	$(VENV)/bin/equiscale bench tp --device $(DEVICE)
	$(VENV)/bin/equiscale bench conv --device $(DEVICE)
	$(VENV)/bin/equiscale bench context --device $(DEVICE)
	$(VENV)/bin/equiscale bench context-parallel

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# Peers in their own environment: mace-torch 0.3.16 pins e3nn 0.4.4 (equiscale needs >= 0.5.1).
# `equiscale bench mace --peers-python .venv-peers/bin/python` trains and scores MACE with it.
PEERS_VENV ?= .venv-peers
peers: $(PEERS_VENV)/bin/mace_run_train

$(PEERS_VENV)/bin/mace_run_train:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)" "mace-torch==0.3.16"
