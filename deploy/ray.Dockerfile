# syntax=docker/dockerfile:1.7
# hct on Ray: the image every Ray node of the `ray` compose profile runs (head and workers),
# with hct, torch and Ray (`.[train,ray]`), so `hct score --engine ray` and
# `hct train --engine ray` find the same code on every node. The service image (Dockerfile)
# stays without torch and Ray.
#
#   docker build -f deploy/ray.Dockerfile -t hct:ray .
#   GPU nodes: --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04
ARG BASE_IMAGE=python:3.11.10-slim-bookworm

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
COPY deploy/install-python.sh /usr/local/bin/install-python.sh
RUN sh /usr/local/bin/install-python.sh
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingestion ./ingestion
COPY model ./model
COPY service ./service
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir '.[train,ray]' \
    && python -c "import ray.data, ray.train.torch, torch, service.offline.ray_engine"
COPY models/default /app/models/default
ENV HCT_MODEL_DIR=/app/models/default
WORKDIR /data
