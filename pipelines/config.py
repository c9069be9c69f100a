"""The one configuration contract: a YAML file validated by pydantic.

A user brings their own data by writing one of these files and pointing ``MLOPS_CONFIG`` at it. Every stage
takes the validated :class:`Config`; nothing else reads the YAML. Errors name the file and the offending key.

Longer than the other modules on purpose: it is the one place every key is declared, with its type, default,
bounds and description (the documentation's configuration reference is generated from it), so splitting it would
only scatter the contract a user writes against.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = "include/config/demo.yaml"

# Metrics a model may be judged by, and whether a larger value is better.
CLASSIFICATION_METRICS = {"roc_auc": True, "average_precision": True, "accuracy": True, "f1": True, "log_loss": False}
REGRESSION_METRICS = {"rmse": False, "mae": False, "r2": True}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


AggregateFunction = Literal["count", "sum", "mean", "min", "max", "std", "last", "distinct_count", "days_since_last"]
# What each function needs of its column: none (counts events), a numerical column, or any declared column.
NO_COLUMN: frozenset[str] = frozenset({"count", "days_since_last"})
ANY_COLUMN: frozenset[str] = frozenset({"distinct_count"})
NEVER_MISSING: frozenset[str] = frozenset({"count", "distinct_count"})
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class HistoryTable(_Strict):
    """An event-history table beside the scored rows (payments, logins, claims): features aggregate it per entity."""

    source: str = Field(
        description="the table's events: a file, glob or s3:// URI of .parquet or .csv files; relative paths resolve"
        " against MLOPS_HOME"
    )
    entity: str = Field(description="column of the history rows holding the entity key (e.g. customer_id)")
    event_time: str = Field(description="column of the history rows holding each event's time (UTC)")
    join_key: str | None = Field(
        default=None,
        description="column of the scored rows holding the entity key; null: the column named like `entity`",
    )
    numerical: list[str] = Field(default_factory=list, description="numerical columns features may aggregate")
    categorical: list[str] = Field(
        default_factory=list, description="text columns features may count distinct values of or filter on"
    )
    delay_hours: float = Field(
        default=0,
        ge=0,
        description="availability delay: a row at time t sees only events before t minus this many hours (an event"
        " lands in the source this long after it happened)",
    )

    @property
    def columns(self) -> list[str]:
        return [*self.numerical, *self.categorical]

    @property
    def on(self) -> str:
        """The scored rows' column the entity is joined on."""
        return self.join_key or self.entity


class Aggregate(_Strict):
    """Per-entity aggregates of one history table over trailing windows, one feature per (function, window)."""

    name: str = Field(pattern=NAME, description="prefix of the features: `<name>_<function>_<window>d`")
    table: str = Field(description="the history table (a key of `dataset.history`)")
    column: str | None = Field(
        default=None,
        description="the aggregated column (numerical for sum/mean/min/max/std/last; any for distinct_count); null"
        " for count and days_since_last alone",
    )
    functions: list[AggregateFunction] = Field(
        min_length=1,
        description="count (events), sum, mean, min, max, std (sample), last (value of the latest event),"
        " distinct_count, days_since_last (days from the row's time to the latest event); nulls of the column are"
        " skipped",
    )
    windows: list[int] = Field(
        min_length=1, description="trailing windows in days, ending at the row's time (minus the table's delay)"
    )
    where: str | None = Field(
        default=None,
        description="row filter over the table's columns, e.g. `amount > 0 and status == 'late'` (comparisons,"
        " and/or/not, + - * /; parsed, never evaluated as code)",
    )
    default: float | None = Field(
        default=None,
        description="the value of a window with nothing to aggregate (no event, or only missing values; count and"
        " distinct_count are 0 then), also given online to an entity the store lacks; null: 0 for sum, missing for"
        " the others",
    )

    @field_validator("windows")
    @classmethod
    def _positive_distinct(cls, value: list[int]) -> list[int]:
        if any(w < 1 for w in value) or len(set(value)) != len(value):
            raise ValueError(f"windows must be distinct whole days >= 1, got {value}")
        return value

    def feature(self, function: str, window: int) -> str:
        return f"{self.name}_{function}_{window}d"

    @property
    def outputs(self) -> list[str]:
        """The features this aggregate adds, in a stable order."""
        return [self.feature(f, w) for f in self.functions for w in self.windows]

    def default_of(self, function: str) -> float | None:
        """The value of a window with nothing to aggregate (what an entity the online store lacks is given too):
        counts are 0, never missing; else the declared default, or 0 for a sum."""
        if function in NEVER_MISSING:
            return 0.0
        if self.default is not None:
            return self.default
        return 0.0 if function == "sum" else None


