# TorchServe with the cifarlens archives: Java 17, CPU torch (TorchServe's worker imports it), ONNX Runtime.
# Built from the repository root; the archives are not in the image (docker-compose.yml mounts model_store/):
#
#   docker build -f docker/serving.Dockerfile -t cifarlens-serving .
#   docker build -f docker/serving.Dockerfile --build-arg BASE_IMAGE=cifarlens-base:bookworm ...  # no Docker Hub
#
# BASE_IMAGE is any Debian bookworm image with python3 (and its venv module); docker/make-base-image.sh makes one.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- Python packages in a venv, built in a stage of its own so that the torch wheel never lands in a layer ---
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY docker/wheels/ /tmp/wheels/
# A torch wheel in docker/wheels (make docker-wheels) wins; otherwise the CPU build from TORCH_INDEX_URL, never the
# CUDA build PyPI serves for Linux. Its C++ headers are only for building extensions: dropped.
RUN set -eu; \
    whl=$(ls /tmp/wheels/torch-*.whl 2>/dev/null | head -n 1 || true); \
    if [ -n "$whl" ]; then pip install -q "$whl"; \
    else pip install -q --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple "torch==$TORCH_VERSION"; fi; \
    rm -rf /tmp/wheels /opt/venv/lib/python3*/site-packages/torch/include
COPY docker/requirements-serving.txt /tmp/requirements.txt
RUN pip install -q -r /tmp/requirements.txt \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

# --- the image: Java, the venv, the entrypoint, healthcheck and serving/config.properties ---
FROM ${BASE_IMAGE}
# man1 must exist for the JRE's update-alternatives in slim images that exclude man pages.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
COPY docker/torchserve-entrypoint.sh docker/healthcheck.py /srv/docker/
# The healthcheck reads ports and key files through the torch-free runtime package (found beside it).
COPY cifarlens_runtime /srv/docker/cifarlens_runtime
COPY serving/config.properties /srv/config/config.properties
# /srv/ts and /srv/ui-keys become named volumes (all keys, logs, TorchServe's TEMP; the inference key alone, for
# the ui container); a new volume takes this owner.
RUN mkdir -p /srv/ts /srv/ui-keys /srv/model_store && chown 1000:1000 /srv/ts /srv/ui-keys
USER 1000:1000
WORKDIR /srv/ts
EXPOSE 8080 8081 8082
HEALTHCHECK --interval=5s --timeout=10s --start-period=120s --retries=60 CMD ["python", "/srv/docker/healthcheck.py"]
ENTRYPOINT ["/bin/sh", "/srv/docker/torchserve-entrypoint.sh"]
