# chat-bff: build a virtualenv in one stage, run it as a non-root user in a slim one.
#
#   docker build -t chat-bff .
#   docker run --rm -p 8000:8000 chat-bff chat-bff demo --host 0.0.0.0 --port 8000
#
# Both stages use the same base so the venv's interpreter symlinks stay valid.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies first, read from pyproject.toml alone: editing the source reuses this layer.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt

# Editable install: the package stays at /app/app, so the widget in /app/static (found as
# <package>/../static) ships with it. The runtime stage keeps both paths unchanged.
COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m compileall -q /app/app


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app

# Root owns the files; the process cannot change its own code (works with a read-only rootfs).
USER 65532:65532
EXPOSE 8000
STOPSIGNAL SIGTERM
# No curl in the slim image. Liveness only: readiness (/readyz) belongs to the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# uvicorn's graceful timeout is BFF_SHUTDOWN_GRACE_S + 5 s: give the container longer than that.
CMD ["chat-bff", "serve", "--host", "0.0.0.0", "--port", "8000"]
