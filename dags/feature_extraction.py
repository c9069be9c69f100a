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

With declared aggregates (`dataset.features.aggregates`) and the feature store on (`feature_store`), `materialize`
then loads each extracted day into the Feast online store generated from the config, where the model server looks
them up by entity key. Without them the DAG has no `materialize` task: a no-op task per day cost a history load
~0.1 s a day of Airflow's own work.

One such DAG per config file (`feature_extraction__<model>`), its config baked in. **Params**: `date` (the day, for
a run without a partition key), `through` (a run of days: every day from the run's day to this one, each extracted
and keyed as its own run would be; `make bootstrap` loads history this way).
"""

from __future__ import annotations

from airflow.sdk import get_current_context, task

from _alerts import notify_quarantine
from _schedule import extraction_timetable, parsed_config, run_of_days, schedule_config
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
        def days_to_extract() -> list[list[str]]:
            """The days to extract, each list one `extract` task instance: the run's day (or its run of days, all
            in one instance), then each already extracted day that a newly arrived source file can hold (late data)
            in one of its own."""
            from pipelines.features import late_days

            context = get_current_context()
            config = run_config(model, context)
            days = run_of_days(context)  # wait_for_source has refused a day before schedule.start_date
            late = [d for d in late_days(config, days[0]) if d not in days]
            if late:
                print(f"late data: re-extracting {[d.isoformat() for d in late]} (each is scored again under its key)")
            return [[d.isoformat() for d in days], *[[d.isoformat()] for d in late]]

        @task(multiple_outputs=False, outlets=[model.features])
        def extract(days: list[str]) -> list[dict]:
            """Validate each day of raw events, in order, into the feature and quarantine partitions; emit the
            features event keyed by each day (a late day's key is its own, not the run's).

            A run of days is one task instance, as scoring's is: a task instance costs Airflow ~0.1 s of its own,
            as much as extracting a day of a few thousand rows. A day that fails fails the instance there, naming
            the day; the days before it are published (reruns replace them) but their events go with the failed
            instance, so clearing it extracts and keys them again."""
            from datetime import date

            from pipelines.features import extract_features

            context = get_current_context()
            config = run_config(model, context)
            event = context["outlet_events"][model.features]
            results = []
            for day in days:
                try:
                    result = extract_features(config, date.fromisoformat(day)).as_dict()
                except Exception as error:
                    if len(days) > 1:
                        error.add_note(f"extracting {day}, day {len(results) + 1} of the run's {days[0]}..{days[-1]}")
                    raise
                event.add_partitions(result["day"])
                notify_quarantine(config, context, result)
                results.append(result)
            event.extra = {"days": [r["day"] for r in results], "rows": sum(r["rows_valid"] for r in results)}
            return results

        @task(multiple_outputs=False)
        def materialize(extracted: list[dict]) -> list[dict]:
            """Materialize the extracted days' declared aggregates into the Feast online store the model server
            reads, in day order."""
            from datetime import date

            from pipelines.feature_store import materialize_day

            config = run_config(model, get_current_context())
            return [materialize_day(config, date.fromisoformat(result["day"])) for result in extracted]

        days = days_to_extract()
        wait_for_source() >> days
        extracted = extract.expand(days=days)
        if parsed_config(model.config).online_features:
            materialize.expand(extracted=extracted)

    feature_extraction()


for_each_model(build)