class FeatureSpec(_Strict):
    numerical: list[str] = Field(
        default_factory=list, description="numerical feature columns (read as float; missing values are imputed)"
    )
    categorical: list[str] = Field(
        default_factory=list, description="categorical feature columns (read as text; unseen categories are ignored)"
    )
    aggregates: list[Aggregate] = Field(
        default_factory=list,
        description="declared per-entity aggregates over `dataset.history` tables, point-in-time correct: a row"
        " sees only its entity's events before its own time",
    )
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="row-level features: name -> arithmetic over the row's numerical features, aggregates and"
        " earlier derived features, e.g. `loan_amount / income` (+ - * /, abs, sqrt, log1p, min, max; a division"
        " by zero is missing); parsed, never evaluated as code",
    )

    @model_validator(mode="after")
    def _non_empty_and_disjoint(self) -> FeatureSpec:
        if not self.numerical and not self.categorical and not self.computed:
            raise ValueError("at least one numerical or categorical feature is required")
        both = set(self.numerical) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numerical and categorical: {sorted(both)}")
        names = [*self.numerical, *self.categorical, *self.computed]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names declared twice (raw, aggregate outputs or derived): {repeated}")
        return self

    @property
    def raw(self) -> list[str]:
        """The columns the scored rows carry themselves (what a request sends; what extraction validates)."""
        return [*self.numerical, *self.categorical]

    @property
    def aggregated(self) -> list[str]:
        return [name for aggregate in self.aggregates for name in aggregate.outputs]

    @property
    def computed(self) -> list[str]:
        """The declared features, computed by the pipeline: aggregates, then derived (all numerical)."""
        return [*self.aggregated, *self.derived]

    @property
    def numbers(self) -> list[str]:
        """The model's numerical inputs: the raw ones, then the computed ones."""
        return [*self.numerical, *self.computed]

    @property
    def all(self) -> list[str]:
        """Every model input: numerical (raw, then computed), then categorical."""
        return [*self.numbers, *self.categorical]


class ColumnCheck(_Strict):
    """Row-level bounds for a numerical feature or allowed values for a categorical one."""

    min: float | None = Field(default=None, description="numerical: smallest valid value; a smaller one is quarantined")
    max: float | None = Field(default=None, description="numerical: largest valid value; a larger one is quarantined")
    allowed: list[str] | None = Field(
        default=None, description="categorical: the valid values; any other value is quarantined"
    )


class DatasetConfig(_Strict):
    source: str = Field(
        description="raw events: a file, glob or s3:// URI of .parquet or .csv (.csv.gz) files; relative paths"
        " resolve against MLOPS_HOME"
    )
    event_time: str = Field(description="column holding each row's event time (UTC): rows are assigned to days by it")
    key: str = Field(description="unique row key column, carried to every output (predictions, logs, dead letters)")
    target: str = Field(description="label column: 0/1 for classification, a number for regression")
    labels: str | None = Field(
        default=None,
        description="separate label source (key + target [+ label_time]), joined on key; null: the target is read"
        " from the events (then no realized metric, performance table or metric-drop trigger)",
    )
    label_time: str | None = Field(
        default=None,
        description=(
            "column of the label source saying when each label became known (UTC); a run for day D sees only the"
            " labels known before D+1, so delayed labels are honoured and reruns see what the first run saw."
            " null: every label counts as known from the start"
        ),
    )
    features: FeatureSpec = Field(
        description="the model's inputs: raw columns of the rows, and features declared over history tables"
    )
    history: dict[str, HistoryTable] = Field(
        default_factory=dict,
        description="event-history tables by name (payments, logins ...), which `features.aggregates` aggregate",
    )
    checks: dict[str, ColumnCheck] = Field(
        default_factory=dict, description="row checks per feature column; failing rows are quarantined with a reason"
    )

    @property
    def join_keys(self) -> list[str]:
        """Columns the rows carry only to join history tables on (not the key, not a feature)."""
        used = {a.table for a in self.features.aggregates}
        ons = {self.history[t].on for t in used if t in self.history}
        return sorted(ons - {self.key, *self.features.raw})

    @model_validator(mode="after")
    def _columns_consistent(self) -> DatasetConfig:
        reserved = {self.event_time, self.key, self.target} | ({self.label_time} if self.label_time else set())
        clash = reserved & set(self.features.all)
        if clash:
            raise ValueError(f"key/event_time/target may not also be features: {sorted(clash)}")
        unknown = set(self.checks) - set(self.features.raw)
        if unknown:
            raise ValueError(f"checks name columns that are not features of the rows: {sorted(unknown)}")
        clash = (reserved | set(self.features.raw)) & set(self.features.computed)
        if clash:
            raise ValueError(f"declared features named like columns of the rows: {sorted(clash)}")
        for index, aggregate in enumerate(self.features.aggregates):
            _check_aggregate(aggregate, self.history, f"features.aggregates.{index}")
        known = set(self.features.numerical) | set(self.features.aggregated)
        for name, text in self.features.derived.items():
            _check_expression(
                text, known, f"features.derived.{name}", "numerical features, aggregates or earlier derived features"
            )
            known.add(name)
        return self


