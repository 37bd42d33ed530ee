# syntax=docker/dockerfile:1.7
# hct service image. Two stages: `builder` installs the package into a virtualenv, `runtime`
# copies only that virtualenv, the bundled model and nothing else (no compilers, no torch).
#
# CPU hosts (default):  docker build -t hct .
# GPU hosts:            docker build -t hct:gpu \
#                         --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04 .
# Both bases are pinned. On the CUDA base, Python 3.11 comes from the deadsnakes PPA and
# onnxruntime-gpu finds the image's CUDA 12 / cuDNN 9 libraries.
ARG BASE_IMAGE=python:3.11.10-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
COPY deploy/install-python.sh /usr/local/bin/install-python.sh
RUN sh /usr/local/bin/install-python.sh

FROM base AS builder
WORKDIR /src
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY ingestion ./ingestion
COPY model ./model
COPY service ./service
# Runtime dependencies only: no [train] extra, so no torch in the image.
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir . \
    && ! pip show torch >/dev/null 2>&1

FROM base AS runtime
RUN groupadd --system --gid 10001 hct \
    && useradd --system --uid 10001 --gid hct --home-dir /app --shell /usr/sbin/nologin hct \
    && mkdir -p /app/models /data/uploads \
    && chown -R hct:hct /data
COPY --from=builder /opt/venv /opt/venv
COPY --chown=hct:hct models/default /app/models/default
ENV PATH=/opt/venv/bin:$PATH \
    HCT_MODEL_DIR=/app/models/default \
    HCT_HOST=0.0.0.0 \
    HCT_PORT=8000 \
    HCT_UPLOAD_DIR=/data/uploads \
    HCT_DATABASE_URL=sqlite:////data/hct.db
WORKDIR /app
USER hct
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3.11", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HCT_PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["hct", "serve"]
