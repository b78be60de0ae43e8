# The finsent image used by docker-compose.yml (worker, ingest, migrations).
FROM python:3.11-slim
WORKDIR /app
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