def _check_aggregate(aggregate: Aggregate, history: dict[str, HistoryTable], key: str) -> None:
    """An aggregate names a declared table, a column of it that fits each function, and a filter over its columns."""
    table = history.get(aggregate.table)
    if table is None:
        raise ValueError(f"{key}.table: unknown history table {aggregate.table!r}; declared: {sorted(history)}")
    needs = sorted(set(aggregate.functions) - NO_COLUMN)
    if aggregate.column is None and needs:
        raise ValueError(f"{key}.column: required by {needs}")
    if aggregate.column is not None:
        if aggregate.column not in table.columns:
            raise ValueError(
                f"{key}.column: unknown column {aggregate.column!r} of history table {aggregate.table!r};"
                f" declared: {table.columns}"
            )
        numeric = sorted(set(aggregate.functions) - NO_COLUMN - ANY_COLUMN)
        if aggregate.column not in table.numerical and numeric:
            raise ValueError(f"{key}.column: {numeric} need a numerical column, {aggregate.column!r} is categorical")
    if aggregate.where is not None:
        _check_expression(aggregate.where, set(table.columns), f"{key}.where", f"columns of {aggregate.table!r}")


def _check_expression(text: str, known: set[str], key: str, what: str) -> None:
    """Parse an expression (the grammar of :mod:`pipelines.expressions`) and check every name it reads."""
    from pipelines.expressions import ExpressionError, parse

    try:
        names = parse(text).names
    except ExpressionError as exc:
        raise ValueError(f"{key}: {exc}") from exc
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(f"{key}: unknown name(s) {unknown} in {text!r}; it may use {what}: {sorted(known)}")


TORCH_ESTIMATOR = "pipelines.torch_model.TabularNet"


class ModelConfig(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="registered model name in MLflow; also the suffix of the DAG ids and asset names",
    )
    flavor: Literal["sklearn", "torch"] = Field(
        default="sklearn", description="sklearn: a scikit-learn Pipeline; torch: the PyTorch MLP TabularNet"
    )
    estimator: str | None = Field(
        default=None, description="sklearn: the dotted import path of an estimator class; torch: leave out (TabularNet)"
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the estimator (torch: hidden, epochs, lr, batch_size)",
    )
    metric: str = Field(description="the metric models are evaluated, compared and promoted by; it must fit the task")

    @model_validator(mode="after")
    def _estimator_for_flavor(self) -> ModelConfig:
        if self.flavor == "torch" and self.estimator in (None, TORCH_ESTIMATOR):
            return self.model_copy(update={"estimator": TORCH_ESTIMATOR})
        if self.flavor == "torch":
            raise ValueError(f"flavor torch trains {TORCH_ESTIMATOR}; leave model.estimator out")
        if self.estimator is None:
            raise ValueError("model.estimator is required for flavor sklearn")
        return self

    @field_validator("estimator")
    @classmethod
    def _dotted_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", value):
            raise ValueError(
                f"expected a dotted import path like 'sklearn.linear_model.LogisticRegression', got {value!r}"
            )
        return value


