# The operator image: `docker build -t modeladapter:0.1.0 .` then `modeladapter manifests --image ...`.
# Stage 1 builds the package (non-editable) into a virtual environment; stage 2 copies only that environment
# onto a clean python:3.11-slim and runs `modeladapter run` as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/modeladapter
WORKDIR /src
# Only what the wheel is built from: the project file, the README it names, and the mapped folders.
COPY pyproject.toml README.md ./
COPY fsm/ fsm/
COPY adapters/ adapters/
COPY store/ store/
COPY migrations/ migrations/
COPY operator/ operator/
COPY sandbox/ sandbox/
COPY deploy/ deploy/
RUN /opt/modeladapter/bin/pip install . \
    && for base in crds default ha-postgresql single-namespace prometheus; do \
        /opt/modeladapter/bin/modeladapter manifests "$base" > /dev/null || exit 1; done

FROM python:3.11-slim
# A fixed numeric uid, so that the Deployment's `runAsNonRoot` can be verified by the kubelet.
RUN groupadd --system --gid 10001 modeladapter \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/modeladapter --shell /usr/sbin/nologin modeladapter \
    && mkdir -p /var/lib/modeladapter \
    && chown 10001:10001 /var/lib/modeladapter
COPY --from=build /opt/modeladapter /opt/modeladapter
# PYTHONSAFEPATH: never put the working directory on sys.path (DESIGN §2: a folder named `operator`).
ENV PATH=/opt/modeladapter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1
# The default SQLite event log (.modeladapter/events.db) is relative to here; the Deployment mounts an emptyDir.
WORKDIR /var/lib/modeladapter
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["modeladapter"]
CMD ["run"]
