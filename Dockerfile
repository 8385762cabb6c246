# crewq: one image for every service of docker-compose.yml (workers, supervisor, beat, flower).
#   docker build -t crewq .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A user of its own: nothing in the fleet runs as root.
RUN groupadd --system --gid 10001 crewq \
 && useradd --system --uid 10001 --gid crewq --home-dir /app --no-create-home --shell /usr/sbin/nologin crewq

WORKDIR /app
COPY pyproject.toml README.md ./
COPY crewq ./crewq
COPY config ./config
COPY workers ./workers
COPY scheduler ./scheduler
RUN pip install . \
 && mkdir -p /crews /data/outputs \
 && chown -R crewq:crewq /data

USER crewq
# flower, the supervisor's Prometheus metrics
EXPOSE 5555 9808
CMD ["crewq", "--help"]