class TrainingConfig(_Strict):
    window_days: int = Field(
        default=7, ge=1, description="days of labeled features a model trains on, ending on the run's day"
    )
    holdout_fraction: float = Field(
        default=0.2, gt=0, lt=0.9, description="newest share of the window held out for the logged metrics"
    )
    reference_rows: int = Field(
        default=5000, ge=100, description="rows of the training window kept as the drift reference artifact"
    )
    min_rows: int = Field(default=200, ge=10, description="fewer labeled rows in the window fail the training")
    seed: int = Field(default=42, description="seed of the reference sample, the report sample and the bootstrap")


class StorageConfig(_Strict):
    root: str = Field(description="the lake: a local folder or s3://bucket/prefix; one per config")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage_options, e.g. endpoint_url, key, secret; translated for delta-rs (the tables)",
    )


class MlflowConfig(_Strict):
    tracking_uri: str = Field(
        default="sqlite:///mlruns.db",
        description="MLflow tracking URI (a relative sqlite path resolves against MLOPS_HOME); env MLFLOW_TRACKING_URI"
        " wins",
    )
    experiment: str = Field(default="mlops-pipeline", description="MLflow experiment of the model's runs")


class ScoringConfig(_Strict):
    scheduler_address: str | None = Field(
        default=None, description="external Dask scheduler; env DASK_SCHEDULER_ADDRESS wins"
    )
    n_workers: int | None = Field(
        default=None, ge=1, description="LocalCluster CPU worker processes; default: one per core"
    )
    gpu_workers: int | None = Field(
        default=None, ge=0, description="LocalCluster GPU workers; default: one per visible GPU"
    )
    partition_rows: int = Field(default=250_000, ge=1, description="rows per Parquet row group = rows per Dask task")
    torch_batch_rows: int = Field(default=65_536, ge=1, description="rows per forward pass of a torch model")
    shards: int = Field(
        default=1,
        ge=1,
        description="torch: contiguous stages the network's layers are cut into (about equal parameter bytes), each"
        " held by its own Dask worker, for a model too large for one worker; it buys capacity, not speed."
        " 1: the whole model on every worker",
    )
    shard_batch_rows: int = Field(
        default=4096,
        ge=1,
        description="with shards > 1: rows per micro-batch flowing stage to stage (2 x shards of them in flight)",
    )
    batch_retries: int = Field(
        default=2,
        ge=0,
        description="Dask retries of a row-group task that raised (transient I/O); model errors are"
        " isolated row by row instead",
    )
    max_dead_letter_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="fail the run (publishing only the dead letters) above this share of dead-lettered rows",
    )


