# The Open Inference Protocol (v2) server (serving/v2/, on KServe's SDK) as KServe's custom predictor container:
# no torch, no Java; KServe's SDK, ONNX Runtime (CPU build), NumPy and Pillow. Built from the repository root:
#
#   docker build -f docker/v2.Dockerfile -t cifarlens-v2 .
#   docker build -f docker/v2.Dockerfile --build-arg BASE_IMAGE=cifarlens-base:bookworm -t cifarlens-v2 .  # no Docker Hub
#
# The artefacts (`make export`: <model>/{model.onnx, metadata.json}) are not in the image: KServe's storage
# initializer puts the InferenceService's STORAGE_URI at /mnt/models (deploy/kserve/inferenceservice-v2.yaml); under
# Docker, mount them there read-only. REST on 8080 and gRPC on 8081, KServe's ports, on every interface of the
# container (--host 0.0.0.0): the server has no authentication of its own, so publish them to 127.0.0.1 only
# (`docker run -p 127.0.0.1:8085:8080 ...`) or, in a cluster, let only KServe's ingress and its authentication reach
# them. `make v2-container-test` builds, runs and checks this image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- Python packages in a venv, built in a stage of its own ---
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY docker/requirements-v2.txt /tmp/requirements.txt
RUN pip install -q -r /tmp/requirements.txt \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

# --- the image: the venv and the two packages the server runs (the torch-free runtime and serving/v2) ---
FROM ${BASE_IMAGE}
COPY --from=venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    HOME=/tmp
COPY cifarlens_runtime /srv/app/cifarlens_runtime
COPY serving/__init__.py /srv/app/serving/__init__.py
COPY serving/v2 /srv/app/serving/v2
WORKDIR /srv/app
USER 1000:1000
EXPOSE 8080 8081
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=24 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=4)"]
ENTRYPOINT ["python", "-m", "serving.v2", "serve"]
CMD ["--artifacts", "/mnt/models", "--host", "0.0.0.0", "--rest-port", "8080", "--grpc-port", "8081"]
