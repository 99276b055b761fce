# The worker's image. The base image's PyTorch comes with CUDA; the worker uses the GPU when
# the container is given one (see the GPU reservation in docker-compose.yml).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    XDG_DATA_HOME=/var/lib/argilla-worker \
    ARGILLA_WORKER_CACHE=/var/lib/argilla-worker/cache \
    HF_HOME=/var/lib/argilla-worker/hf

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY plugins ./plugins
# optional extras, e.g. `docker build --build-arg EXTRAS=ray .` for scoring.engine = "ray"
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"

RUN useradd --create-home --uid 1000 worker && mkdir -p /var/lib/argilla-worker && chown worker /var/lib/argilla-worker
USER worker
VOLUME /var/lib/argilla-worker
EXPOSE 8900
ENV ARGILLA_WORKER_STATE_DIR=/var/lib/argilla-worker/state \
    ARGILLA_WORKER_REGISTRY__PATH=/var/lib/argilla-worker/models \
    ARGILLA_WORKER_HTTP__HOST=0.0.0.0 \
    ARGILLA_WORKER_HTTP__PORT=8900
CMD ["argilla-worker", "run", "-c", "/etc/argilla-worker/worker.toml"]