class MonitoringConfig(_Strict):
    sample_rate: float = Field(default=0.1, ge=0, le=1, description="share of keys logged with features + prediction")
    window_days: int = Field(default=3, ge=1, description="days of the prediction log compared with the reference")
    window_wait_minutes: int = Field(
        default=60,
        ge=0,
        description="a check waits up to this long for earlier days of its window that are extracted but not yet"
        " scored (a backfill's days finish out of order); then it checks without them, saying so",
    )
    min_rows: int = Field(default=100, ge=1, description="fewer logged rows in the window: the check is skipped")
    report_rows: int = Field(
        default=10_000,
        ge=1_001,  # at 1,000 rows or fewer Evidently picks other tests (K-S, chi-square) than those that decided
        description="rows of the window and of the reference rendered in the HTML report (sampled; verdicts use all)",
    )
    drift_share_threshold: float = Field(
        default=0.3, gt=0, le=1, description="retrain when this share of the features drifts"
    )
    metric_drop_threshold: float = Field(
        default=0.05,
        ge=0,
        description="retrain when the realized metric of the newest labeled day is this much below training",
    )
    estimated_drop_threshold: float | None = Field(
        default=None,
        ge=0,
        description="retrain when the checked day's estimated metric (CBPE, or direct loss estimation for regression:"
        " from its scores alone, before any label) is this much below training; null: off. The estimate sees"
        " covariate shift, not concept drift",
    )
    missing_share_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="flag a feature whose missing share rises by more than this (see missing_trigger)",
    )
    missing_trigger: bool = Field(
        default=True,
        description="retrain when a feature's missing share rises by more than missing_share_threshold"
        " (a feature entirely missing counts)",
    )
    output_drift_trigger: bool = Field(
        default=False,
        description="retrain when the model's output (probability or prediction) drifts; off by default: the"
        " reference's outputs are the model's on its own training rows, which differ from live outputs even on"
        " stable days",
    )
    multivariate_variance: float = Field(
        default=0.65,
        gt=0,
        lt=1,
        description="multivariate drift: share of the reference's variance the PCA's kept components explain",
    )
    multivariate_sigmas: float = Field(
        default=3.0,
        gt=0,
        description="multivariate drift: the window's reconstruction error drifts above the reference chunks' mean"
        " plus this many of their standard deviations",
    )
    multivariate_trigger: bool = Field(
        default=True,
        description="retrain when the multivariate signal (PCA reconstruction error) passes its threshold",
    )
    segments: list[str] = Field(
        default_factory=list,
        description="categorical features whose values are monitored apart (e.g. [region, product]): drift share"
        " and realized metric per value in the report and MLflow, and a value whose metric falls past"
        " segment_metric_drop_threshold triggers retraining; the promotion guard checks each value too",
    )
    segment_metric_drop_threshold: float = Field(
        default=0.1,
        ge=0,
        description="retrain when a segment value's realized metric on the newest labeled day (at least min_rows"
        " labeled rows) is this much below the champion's training metric",
    )
    estimate_resamples: int = Field(
        default=100,
        ge=20,
        description="draws of the estimated metric's interval (CBPE: calibration refitted on a bootstrap of the"
        " champion's holdout, labels drawn from it); each costs ~3 ms a day",
    )
    cooldown_days: int = Field(default=3, ge=0, description="no second retraining within this many days")
    min_new_labels: int = Field(
        default=500, ge=0, description="labeled rows newer than the champion's window needed to retrain"
    )
    min_label_share: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description=(
            "a scored day counts as labeled once this share of its rows has labels: only such days feed the"
            " metric-drop trigger and the promotion holdout"
        ),
    )
    label_horizon_days: int = Field(
        default=90, ge=1, description="scored days are revisited for arriving labels for this many days"
    )
    metric_window_days: int = Field(
        default=1,
        ge=1,
        le=92,
        description="the performance table's realized and estimated metric (with their intervals) also over the"
        " trailing window of this many scored days ending on each day, with the window's labeled rows and a flag when"
        " they are fewer than min_rows; above 1 the metric-drop and estimated-drop triggers read the window's figures:"
        " a low-volume model (tens of rows a day) gets a metric where each day alone has too few rows. 1: the day",
    )
    evidently_workspace: str | None = Field(
        default="evidently_workspace",
        description="a local folder holding Evidently's own workspace (a relative path resolves against"
        " MLOPS_HOME; one project per model.name, shared by every config): each drift check adds its report, and"
        " each performance row its realized and estimated metric, as the day's snapshot, which `make evidently-ui`"
        " charts over days; null: off",
    )


class PromotionConfig(_Strict):
    """A challenger replaces the champion only if it beats it on the same current holdout, by a margin."""

    holdout_days: int = Field(
        default=1, ge=1, description="newest labeled days held out from the challenger's training"
    )
    min_improvement: float = Field(
        default=0.005, ge=0, description="metric gain over the champion the challenger must show on the holdout"
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="confidence level of the paired bootstrap interval of the gain, which must lie above 0",
    )
    bootstrap: int = Field(
        default=300, ge=50, description="bootstrap resamples for the gain's interval and the performance table's"
    )
    min_samples: int = Field(default=200, ge=10, description="a holdout with fewer labeled rows never promotes")
    approval: Literal["automatic", "required"] = Field(
        default="automatic",
        description="required: a promotion waits in the retraining DAG for a person to approve it (Airflow's"
        " ApprovalOperator, with the decision, both metrics, the interval and the segment table); rejecting it"
        " or letting it time out keeps the champion",
    )
    approval_timeout_hours: float = Field(
        default=72, gt=0, description="a promotion not answered within this many hours is rejected"
    )
    max_segment_loss: float = Field(
        default=0.02,
        ge=0,
        description="a challenger that wins overall is kept out if, on a monitoring.segments value with at least"
        " min_samples holdout rows, its gain's paired bootstrap interval (at confidence) lies below -max_segment_loss",
    )


