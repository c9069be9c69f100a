# One image for Airflow, the MLflow server and the Dask workers: the pinned environment plus this package.
# TORCH_VARIANT picks the torch build from PyTorch's wheel index: cpu (the small default) or a CUDA build such as
# cu130, which docker-compose.yaml uses for the GPU workers' image. The lock pins torch's version; only the build
# suffix is added (torch==X -> torch==X+cu130), every other pin stays as locked.
FROM python:3.11-slim
ARG TORCH_VARIANT=cpu
WORKDIR /opt/mlops
COPY requirements.txt constraints.txt pyproject.toml README.md ./
COPY pipelines ./pipelines
RUN sed "s/^torch==\([^+]*\)$/torch==\1+${TORCH_VARIANT}/" constraints.txt > constraints.image.txt
RUN pip install --no-cache-dir --extra-index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
      -r requirements.txt -c constraints.image.txt \
 && pip install --no-cache-dir --no-deps .
COPY dags ./dags
COPY plugins ./plugins
COPY include ./include
COPY scripts ./scripts
# metrics/: the batch path's Prometheus textfiles (a named volume copies this folder's owner)
RUN useradd --create-home --uid 50000 mlops && mkdir -p /opt/mlops/metrics && chown -R mlops /opt/mlops
USER mlops
