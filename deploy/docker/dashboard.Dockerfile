# syntax=docker/dockerfile:1
# Dashboard image: the Streamlit monitoring app on port 8501, reading the SQLite store and the
# model artifact from the shared volume. In Snowflake the same app runs as Streamlit in
# Snowflake instead. Build from the repository root:
#   docker build --platform linux/amd64 -f deploy/docker/dashboard.Dockerfile -t evidence-dashboard .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Third-party dependencies first, from the lock file and the workspace manifests only, so this
# layer is rebuilt only when a dependency changes. uv needs every member's pyproject.toml to
# read the workspace, even those it does not install.
COPY pyproject.toml uv.lock ./
COPY libs/features/pyproject.toml libs/features/
COPY libs/synthetic/pyproject.toml libs/synthetic/
COPY libs/logging/pyproject.toml libs/logging/
COPY services/model_client/pyproject.toml services/model_client/
COPY services/persistence/pyproject.toml services/persistence/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/dashboard/pyproject.toml services/dashboard/
COPY training/pyproject.toml training/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package evidence-dashboard

# Then the workspace packages it imports, installed as wheels (not editable), so the runtime
# stage needs nothing but the virtual environment.
COPY libs/features libs/features
COPY libs/logging libs/logging
COPY services/dashboard services/dashboard
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package evidence-dashboard

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 evidence \
    && useradd --system --uid 10001 --gid evidence --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin evidence \
    && mkdir -p /var/lib/evidence \
    && chown evidence:evidence /var/lib/evidence
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DASHBOARD_HOST=0.0.0.0 \
    DASHBOARD_PORT=8501 \
    DASHBOARD_STORE_PATH=/var/lib/evidence/store.sqlite3 \
    DASHBOARD_QUEUE_PATH=/var/lib/evidence/queue.sqlite3 \
    DASHBOARD_ARTIFACT_DIR=/var/lib/evidence/model
WORKDIR /var/lib/evidence
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=2)"]
CMD ["evidence-dashboard"]
