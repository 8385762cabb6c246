# crewq: one image for every service of docker-compose.yml (workers, supervisor, beat, flower).
#   docker build -t crewq .
# BASE_IMAGE: any Debian-like image with python3 (3.11+) and its venv module; the default is the
# official python:3.11-slim. tests/test_compose.py builds on a local one made by debootstrap.
ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/crewq \
    PATH=/opt/crewq/bin:$PATH

# A user of its own: nothing in the fleet runs as root.
RUN groupadd --system --gid 10001 crewq \
 && useradd --system --uid 10001 --gid crewq --home-dir /app --no-create-home --shell /usr/sbin/nologin crewq

# The source is built from /src and removed: a crewq/ folder in the working directory would shadow
# the installed package (celery -A puts the working directory on sys.path).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crewq ./crewq
COPY config ./config
COPY workers ./workers
COPY scheduler ./scheduler
# A venv of its own (a distribution's python3 refuses system-wide installs, PEP 668). A build that
# must reach PyPI through a proxy passes its pip configuration as BuildKit secrets
# (`--secret id=pipconf,src=... --secret id=pipca,src=...`): mounted for this step only, in no layer.
RUN --mount=type=secret,id=pipconf --mount=type=secret,id=pipca \
    if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi \
 && python3 -m venv /opt/crewq \
 && pip install . \
 && cd / && rm -rf /src \
 && mkdir -p /app /crews /data/outputs \
 && chown -R crewq:crewq /app /data

WORKDIR /app
USER crewq
# flower, the supervisor's Prometheus metrics
EXPOSE 5555 9808
CMD ["crewq", "--help"]
