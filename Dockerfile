# chat-bff: the wheel and a locked set of dependencies installed into a virtualenv in one
# stage, run as a non-root user in a slim one.
#
#   docker build -t chat-bff .
#   docker run --rm -p 8000:8000 chat-bff chat-bff demo --host 0.0.0.0 --port 8000
#
# The base is pinned by digest (python:3.11-slim-bookworm, Python 3.11.16, multi-platform
# index): a rebuild gets the same bytes. Both stages use it so the venv's interpreter symlinks
# stay valid. To move to a newer base, replace the digest (see deploy/README.md, "Upgrading").
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# The locked dependencies first, every file checked against its hash (scripts/lock writes
# requirements.lock): editing the source reuses this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock

# Then the project as a wheel (app/static, a link to static/, puts the widget inside it),
# installed without its dependencies so nothing outside the lock comes in.
COPY pyproject.toml README.md ./
COPY static ./static
COPY app ./app
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist . \
 && pip install --no-cache-dir --no-deps /tmp/dist/chat_bff-*.whl \
 && pip check \
 && python -m compileall -q /opt/venv/lib


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Root owns the files; the process cannot change its own code (works with a read-only rootfs).
COPY --from=builder /opt/venv /opt/venv
WORKDIR /tmp
USER 65532:65532
EXPOSE 8000
STOPSIGNAL SIGTERM
# No curl in the slim image. Liveness only: readiness (/readyz) belongs to the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# uvicorn's graceful timeout is BFF_SHUTDOWN_GRACE_S + 5 s: give the container longer than that.
CMD ["chat-bff", "serve", "--host", "0.0.0.0", "--port", "8000"]
