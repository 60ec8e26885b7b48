# cifarlens: train, serve and look inside three CIFAR-10 CNNs.
# Every target installs first when needed (the .venv stamp is rebuilt only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DATA_DIR ?=
DEVICE ?= auto
PROFILE ?= auto

export PYTHONUNBUFFERED := 1

.PHONY: install test test-heavy lint train-all samples

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: install v2-env
	$(PY) -m pytest -q -m "not heavy" --durations=15

# make test-heavy: the long end-to-end checks (marked `heavy`: torchrun launches, CAM faithfulness of the shipped
# weights on 200 images per net); .ci/run calls it after make test.
test-heavy: install
	$(PY) -m pytest -q -m heavy --durations=10

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# --- training (issue 2) ---
# DATA_DIR empty: torchvision downloads CIFAR-10 into data/; else an ImageFolder root (train/, test/).
# PROFILE=auto (default): full on a CUDA device, else cpu, decided by training.config.resolve_profile and printed;
#   PROFILE=full|cpu|smoke|finetune picks one. TRAIN_ARGS=--dry-run prints each net's config and trains nothing.
TRAIN_ARGS ?=
DATA_ARG = $(if $(DATA_DIR),--data-dir $(DATA_DIR))

train-all: install
	$(PY) -m training train-all --profile $(PROFILE) --device $(DEVICE) $(DATA_ARG) $(TRAIN_ARGS)

samples: install
	$(PY) -m training samples $(DATA_ARG)

# --- GPU training on a lent device (issue 9) ---
# make device-pack: what the device machine lacks (wheels, the JPEG data pack) from ../shared/device into .device/
#   (git-ignored; name it in the device call's `carry`). make train-gpu, run there: installs, unpacks, trains the
#   three nets with PROFILE=full, tests them, writes <model>.tar, train_gpu.json and train_gpu.log into $OUT.
DEVICE_PACK ?= ../shared/device

.PHONY: device-pack train-gpu

device-pack:
	mkdir -p .device && cp -r $(DEVICE_PACK)/wheels $(DEVICE_PACK)/cifar10-jpeg.tar.xz .device/
	@du -sh .device; git ls-files -z | xargs -0 du -cb | tail -1

train-gpu:
	bash benchmarks/train_gpu.sh

# --- export and serving (issue 3) ---
# make export [DATA_DIR=...]: runs/<model>/best.pt -> artifacts/<model>/{model.onnx, model.ts, metadata.json},
#   each checked against the eager net on 256 test images (fails, saying by how much, beyond 1e-4).
# make archive [BACKEND=onnxruntime|torchscript]: artifacts -> model_store/<model>.mar (one shared handler).
# make serve / make stop: TorchServe in the background on model_store/ (state in SERVE_WORKDIR, logs in LOG_DIR),
#   with its key renewer (python -m cifarlens_runtime.keys: new keys at half their lifetime; make stop ends it too).
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

# --- the Open Inference Protocol (v2) on KServe's SDK (issue 20) ---
# make install-v2: .venv-v2, the v2 server's own environment (KServe's SDK pins pandas, psutil and protobuf below
#   the main environment's, which stays as it is): pyproject.toml's `v2` extra (kserve, tritonclient, onnxruntime-gpu,
#   NumPy, Pillow, pytest), then this project without its dependencies (no torch). Needs Python 3.11+ (tomllib).
#   make test builds it (or says why it could not) and tests/serving/test_kserve_v2.py runs tests/serving/v2 in it;
#   make test-v2 runs that folder alone (it exports weights/ through .venv first).
# make serve-v2 / make stop-v2: the v2 server (python -m serving.v2) on ARTIFACTS_DIR (`make export`) in the
#   background, REST and gRPC on V2_HOST (default 127.0.0.1) at V2_REST_PORT / V2_GRPC_PORT (default 8085 / 8086, in
#   cifarlens_runtime/constants.py), pid file and log in V2_WORKDIR (default .ts_tmp/v2); returns once ready.
#   V2_HOST=0.0.0.0 listens on every interface: the server has no authentication (in a pod, KServe's is in front).
VENV_V2 := .venv-v2
PY_V2 := $(VENV_V2)/bin/python
STAMP_V2 := $(VENV_V2)/.installed
V2_HOST ?=
V2_REST_PORT ?=
V2_GRPC_PORT ?=
V2_WORKDIR ?=
V2_ARGS = $(call opt,--host,$(V2_HOST)) $(call opt,--rest-port,$(V2_REST_PORT)) $(call opt,--grpc-port,$(V2_GRPC_PORT))
V2_EXTRA = "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['v2'], sep='\n')"

.PHONY: install-v2 v2-env test-v2 serve-v2 stop-v2

install-v2: $(STAMP_V2)

