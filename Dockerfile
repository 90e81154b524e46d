# The idgraph API. Neo4j runs in its own container (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY identity ./identity
COPY loaders ./loaders
RUN pip install . && useradd --create-home --uid 10001 idgraph

USER idgraph
EXPOSE 8000
CMD ["idgraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
