# One image for Airflow, the MLflow server and the Dask workers: the pinned environment plus this package.
FROM python:3.11-slim
WORKDIR /opt/mlops
COPY requirements.txt constraints.txt pyproject.toml README.md ./
COPY pipelines ./pipelines
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt \
 && pip install --no-cache-dir psycopg2-binary==2.9.11 \
 && pip install --no-cache-dir --no-deps .
COPY dags ./dags
COPY plugins ./plugins
COPY include ./include
# metrics/: the batch path's Prometheus textfiles (a named volume copies this folder's owner)
RUN useradd --create-home --uid 50000 mlops && mkdir -p /opt/mlops/metrics && chown -R mlops /opt/mlops
USER mlops