$(STAMP_V2): pyproject.toml
	test -x $(PY_V2) || $(PYTHON) -m venv $(VENV_V2)
	$(PY_V2) -m pip install -q --upgrade pip
	$(PY_V2) -c $(V2_EXTRA) > $(VENV_V2)/requirements-v2.txt
	$(PY_V2) -m pip install -q -r $(VENV_V2)/requirements-v2.txt
	$(PY_V2) -m pip install -q --no-deps -e .
	touch $(STAMP_V2)

# make test's step: a failed build (no package index, say) is reported, and the v2 tests then skip saying so.
# Through a variable, as UI_SUBMAKE below: `make -n test` must not build the environment for real.
V2_SUBMAKE = $(MAKE)
v2-env:
	@$(V2_SUBMAKE) --no-print-directory install-v2 || echo "make install-v2 failed (above): the v2 tests will be skipped"

test-v2: install install-v2
	$(PY_V2) -m pytest -q -p no:cacheprovider --durations=10 tests/serving/v2

serve-v2: install-v2
	$(PY_V2) -m serving.v2 start --artifacts $(ARTIFACTS_DIR) $(V2_ARGS) $(call opt,--workdir,$(V2_WORKDIR))

stop-v2:
	$(if $(wildcard $(PY_V2)),$(PY_V2),$(PYTHON)) -m serving.v2 stop $(call opt,--workdir,$(V2_WORKDIR))

# make kserve-v2-store: dist/kserve-v2/<model>/{model.onnx, metadata.json}, the STORAGE_URI layout of
#   deploy/kserve/inferenceservice-v2.yaml (the v2 server in a custom predictor container, docker/v2.Dockerfile).
# make v2-container-test [BASE_IMAGE=...]: the committed weights exported into COMPOSE_DIR/artifacts (as
#   compose-test does), the v2 image built from docker/v2.Dockerfile, run as the manifest runs it (artefacts at
#   /mnt/models, ports published to 127.0.0.1 only) and called from the host with tritonclient
#   (tests/serving/v2/test_kserve_v2_container.py); .ci/run calls it beside compose-test.
KSERVE_V2_DIR ?= dist/kserve-v2
V2_IMAGE ?= cifarlens-v2:latest

.PHONY: kserve-v2-store v2-container-test

