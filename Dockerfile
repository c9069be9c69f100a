# One image for Airflow, the MLflow server and the Dask workers: the pinned environment plus this package.
# TORCH_VARIANT picks the torch build (scripts/torch_build.sh): cpu (the small default, from PyTorch's wheel index) or
# cuda (PyPI's own wheel as locked, a CUDA 13.0 build), which docker-compose.yaml uses for the GPU workers' image;
# another CUDA build such as cu126 comes from PyTorch's index. The lock pins torch's version; at most the build
# suffix is added (torch==X -> torch==X+cpu), every other pin stays as locked.
FROM python:3.11-slim
ARG TORCH_VARIANT=cpu
WORKDIR /opt/mlops
COPY requirements.txt constraints.txt pyproject.toml README.md ./
COPY scripts/torch_build.sh ./scripts/
COPY pipelines ./pipelines
RUN pip install --no-cache-dir $(sh scripts/torch_build.sh "$TORCH_VARIANT") -r requirements.txt \
      -c constraints.image.txt \
 && pip install --no-cache-dir --no-deps .
COPY dags ./dags
COPY plugins ./plugins
COPY include ./include
COPY scripts ./scripts
# metrics/: the batch path's Prometheus textfiles; airflow/logs: the task logs of the CeleryExecutor's workers (a
# named volume copies the owner of the folder it is mounted on)
RUN useradd --create-home --uid 50000 mlops && mkdir -p /opt/mlops/metrics /opt/mlops/airflow/logs \
 && chown -R mlops /opt/mlops
# NannyML's own switch for its usage telemetry: off in every process of the image, should NannyML be installed in it
# (the image installs requirements.txt only; NannyML is a test dependency, requirements-test.txt)
ENV NML_DISABLE_USAGE_LOGGING=1
USER mlops
