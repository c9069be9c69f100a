"""Online serving of the registered champion beside the batch path: one registry, one prediction log.

``python -m pipelines.serving --config A.yaml [--config B.yaml]`` serves one model per config (see
:mod:`pipelines.serving.app` for the HTTP API, :mod:`pipelines.serving.engine` for batching and reloads and
:mod:`pipelines.serving.predlog` for how online rows join the prediction log).
"""
