FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY memlane memlane
COPY pipelines pipelines
COPY tasks tasks
COPY worker worker
RUN pip install --no-cache-dir . && useradd --create-home memlane && mkdir -p /data \
    && chown memlane /data
USER memlane
ENV MEMLANE_DATA_DIR=/data
CMD ["memlane", "worker"]
