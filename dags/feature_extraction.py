"""
### Feature extraction

Reads the raw events whose event time falls in the run's day (CSV or Parquet, local or `s3://`, as
`dataset.source` in the config says), validates them against a schema derived from the config, and publishes:

- `<storage.root>/features/date=YYYY-MM-DD/`: the valid rows, ready for training and scoring;
- `<storage.root>/quarantine/date=YYYY-MM-DD/`: every rejected row with a `quarantine_reason`.

Rows in = rows valid + rows quarantined, always. A rerun or backfill replaces the day's partitions (it never
appends). Success updates the `mlops.features` asset, which starts `batch_scoring` for that day.

**Params**: `config` (a YAML path; default `MLOPS_CONFIG`) and `date` (a day to process instead of the run's).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from _support import DEFAULT_ARGS, FEATURES, PARAMS, partition_day, run_config


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["mlops", "features"],
    doc_md=__doc__,
)
def feature_extraction():
    @task(multiple_outputs=False, outlets=[FEATURES])
    def extract() -> dict:
        """Validate one day of raw events into the feature and quarantine partitions."""
        from pipelines.features import extract_features

        context = get_current_context()
        result = extract_features(run_config(context), partition_day(context)).as_dict()
        context["outlet_events"][FEATURES].extra = {"day": result["day"], "rows": result["rows_valid"]}
        return result

    extract()


feature_extraction()
