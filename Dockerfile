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
RUN useradd --create-home --uid 50000 mlops && chown -R mlops /opt/mlops
USER mlops
