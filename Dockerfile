# The idgraph API. Neo4j runs in its own container (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# the exact versions of uv.lock, then idgraph itself without resolving anything again
COPY pyproject.toml uv.lock README.md ./
RUN pip install uv==0.13.9 \
    && uv export --frozen --no-dev --no-emit-project -o /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && pip uninstall -y uv
COPY identity ./identity
COPY loaders ./loaders
RUN pip install --no-deps . && useradd --create-home --uid 10001 idgraph

USER idgraph
EXPOSE 8000
CMD ["idgraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
