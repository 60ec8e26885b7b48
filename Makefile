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

.PHONY: install test lint train-all samples

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
# DATA_DIR empty: torchvision downloads CIFAR-10 into data/; else an ImageFolder root (train/, test/).
TRAIN_ARGS ?=
DATA_ARG = $(if $(DATA_DIR),--data-dir $(DATA_DIR))

train-all: install
	$(PY) -m training train-all --profile $(PROFILE) --device $(DEVICE) $(DATA_ARG) $(TRAIN_ARGS)

samples: install
	$(PY) -m training samples $(DATA_ARG)

# --- export and serving (issue 3) ---
# make export [DATA_DIR=...]: runs/<model>/best.pt -> artifacts/<model>/{model.onnx, model.ts, metadata.json},
#   each checked against the eager net on 256 test images (fails, saying by how much, beyond 1e-4).
# make archive [BACKEND=onnxruntime|torchscript]: artifacts -> model_store/<model>.mar (one shared handler).
# make serve / make stop: TorchServe in the background on model_store/ (state in SERVE_WORKDIR, logs in LOG_DIR).
RUNS_DIR ?= runs
ARTIFACTS_DIR ?= artifacts
MODEL_STORE ?= model_store
BACKEND ?= onnxruntime
INFERENCE_PORT ?= 8080
MANAGEMENT_PORT ?= 8081
METRICS_PORT ?= 8082
# TorchServe also opens two gRPC ports; a second server on this machine needs other ones too.
GRPC_INFERENCE_PORT ?= 7070
GRPC_MANAGEMENT_PORT ?= 7071
SERVE_WORKDIR ?= .ts_tmp/serve
LOG_DIR ?= logs
# TOKEN_AUTH=false turns token authorisation off (local work only).
TOKEN_AUTH ?= true

.PHONY: export archive serve stop

export: install
	$(PY) -m serving.export --runs $(RUNS_DIR) --out $(ARTIFACTS_DIR) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

archive: install
	$(PY) -m serving.archive --artifacts $(ARTIFACTS_DIR) --out $(MODEL_STORE) --backend $(BACKEND)

serve: install
	$(PY) -m serving.server start --model-store $(MODEL_STORE) --workdir $(SERVE_WORKDIR) --log-dir $(LOG_DIR) \
		--inference-port $(INFERENCE_PORT) --management-port $(MANAGEMENT_PORT) --metrics-port $(METRICS_PORT) \
		--grpc-inference-port $(GRPC_INFERENCE_PORT) --grpc-management-port $(GRPC_MANAGEMENT_PORT) \
		$(if $(filter false,$(TOKEN_AUTH)),--no-token-auth)

stop: install
	$(PY) -m serving.server stop --workdir $(SERVE_WORKDIR)

# --- UI (issue 4) ---

# --- benchmarks (issue 5) ---
