# The Gradio inspection page, talking to TorchServe over REST (python -m gradio_ui --backend torchserve).
# Built from the repository root:
#
#   docker build -f docker/ui.Dockerfile -t cifarlens-ui .
#   docker build -f docker/ui.Dockerfile --build-arg BASE_IMAGE=cifarlens-base:bookworm ...  # no Docker Hub
#
# The page needs no torch: docker/requirements-ui.txt has none. While gradio_ui still imports training.models
# (torch, dropblock) the build finds that out (docker/ui_missing_module.py) and adds the CPU torch wheel, unless
# UI_TORCH=0, which fails the build instead; UI_TORCH=1 always adds it. Once the UI is torch-free, the same
# build leaves torch out by itself.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 GRADIO_ANALYTICS_ENABLED=False
COPY docker/requirements-ui.txt /tmp/requirements.txt
RUN pip install -q -r /tmp/requirements.txt
COPY cifarlens_runtime /app/cifarlens_runtime
COPY gradio_ui /app/gradio_ui
COPY docker/ui_missing_module.py /tmp/ui_missing_module.py
COPY docker/wheels/ /tmp/wheels/
ARG UI_TORCH=auto
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN set -eu; \
    missing=$(python /tmp/ui_missing_module.py); \
    if [ "$UI_TORCH" = 1 ] || { [ "$UI_TORCH" = auto ] && [ "$missing" = torch -o "$missing" = dropblock ]; }; then \
        echo "gradio_ui imports $missing: adding the CPU torch wheel and dropblock to the UI image"; \
        whl=$(ls /tmp/wheels/torch-*.whl 2>/dev/null | head -n 1 || true); \
        if [ -n "$whl" ]; then pip install -q "$whl"; \
        else pip install -q --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple "torch==$TORCH_VERSION"; fi; \
        pip install -q --no-deps dropblock==0.3.0; \
        rm -rf /opt/venv/lib/python3*/site-packages/torch/include; \
    fi; \
    rm -rf /tmp/wheels; \
    missing=$(python /tmp/ui_missing_module.py); \
    if [ -n "$missing" ]; then echo "the UI image lacks the module $missing" >&2; exit 1; fi; \
    find /opt/venv /app -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=venv /opt/venv /opt/venv
COPY --from=venv /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_TEMP_DIR=/tmp/gradio \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 1000:1000
# The working directory is scratch space (tmpfs under compose, whose root file system is read-only).
WORKDIR /tmp
EXPOSE 7860
HEALTHCHECK --interval=5s --timeout=10s --start-period=60s --retries=30 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=5)"]
CMD ["python", "-m", "gradio_ui", "--backend", "torchserve", "--host", "0.0.0.0", "--port", "7860"]
