# A Spark 3.5 master, worker or job with idgraph's Python side (docker-compose.yml, profile
# "spark"; docs/spark.md). The official image brings Spark and Java 17; its Python is 3.10,
# idgraph needs 3.11, which Ubuntu 22.04 packages: executors run the per-component rules with it.
FROM apache/spark:3.5.9-python3

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the exact versions of uv.lock (with the spark extra), then idgraph itself
COPY pyproject.toml uv.lock README.md ./
RUN python3.11 -m venv /opt/idgraph \
    && /opt/idgraph/bin/pip install --no-cache-dir uv==0.13.9 \
    && /opt/idgraph/bin/uv export --frozen --no-dev --extra spark --no-emit-project \
       -o /tmp/requirements.txt \
    && /opt/idgraph/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY identity ./identity
COPY loaders ./loaders
RUN /opt/idgraph/bin/pip install --no-cache-dir --no-deps . \
    && mkdir -p /exchange && chown spark:spark /exchange

ENV PATH=/opt/idgraph/bin:$PATH \
    PYSPARK_PYTHON=/opt/idgraph/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/idgraph/bin/python
USER spark
WORKDIR /opt/spark/work-dir
