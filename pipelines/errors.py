"""The pipeline's error types, in a module with no dependencies.

Airflow's retry policy (dags/_support.py) resolves these classes while a DAG file is parsed, so importing them
must not import pandas, pandera or MLflow.
"""


class ConfigError(ValueError):
    """An invalid or missing configuration file; the message names the file and key."""


class TooFewWorkers(ConfigError):
    """Fewer free Dask workers than stages to place: a configuration error at the start of a run, but a wait while a
    lost stage is rebuilt (a nanny restarts a killed worker within seconds)."""


class DataError(ValueError):
    """Input that cannot be processed at all; the message names the file, the column and the row count."""


class QualityGateError(DataError):
    """A day failed the volume or quarantine gate and was not published: a feed problem worth an alert of its own
    (``alerts.events: quarantine``), not a bug."""


class RegistryError(RuntimeError):
    """The registry lacks what a stage needs (a model, an alias); the message says which and what to run."""


class InvariantError(RuntimeError):
    """A guarantee the code itself must keep was broken (e.g. rows in != scored + dead-lettered): a bug to fix,
    which a retry would only repeat; nothing is published."""


class StageLost(RuntimeError):
    """A worker holding a stage of a sharded model is gone (or cannot be reached): the rows are not at fault, so
    they are never dead-lettered for it; the piece is redone once the stage is rebuilt (:mod:`pipelines.sharding`)."""


class DefinitionMismatch(RegistryError):
    """The champion was trained with feature definitions other than the config's (or a day was computed with
    others): scoring would feed it features it never learned; retrain on the new definitions or revert the config."""