CRON = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")


class ScheduleConfig(_Strict):
    """When the DAGs run. Days are UTC; a run for a day before ``start_date`` fails with a message (Airflow's own
    start date is kept far back, so such a run still has tasks to fail instead of silently succeeding empty)."""

    start_date: date | None = Field(default=None, description="first day the pipeline processes; null: any day")
    extraction_cron: str = Field(
        default="0 0 * * *",
        description="cron of the daily feature extraction (UTC); its hour sets how long after midnight a day is read",
    )
    retraining_cron: str | None = Field(
        default="0 3 * * 1", description="cron of the scheduled retraining (UTC); null: triggered and manual only"
    )
    source_wait_minutes: float = Field(
        default=720,
        ge=0,
        description="how long a day's extraction waits for its source data to land before failing (0: no wait)",
    )
    source_poke_minutes: float = Field(default=10, gt=0, description="how often a waiting extraction looks again")

    @field_validator("extraction_cron", "retraining_cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        if value is not None and not CRON.match(value):
            raise ValueError(f"expected a 5-field cron expression like '0 0 * * *', got {value!r}")
        return value

    @field_validator("extraction_cron")
    @classmethod
    def _daily(cls, value: str) -> str:
        if value.split()[2:] != ["*", "*", "*"]:
            raise ValueError(f"feature extraction runs once per day: day, month and weekday must be '*', got {value!r}")
        return value

    def require_day(self, day: date) -> None:
        """Refuse a day before the configured start, with the fix in the message."""
        if self.start_date is not None and day < self.start_date:
            raise ConfigError(
                f"{day} is before schedule.start_date {self.start_date}: the pipeline does not process it "
                "(set schedule.start_date earlier in the config to include it)"
            )


class QualityConfig(_Strict):
    """Volume and quarantine limits a day must meet before its features are published."""

    min_rows: int = Field(default=1, ge=0, description="fewer source rows for a day fails it (0 accepts empty days)")
    min_volume_ratio: float = Field(
        default=0.2, ge=0, le=1, description="fail below this share of the median rows of the preceding days"
    )
    volume_history_days: int = Field(default=7, ge=1, description="preceding extracted days the median is taken over")
    max_quarantine_share: float = Field(
        default=0.1, ge=0, le=1, description="fail above this share of quarantined rows (quarantine still published)"
    )


AlertEvent = Literal["task_failure", "drift", "promotion", "quarantine"]
ALERT_EVENTS: tuple[AlertEvent, ...] = ("task_failure", "drift", "promotion", "quarantine")


class SmtpAlerts(_Strict):
    """E-mail through an Airflow SMTP connection; the server and its credentials live in the connection only."""

    conn_id: str = Field(
        default="smtp_default",
        description="Airflow connection of the SMTP server (host, port, login, password; e.g. env"
        " AIRFLOW_CONN_SMTP_DEFAULT or a secrets backend), never this file",
    )
    to: list[str] = Field(min_length=1, description="recipients")
    from_email: str | None = Field(default=None, description="sender; null: the connection's from_email extra")


class WebhookAlerts(_Strict):
    """A JSON POST (``text`` plus the alert's fields) through an Airflow HTTP connection, e.g. a Slack incoming
    webhook or a chat/incident tool's endpoint; its URL and any token live in the connection only."""

    conn_id: str = Field(description="Airflow HTTP connection holding the webhook's URL (and credentials)")
    endpoint: str = Field(default="", description="path appended to the connection's URL")


class AlertsConfig(_Strict):
    """Who is told, and about what. No channel (the default) sends nothing."""

    smtp: SmtpAlerts | None = Field(default=None, description="e-mail channel; null: none")
    webhook: WebhookAlerts | None = Field(default=None, description="webhook channel; null: none")
    events: list[AlertEvent] = Field(
        default_factory=lambda: list(ALERT_EVENTS),
        description="task_failure (a task failed for good), drift (drift monitoring starts a retraining),"
        " promotion (a challenger was promoted or kept), quarantine (a day's quarantine share reached"
        " quarantine_warn_share, or the quality gate failed a day)",
    )
    quarantine_warn_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="alert when a published day has at least this share of its rows quarantined (above"
        " quality.max_quarantine_share the gate fails the day, which alerts too)",
    )

    def wants(self, event: AlertEvent) -> bool:
        """Whether an ``event`` goes anywhere: a channel is configured and the event is selected."""
        return (self.smtp is not None or self.webhook is not None) and event in self.events


