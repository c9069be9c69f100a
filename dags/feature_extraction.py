"""
### Feature extraction

Reads the raw events whose event time falls in the run's day (CSV or Parquet, local or `s3://`, as
`dataset.source` in the config says), validates them against a schema derived from the config, and publishes:

- `<storage.root>/features/date=YYYY-MM-DD/`: the valid rows, ready for training and scoring;
- `<storage.root>/quarantine/date=YYYY-MM-DD/`: every rejected row with a `quarantine_reason`.

**Runs** at `schedule.extraction_cron` (UTC) for the day that has just ended, and for each day of an
`airflow backfill create`: the run's **partition key** is its day (`YYYY-MM-DD`, shown in the grid). A manual run
takes its day from the trigger form's partition key, or from the `date` Param when it has none.

First `wait_for_source` waits (a sensor in reschedule mode) until the source holds events on the day or after it;
`schedule.source_wait_minutes` after the day ends without them, it fails naming what the source holds.
Rows in = rows valid + rows quarantined, always. A rerun or backfill replaces the day's partitions (it never
appends). Only the source files whose event-time range can hold the day are read. A day with fewer rows than
`quality.min_rows`, far fewer than the preceding days (`quality.min_volume_ratio`), or too many quarantined rows
(`quality.max_quarantine_share`) fails with the numbers and publishes nothing; so does a day before
`schedule.start_date`. A source file that arrived after an extracted day and can hold rows of it (late data) makes
this run extract that day again too; so does a history file (`dataset.history`) landing late whose events fall in
an extracted day's windows. History rows without a key or a time are quarantined per table
(`quarantine/_history/<table>/`). Each extracted day emits a `mlops.features.<model>` event keyed by that day
(a late day under its own key), which starts that model's `batch_scoring__<model>` for that day. A published day with
at least `alerts.quarantine_warn_share` of its rows quarantined, or a day the gate refuses, sends a `quarantine`
alert (README "Alerts").

With declared aggregates (`dataset.features.aggregates`), `materialize` then loads each extracted day into the
Feast online store generated from the config (`feature_store`), where the model server looks them up by entity key.

One such DAG per config file (`feature_extraction__<model>`), its config baked in. **Params**: `date` (the day, for
a run without a partition key), `through` (a run of days: every day from the run's day to this one, each extracted
and keyed as its own run would be; `make bootstrap` loads history this way).
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from _alerts import notify_quarantine
from _schedule import extraction_timetable, run_of_days, schedule_config
from _support import PARAMS, THROUGH, Model, for_each_model, model_dag, run_config


def build(model: Model) -> None:
    """The feature extraction DAG of one model."""
    wait = schedule_config(model.config)

    @model_dag(
        model,
        "feature_extraction",
        schedule=extraction_timetable(model.config),
        max_active_runs=3,
        params={**PARAMS, **THROUGH},
        tags=["features"],
        doc=__doc__,
    )
    def feature_extraction():
        @task.sensor(
            poke_interval=wait.source_poke_minutes * 60,
            # source_landed fails the day once overdue; this backstop only bounds a run started up to a day before
            # its day ends (a manual run for today), since the sensor's clock starts at its first look
            timeout=wait.source_wait_minutes * 60 + 86400,
            mode="reschedule",
        )
        def wait_for_source() -> bool:
            """Done once the source holds the run's day (events on it, or later ones). A run for a day whose data
            has not landed yet waits, freeing its worker slot between looks, until `schedule.source_wait_minutes`
            after the day ends; then it fails once naming what the source holds (so does an older day without data).
            """
            from datetime import UTC, datetime

            from pipelines.features import source_landed

            context = get_current_context()
            config, days = run_config(model, context), run_of_days(context)
            config.schedule.require_day(days[0])
            return source_landed(config, days[-1], datetime.now(UTC))

        @task
        def days_to_extract() -> list[str]:
            """The run's day (or run of days), plus already extracted days that a newly arrived source file can hold
            (late data)."""
            from pipelines.features import late_days

            context = get_current_context()
            config = run_config(model, context)
            days = run_of_days(context)  # wait_for_source has refused a day before schedule.start_date
            late = [d for d in late_days(config, days[0]) if d not in days]
            if late:
                print(f"late data: re-extracting {[d.isoformat() for d in late]} (each is scored again under its key)")
            return [d.isoformat() for d in (*days, *late)]

        @task(multiple_outputs=False, outlets=[model.features])
        def extract(day: str) -> dict:
            """Validate one day of raw events into the feature and quarantine partitions; emit the features event
            keyed by that day (a late day's key is its own, not the run's)."""
            from datetime import date

            from pipelines.features import extract_features

            context = get_current_context()
            config = run_config(model, context)
            result = extract_features(config, date.fromisoformat(day)).as_dict()
            event = context["outlet_events"][model.features]
            event.add_partitions(result["day"])
            event.extra = {"day": result["day"], "rows": result["rows_valid"]}
            notify_quarantine(config, context, result)
            return result

        @task(multiple_outputs=False)
        def materialize(extracted: dict) -> dict:
            """Materialize the extracted day's declared aggregates into the Feast online store the model server
            reads (nothing to do, and nothing imported, when the config declares none)."""
            from datetime import date

            from pipelines.feature_store import materialize_day

            config = run_config(model, get_current_context())
            return materialize_day(config, date.fromisoformat(extracted["day"]))

        days = days_to_extract()
        wait_for_source() >> days
        materialize.expand(extracted=extract.expand(day=days))

    feature_extraction()


for_each_model(build)
