# syntax=docker/dockerfile:1
# Quantum Trader worker image: `qt worker NAME --profile F` (what the operator's Deployments run).
# Build from the repository root:  docker build -f images/worker.Dockerfile -t quantum-trader/worker:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: a virtualenv with the pinned runtime dependencies and the package --------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/qt
ENV PATH=/opt/qt/bin:$PATH
WORKDIR /src
# dependencies first: this layer is rebuilt only when the lock changes. requirements/runtime.txt is
# uv.lock's runtime group exported with hashes (`make lock`): the image gets exactly the locked wheels.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY workers/ workers/
COPY operator/ operator/
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q /opt/qt/lib \
    && pip check

# ---- runtime: python slim + the virtualenv, no compilers, no pip caches ---------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="quantum-trader-worker" \
      org.opencontainers.image.description="Quantum Trader worker (qt)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# libgomp1: OpenMP runtime that the lightgbm wheel links against
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 qt \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin qt
COPY --from=build /opt/qt /opt/qt
ENV PATH=/opt/qt/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QT_LOG_FORMAT=text
WORKDIR /tmp
USER 10001:10001
# /healthz, /readyz and /metrics are served by every worker; Kubernetes probes them (no HEALTHCHECK).
ENTRYPOINT ["qt"]
CMD ["--help"]