class ServingConfig(_Strict):
    """Online serving (``python -m pipelines.serving``): dynamic batching, reloads and the release strategy."""

    max_batch_rows: int = Field(default=256, ge=1, description="rows predicted together; 1 turns batching off")
    max_wait_ms: float = Field(default=5.0, ge=0, description="longest a request waits for its batch to fill")
    max_queue_rows: int = Field(default=4096, ge=1, description="queued rows beyond this answer 429")
    max_request_rows: int = Field(default=1000, ge=1, description="rows one request may carry")
    reload_interval_s: float = Field(default=5.0, gt=0, description="how often the aliases are checked for a move")
    strategy: Literal["champion", "canary", "ab", "shadow"] = Field(
        default="champion",
        description="champion: only the champion; canary/ab: challenger_share of keys to the challenger (ab logs"
        " every row of both arms); shadow: the challenger also scores every request, off the response path",
    )
    challenger_alias: str = Field(
        default="challenger",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="registry alias the canary/ab/shadow arm serves",
    )
    challenger_share: float = Field(default=0.1, ge=0, le=1, description="canary/ab share of keys (by key hash)")
    log_flush_rows: int = Field(default=2000, ge=1, description="prediction-log rows buffered before a part file")
    log_flush_s: float = Field(default=10.0, gt=0, description="longest a logged row waits in memory")
    predict_in: Literal["process", "thread"] = Field(
        default="process",
        description="process: batches are predicted in a child process, on a core the event loop does not use;"
        " thread: in the server process (a one-core machine)",
    )


class FeatureStoreConfig(_Strict):
    """The Feast feature store generated from the declared aggregates: what the online server looks them up in."""

    enabled: bool = Field(
        default=True,
        description="with declared aggregates: generate a Feast repository, materialize each extracted day into its"
        " online store and have the model server look the aggregates up by entity key (a request carries the key,"
        " join keys and raw features only); false: a request carries every feature",
    )
    repo: str = Field(
        default="feature_repo",
        description="local folder of the generated Feast repositories, one per model (`<repo>/<model.name>`);"
        " relative paths resolve against MLOPS_HOME",
    )
    online_store: dict[str, Any] = Field(
        default_factory=dict,
        description="Feast online store settings, e.g. `{type: redis, connection_string: 'redis:6379'}`; empty:"
        " SQLite in the repository folder",
    )


