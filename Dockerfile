# The finsent image used by docker-compose.yml (worker, ingest, migrations).
FROM python:3.11-slim
WORKDIR /app
# Chromium renders `finsent report` pictures (the dashboard itself needs no browser).
RUN apt-get update -q && apt-get install -y -q --no-install-recommends chromium && rm -rf /var/lib/apt/lists/*
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/lock.txt
COPY pyproject.toml README.md ./
COPY pipeline/ pipeline/
COPY models/ models/
COPY connectors/ connectors/
COPY alerts/ alerts/
RUN pip install --no-cache-dir --no-deps .
ENV FINSENT_HOME=/var/lib/finsent FINSENT_DATA_DIR=/data
USER nobody
ENTRYPOINT []
CMD ["finsent", "worker"]