kserve-v2-store:
	rm -rf $(KSERVE_V2_DIR)
	for d in $(ARTIFACTS_DIR)/*/; do m=$$(basename $$d); mkdir -p $(KSERVE_V2_DIR)/$$m; \
		cp $$d/model.onnx $$d/metadata.json $(KSERVE_V2_DIR)/$$m/; done
	@ls -l $(KSERVE_V2_DIR)/*

v2-container-test: install install-v2 docker-base
	$(UI_SUBMAKE) export RUNS_DIR=$(COMPOSE_RUNS) ARTIFACTS_DIR=$(COMPOSE_DIR)/artifacts DATA_DIR=$(CIFAR10_DIR)
	docker build -q -f docker/v2.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(V2_IMAGE) .
	CIFARLENS_V2_CONTAINER_TEST=1 CIFARLENS_V2_IMAGE=$(V2_IMAGE) CIFARLENS_V2_ARTIFACTS=$(COMPOSE_DIR)/artifacts \
		$(PY_V2) -m pytest -q -p no:cacheprovider tests/serving/v2/test_kserve_v2_container.py

# --- UI (issue 4) ---
# make ui [UI_BACKEND=torchserve|local] [UI_HOST=127.0.0.1] [UI_PORT=7860]: the Gradio inspection page, in front
#   of `make serve` (URL and token from CIFARLENS_URL / CIFARLENS_TOKEN / CIFARLENS_KEY_FILE, else the ports
#   above and <SERVE_WORKDIR>/key_file.json) or, with UI_BACKEND=local, ONNX Runtime in process.
# make demo: on a fresh clone, checkpoints (per net: runs/ when its recorded test accuracy beats committed
#   weights/'s, else weights/; neither: `make train-all PROFILE=smoke`; one line per net says which and why)
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
#   -> benchmarks/results/{train_cpu_naive,serve_cpu}.{json,md}. Numbers only mean something on a quiet machine: both
#   record the CPU, its instruction sets, the load and the busiest processes; the serving script interleaves what
#   it compares in rounds and refuses to overwrite committed results at a load average over 0.5 (--force, --out DIR).
# make bench-train / make bench-serve: one of the two; BENCH_SERVE_ARGS=--quick validates the serving script.
# make bench-cam [WEIGHTS_DIR=weights]: class activation maps, latency (in process, Captum, REST through TorchServe)
#   and faithfulness (deletion, localisation) of the shipped nets -> benchmarks/results/cam_cpu.{json,md}.
BENCH_SERVE_ARGS ?=
BENCH_CAM_ARGS ?=
WEIGHTS_DIR ?= weights
BENCH_TRAIN = $(PY) -m benchmarks.train_cpu $(if $(DATA_DIR),--data-dir $(DATA_DIR))
BENCH_SERVE = $(PY) -m benchmarks.serve --runs $(RUNS_DIR) --artifacts $(ARTIFACTS_DIR) --model-store $(MODEL_STORE) \
	$(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(BENCH_SERVE_ARGS)

.PHONY: bench bench-train bench-compile bench-serve bench-cam

bench: install
	$(BENCH_TRAIN)
	$(BENCH_SERVE)

bench-train: install
	$(BENCH_TRAIN)

# make bench-compile: eager against torch.compile training steps per net -> benchmarks/results/train_cpu.{json,md}.
bench-compile: install
	$(PY) -m benchmarks.train_compile

bench-serve: install
	$(BENCH_SERVE)

bench-cam: install
	$(PY) -m benchmarks.cam --weights $(WEIGHTS_DIR) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(BENCH_CAM_ARGS)


# --- deploy: docker compose and KServe (issue 12) ---
# make docker-wheels: the CPU torch wheel into docker/wheels/ for the image builds (not in git).
# make docker-base: the local Debian base image (docker/make-base-image.sh) for machines without Docker Hub.
# make docker-build [BASE_IMAGE=...]: both images through docker-compose.yml.
# make compose-test: archives of the committed weights, both images, `compose up`, REST with the token, the page in
#   headless chromium, `compose down -v` (also on failure); tests/deploy/test_compose_stack.py.
# make kserve-store: dist/kserve/{config/config.properties, model-store/*.mar}, the storageUri layout of
#   deploy/kserve/inferenceservice.yaml.
TORCH_VERSION ?= 2.13.0
# Where Docker Hub is reachable, BASE_IMAGE=python:3.11-slim-bookworm (the Dockerfiles' default) works as well.
BASE_IMAGE ?= cifarlens-base:bookworm
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_DIR ?= .compose-test
COMPOSE_RUNS ?= weights
COMPOSE_PROJECT = cifarlens-compose-test
KSERVE_DIR ?= dist/kserve
CIFAR10_DIR = $(or $(DATA_DIR),$(wildcard ../shared/data/cifar10))

.PHONY: docker-wheels docker-base docker-build compose-test kserve-store

docker-wheels:
	@mkdir -p docker/wheels
	@if ls docker/wheels/torch-$(TORCH_VERSION)*.whl >/dev/null 2>&1; then echo "docker/wheels: $$(ls docker/wheels/torch-*.whl)"; \
	else $(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
		-d docker/wheels torch==$(TORCH_VERSION) && ls -l docker/wheels/torch-*.whl; fi
	@for w in docker/wheels/torch-*.whl; do [ -e "$$w" ] || continue; case "$$w" in *+cpu-*) ;; *) rm -f "$$w"; \
		echo "$$w is not a CPU build: removed; the images install torch from TORCH_INDEX_URL instead";; esac; done

docker-base:
	$(if $(filter cifarlens-base:%,$(BASE_IMAGE)),bash docker/make-base-image.sh $(BASE_IMAGE),@echo "BASE_IMAGE=$(BASE_IMAGE): nothing to make")

docker-build: docker-wheels docker-base
	CIFARLENS_BASE_IMAGE=$(BASE_IMAGE) $(COMPOSE) build

compose-test: install docker-wheels docker-base
	$(UI_SUBMAKE) export archive RUNS_DIR=$(COMPOSE_RUNS) ARTIFACTS_DIR=$(COMPOSE_DIR)/artifacts MODEL_STORE=$(COMPOSE_DIR)/model_store \
		DATA_DIR=$(CIFAR10_DIR)
	@test -n "$(CIFAR10_DIR)" || { echo "compose-test needs CIFAR-10 test JPEGs: set DATA_DIR"; exit 1; }
	CIFARLENS_COMPOSE_TEST=1 COMPOSE="$(COMPOSE)" CIFARLENS_BASE_IMAGE=$(BASE_IMAGE) MODEL_STORE=$(COMPOSE_DIR)/model_store \
		CIFARLENS_COMPOSE_ARTIFACTS=$(COMPOSE_DIR)/artifacts DATA_DIR=$(CIFAR10_DIR) \
		$(PY) -m pytest -q -s -p no:cacheprovider tests/deploy/test_compose_stack.py; \
	rc=$$?; $(COMPOSE) -p $(COMPOSE_PROJECT) down -v --remove-orphans -t 10 >/dev/null 2>&1; exit $$rc

kserve-store: install
	rm -rf $(KSERVE_DIR) && mkdir -p $(KSERVE_DIR)/config $(KSERVE_DIR)/model-store
	cp deploy/kserve/config.properties $(KSERVE_DIR)/config/
	cp $(MODEL_STORE)/*.mar $(KSERVE_DIR)/model-store/
	@ls -l $(KSERVE_DIR)/config $(KSERVE_DIR)/model-store