class Config(_Strict):
    dataset: DatasetConfig = Field(description="where the raw events and labels are, and their columns")
    task: Literal["classification", "regression"] = Field(
        description="classification (binary 0/1 target) or regression"
    )
    model: ModelConfig = Field(description="what is trained and under which name it is registered")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="the training window and holdout")
    storage: StorageConfig = Field(description="the lake every table is written to")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="the MLflow tracking store and experiment")
    scoring: ScoringConfig = Field(default_factory=ScoringConfig, description="batch scoring on Dask")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="the prediction log, drift checks and retrain triggers"
    )
    promotion: PromotionConfig = Field(
        default_factory=PromotionConfig, description="when a challenger replaces the champion"
    )
    schedule: ScheduleConfig = Field(
        default_factory=ScheduleConfig, description="the DAGs' start day and crons (read when the DAG files are parsed)"
    )
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="volume and quarantine limits a day must meet to be published"
    )

    serving: ServingConfig = Field(default_factory=ServingConfig, description="the online model server")
    feature_store: FeatureStoreConfig = Field(
        default_factory=FeatureStoreConfig, description="the Feast store the declared aggregates are served from"
    )
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="alert channels and events")

    @model_validator(mode="after")
    def _segments_are_categorical(self) -> Config:
        unknown = [c for c in self.monitoring.segments if c not in self.dataset.features.categorical]
        if unknown:
            raise ValueError(
                f"monitoring.segments {unknown} are not in dataset.features.categorical"
                f" {self.dataset.features.categorical}: a segment is a categorical feature"
            )
        return self

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Config:
        allowed = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        if self.model.metric not in allowed:
            raise ValueError(
                f"model.metric {self.model.metric!r} is not a {self.task} metric; choose from {sorted(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _shards_need_torch(self) -> Config:
        if self.scoring.shards > 1 and self.model.flavor != "torch":
            raise ValueError(
                f"scoring.shards {self.scoring.shards} cuts a torch network into stages; model.flavor is"
                f" {self.model.flavor!r} (leave scoring.shards at 1)"
            )
        return self

    @property
    def online_features(self) -> bool:
        """Whether the model server looks declared aggregates up in the feature store (else requests carry them)."""
        return self.feature_store.enabled and bool(self.dataset.features.aggregates)

    @property
    def greater_is_better(self) -> bool:
        return {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}[self.model.metric]

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri

    @property
    def scheduler_address(self) -> str | None:
        return os.environ.get("DASK_SCHEDULER_ADDRESS") or self.scoring.scheduler_address


def project_home() -> Path:
    """Where relative paths in a config resolve: ``MLOPS_HOME``, else the repository root."""
    return Path(os.environ.get("MLOPS_HOME") or PROJECT_ROOT).resolve()


def _resolve_path(value: str, home: Path) -> str:
    if "://" in value or Path(value).is_absolute():
        return value
    return str(home / value)


def _resolve_sqlite(uri: str, home: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(home / uri[len(prefix) :])
    return uri


def _tracking_uri(configured: str, home: Path) -> str:
    """Env ``MLFLOW_TRACKING_URI`` overrides the file, so one config serves every deployment.

    Read once, at load: MLflow itself writes that variable whenever a process sets its tracking URI.
    """
    return _resolve_sqlite(os.environ.get("MLFLOW_TRACKING_URI") or configured, home)


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _interpolate_env(value: Any, file: Path, key: str = "") -> Any:
    """Replace ``${NAME}`` in every string of the file with that environment variable.

    One file then serves every deployment of a stack while endpoints and credentials stay out of git. An unset
    variable is an error naming the key, never an empty string that would fail later and far away.
    """
    if isinstance(value, dict):
        return {
            name: _interpolate_env(item, file, f"{key}.{name}" if key else str(name)) for name, item in value.items()
        }
    if isinstance(value, list):
        return [_interpolate_env(item, file, f"{key}.{index}") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"config file {file}: {key} uses ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return _ENV_REFERENCE.sub(substitute, value)


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = [f"invalid config {path}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: the argument, else ``MLOPS_CONFIG``, else the demo config."""
    chosen = Path(path or os.environ.get("MLOPS_CONFIG") or DEFAULT_CONFIG)
    return chosen if chosen.is_absolute() else project_home() / chosen


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, validate and resolve a config file; relative data paths become absolute against :func:`project_home`."""
    file = config_path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file} (set MLOPS_CONFIG or pass a path)")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {file} must hold a mapping at the top level")
    try:
        config = Config.model_validate(_interpolate_env(raw, file))
    except ValidationError as exc:
        raise ConfigError(_format_errors(file, exc)) from exc
    home = project_home()
    dataset = config.dataset.model_copy(
        update={
            "source": _resolve_path(config.dataset.source, home),
            "labels": _resolve_path(config.dataset.labels, home) if config.dataset.labels else None,
            "history": {
                name: table.model_copy(update={"source": _resolve_path(table.source, home)})
                for name, table in config.dataset.history.items()
            },
        }
    )
    return config.model_copy(
        update={
            "dataset": dataset,
            "storage": config.storage.model_copy(update={"root": _resolve_path(config.storage.root, home)}),
            "monitoring": config.monitoring.model_copy(
                update={
                    "evidently_workspace": config.monitoring.evidently_workspace
                    and _resolve_path(config.monitoring.evidently_workspace, home)
                }
            ),
            "feature_store": config.feature_store.model_copy(
                update={"repo": _resolve_path(config.feature_store.repo, home)}
            ),
            "mlflow": config.mlflow.model_copy(
                update={"tracking_uri": _tracking_uri(config.mlflow.tracking_uri, home)}
            ),
        }
    )
