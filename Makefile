# cifarlens: train, serve and look inside three CIFAR-10 CNNs.
# Every target installs first when needed (the .venv stamp is rebuilt only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DATA_DIR ?=
DEVICE ?= auto
PROFILE ?= full

export PYTHONUNBUFFERED := 1

.PHONY: install test lint train-all clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# --- training (issue 2) ---

# --- export and serving (issue 3) ---

# --- UI (issue 4) ---

# --- benchmarks (issue 5) ---
