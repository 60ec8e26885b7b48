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
# Ports, host and TorchServe's working directory default to cifarlens_runtime/constants.py (inference 8080,
# management 8081, metrics 8082, gRPC 7070/7071, page 7860, .ts_tmp/serve): set any of these to override them.
# TorchServe always opens the two gRPC ports too, so a second server on this machine needs other ones as well.
INFERENCE_PORT ?=
MANAGEMENT_PORT ?=
METRICS_PORT ?=
GRPC_INFERENCE_PORT ?=
GRPC_MANAGEMENT_PORT ?=
SERVE_WORKDIR ?=
LOG_DIR ?= logs
# TOKEN_AUTH=false turns token authorisation off (local work only).
TOKEN_AUTH ?= true
# $(call opt,--flag,$(VAR)): the flag and its value when VAR is set, else nothing (the Python default applies).
opt = $(if $(2),$(1) $(2))
SERVE_ARGS = $(call opt,--inference-port,$(INFERENCE_PORT)) $(call opt,--management-port,$(MANAGEMENT_PORT)) \
	$(call opt,--metrics-port,$(METRICS_PORT)) $(call opt,--grpc-inference-port,$(GRPC_INFERENCE_PORT)) \
	$(call opt,--grpc-management-port,$(GRPC_MANAGEMENT_PORT)) $(call opt,--workdir,$(SERVE_WORKDIR))

.PHONY: export archive serve stop

export: install
	$(PY) -m serving.export --runs $(RUNS_DIR) --out $(ARTIFACTS_DIR) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

archive: install
	$(PY) -m serving.archive --artifacts $(ARTIFACTS_DIR) --out $(MODEL_STORE) --backend $(BACKEND)

serve: install
	$(PY) -m serving.server start --model-store $(MODEL_STORE) --log-dir $(LOG_DIR) $(SERVE_ARGS) \
		$(if $(filter false,$(TOKEN_AUTH)),--no-token-auth)

stop: install
	$(PY) -m serving.server stop $(call opt,--workdir,$(SERVE_WORKDIR))

# --- UI (issue 4) ---
# make ui [UI_BACKEND=torchserve|local] [UI_HOST=127.0.0.1] [UI_PORT=7860]: the Gradio inspection page, in front
#   of `make serve` (URL and token from CIFARLENS_URL / CIFARLENS_TOKEN / CIFARLENS_KEY_FILE, else the ports
#   above and <SERVE_WORKDIR>/key_file.json) or, with UI_BACKEND=local, ONNX Runtime in process.
# make demo: on a fresh clone, checkpoints (runs/, else committed weights/, else `make train-all PROFILE=smoke`)
#   -> export -> archive -> serve -> the page; prints both URLs; Ctrl-C stops both.
UI_BACKEND ?= torchserve
UI_HOST ?=
UI_PORT ?=
UI_URL_ARGS = $(if $(CIFARLENS_URL),,$(if $(INFERENCE_PORT),--url http://127.0.0.1:$(INFERENCE_PORT)) \
	$(if $(MANAGEMENT_PORT),--management-url http://127.0.0.1:$(MANAGEMENT_PORT)))
UI_KEY_ARGS = $(if $(CIFARLENS_KEY_FILE)$(CIFARLENS_TOKEN),,$(if $(SERVE_WORKDIR),--key-file $(SERVE_WORKDIR)/key_file.json))
UI_ARGS = $(call opt,--host,$(UI_HOST)) $(call opt,--port,$(UI_PORT)) $(UI_URL_ARGS) $(UI_KEY_ARGS)
# Through a variable: a literal $(MAKE) in the recipe would make `make -n demo` run the demo for real.
UI_SUBMAKE = $(MAKE)

.PHONY: ui demo

ui: install
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m gradio_ui --backend $(UI_BACKEND) --artifacts $(ARTIFACTS_DIR) $(UI_ARGS) \
		$(if $(DATA_DIR),--data-dir $(DATA_DIR))

demo: install
	GRADIO_ANALYTICS_ENABLED=False $(PY) -m gradio_ui.demo --make "$(UI_SUBMAKE)" --runs $(RUNS_DIR) \
		--artifacts $(ARTIFACTS_DIR) $(UI_ARGS)


# --- benchmarks (issue 5) ---
# make bench [DATA_DIR=...]: training images/s (naive loop vs the project's), then serving latency and throughput
#   (eager, TorchScript, ONNX Runtime in process vs REST through TorchServe, judged against the issue's targets)
#   -> benchmarks/results/{train_cpu,serve_cpu}.{json,md}. Numbers only mean something on a quiet machine: both
#   record the CPU, its instruction sets, the load and the busiest processes; the serving script interleaves what
#   it compares in rounds and refuses to overwrite committed results at a load average over 0.5 (--force, --out DIR).
# make bench-train / make bench-serve: one of the two; BENCH_SERVE_ARGS=--quick validates the serving script.
BENCH_SERVE_ARGS ?=
BENCH_TRAIN = $(PY) -m benchmarks.train_cpu $(if $(DATA_DIR),--data-dir $(DATA_DIR))
BENCH_SERVE = $(PY) -m benchmarks.serve --runs $(RUNS_DIR) --artifacts $(ARTIFACTS_DIR) --model-store $(MODEL_STORE) \
	$(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(BENCH_SERVE_ARGS)

.PHONY: bench bench-train bench-serve

bench: install
	$(BENCH_TRAIN)
	$(BENCH_SERVE)

bench-train: install
	$(BENCH_TRAIN)

bench-serve: install
	$(BENCH_SERVE)
