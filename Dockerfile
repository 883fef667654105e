# windowpay's production image: the front door, the Ray actors and the sandbox gateways
# in one process tree, run as an unprivileged user. Redis (REDIS_URL) and PostgreSQL
# (DATABASE_URL) are external; see deploy/compose.yaml. Exit status 75 means "lost its
# Ray node, start me again": run it with a restart policy (docs/RELIABILITY.md, the
# supervision contract).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the locked dependencies and windowpay itself, in a virtualenv -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/windowpay
# Every dependency pinned and hash-checked (requirements-runtime.lock, from `make lock`).
COPY requirements-runtime.lock ./
RUN /opt/windowpay/bin/pip install --require-hashes --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY actors ./actors
# The console's message catalogs are compiled here, as `make catalogs` does for a checkout.
RUN /opt/windowpay/bin/pybabel compile -q -d orchestrator/console/locales -D messages \
    && /opt/windowpay/bin/pip install --no-deps --no-build-isolation .

# ---- runtime: the virtualenv only, no compilers, not root --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 windowpay \
    && useradd --system --uid 10001 --gid windowpay --create-home \
       --home-dir /var/lib/windowpay windowpay
COPY --from=build /opt/windowpay /opt/windowpay
ENV PATH=/opt/windowpay/bin:$PATH PYTHONUNBUFFERED=1
ENV WINDOWPAY_DATA_DIR=/var/lib/windowpay WINDOWPAY_HOST=0.0.0.0 WINDOWPAY_METRICS_HOST=0.0.0.0 \
    WINDOWPAY_NOTIFY_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/windowpay
# gRPC front door (mutual TLS), metrics, the providers' notifications (HTTPS: [notify] TLS)
EXPOSE 50051 9464 8471
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["windowpay", "health", "--quiet"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["windowpay"]
CMD ["serve"]
