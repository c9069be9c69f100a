"""Estimated-performance benchmark: how close the metric estimated on the day of scoring comes to the final realized
metric, under covariate shift (what the estimate is for) and under concept drift (what it cannot see).

    .venv/bin/python bench/estimation.py                 # 5,000 rows a day, 8 covariate-shift days, 3 concept-drift
    .venv/bin/python bench/estimation.py --smoke         # 1,000 rows a day, 3 + 1 days (CI); --out DIR for the results

Data: the demo's own generators (``pipelines.demo_data``: the features, and the default probability before and after
its drift). A champion (the demo's model: ``HistGradientBoostingClassifier`` of ``include/config/demo.yaml``) is
trained on stable rows, and what training stores for the estimate is fitted on its stable holdout (the calibration
for CBPE). Then each covariate-shift day draws a growing share of its rows from the demo's drifted feature
distribution (income falls, credit utilization rises: 0% on the first day, 100% on the last) with labels from the
**stable** relation; the concept-drift days draw every row drifted with labels from the **drifted** relation (the
demo's days from 10-18). Each day is estimated by ``pipelines.estimation.estimate_rows``, the function the
performance table's update calls, from its scores alone, and compared with the realized metric on every label.

The same for regression (direct loss estimation of the MAE, with a ``HistGradientBoostingRegressor`` champion): the
target is the demo's default log-odds plus noise that grows with credit utilization, so the shift moves the MAE.

Printed per task: the mean absolute error of the estimate against the realized metric over the covariate-shift
days, the share of those days whose realized metric lies in the estimate's interval, and each concept-drift day's
estimate against its realized metric (the estimate misses: its limit). Goals (reported): the mean absolute error is
at most 0.02 (ROC AUC) or 5% of the realized MAE (regression).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _results
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def day_rows(rng: np.random.Generator, n: int, shifted: float, concept: bool) -> pd.DataFrame:
    """``n`` demo rows, a share ``shifted`` of them from the drifted feature distribution; ``defaulted`` from the
    stable relation (or, ``concept``, the drifted one) and ``loss`` the regression target."""
    from pipelines.demo_data import _default_probability, _draw_features

    drifted = rng.random(n) < shifted
    frame = pd.concat(
        [_draw_features(rng, int((~drifted).sum()), False), _draw_features(rng, int(drifted.sum()), True)],
        ignore_index=True,
    )
    probability = _default_probability(frame, concept, None)  # no account history: the raw features' relation
    noise = rng.normal(0.0, 1.0, n) * (0.2 + 1.5 * frame["credit_utilization"].to_numpy())
    return frame.assign(
        defaulted=(rng.random(n) < probability).astype(int), loss=np.log(probability / (1 - probability)) + noise
    )


def champion(config, rows: pd.DataFrame, target: str):
    """The demo's model for the task fitted on the first 80% of ``rows``; what training stores for the estimate
    fitted on the rest, in a registry of its own (version 1)."""
    from pipelines.estimated_performance import log_calibration
    from pipelines.loss_estimation import log_loss_holdout
    from pipelines.modeling import build_model, model_input, model_output
    from pipelines.registry import RunKind
    from pipelines.registry_memory import MemoryRegistry

    split = int(len(rows) * 0.8)
    model = build_model(config).fit(model_input(rows[:split], config), rows[target][:split])
    holdout = model_input(rows[split:], config)
    output = model_output(model, holdout, config.task)
    registry = MemoryRegistry()
    run_id = registry.start_run(RunKind.TRAINING, "bench-champion", {})
    if config.task == "classification":
        log_calibration(registry, run_id, rows[target][split:].to_numpy(), output)
    else:
        log_loss_holdout(registry, run_id, holdout, output, rows[target][split:].to_numpy())
    registry.register_version(config.model.name, "bench", run_id)
    return model, registry


def run_task(config, target: str, args: argparse.Namespace) -> list[dict]:
    """One row per day: its kind, shift, estimate with interval and realized metric."""
    from pipelines.estimation import estimate_rows
    from pipelines.modeling import metric_value, model_input, model_output
    from pipelines.monitoring import output_column

    rng = np.random.default_rng(args.seed)
    model, registry = champion(config, day_rows(rng, args.train_rows, 0.0, False), target)
    plan = [("covariate", s, False) for s in np.linspace(0.0, 1.0, args.days)]
    plan += [("concept", 1.0, True)] * args.concept_days
    rows = []
    for i, (kind, shifted, concept) in enumerate(plan):
        day = day_rows(rng, args.rows_per_day, shifted, concept)
        scored = day.assign(**{output_column(config): model_output(model, model_input(day, config), config.task)})
        found = estimate_rows(config, registry, "1", scored)
        realized = metric_value(config.model.metric, day[target], scored[output_column(config)])
        rows.append(
            {
                "task": config.task,
                "metric": config.model.metric,
                "day": i,
                "kind": kind,
                "shifted_share": round(float(shifted), 3),
                "estimated": round(found.value, 4),
                "ci_low": round(found.ci_low, 4),
                "ci_high": round(found.ci_high, 4),
                "realized": round(realized, 4),
                "error": round(found.value - realized, 4),
                "in_interval": bool(found.ci_low <= realized <= found.ci_high),
            }
        )
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-per-day", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=8, help="covariate-shift days (0%% to 100%% of rows shifted)")
    parser.add_argument("--concept-days", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=25_000, help="the champion's rows (20%% its holdout)")
    parser.add_argument("--seed", type=int, default=7)
    return _results.add_arguments(parser)


SMOKE = {"rows_per_day": 1_000, "days": 3, "concept_days": 1, "train_rows": 5_000}


def main(argv: list[str] | None = None) -> None:
    args = _results.parse(build_parser(), argv, SMOKE)
    record = _results.Run("estimation", args)
    logging.basicConfig(level=logging.WARNING)

    from pipelines.config import load_config

    demo = load_config(REPO / "include/config/demo.yaml")
    raw = demo.dataset.features.model_copy(update={"aggregates": [], "derived": {}})  # the generators' columns only
    demo = demo.model_copy(update={"dataset": demo.dataset.model_copy(update={"features": raw, "history": {}})})
    regression = demo.model_copy(
        update={
            "task": "regression",
            "model": demo.model.model_copy(
                update={"estimator": "sklearn.ensemble.HistGradientBoostingRegressor", "metric": "mae"}
            ),
        }
    )
    rows = run_task(demo, "defaulted", args) + run_task(regression, "loss", args)
    figures = {}
    for task, metric, method in (("classification", "roc_auc", "CBPE"), ("regression", "mae", "DLE")):
        mine = [r for r in rows if r["task"] == task]
        covariate = [r for r in mine if r["kind"] == "covariate"]
        concept = [r for r in mine if r["kind"] == "concept"]
        mae = float(np.mean([abs(r["error"]) for r in covariate]))
        realized = [r["realized"] for r in covariate]
        covered = float(np.mean([r["in_interval"] for r in covariate]))
        print(f"{method} ({task}, {metric}), {args.rows_per_day} rows a day:")
        print(
            f"  covariate shift, {len(covariate)} days (realized {min(realized):.4f}..{max(realized):.4f}):"
            f" mean |estimate - realized| {mae:.4f}; realized inside the interval on {covered:.0%} of the days"
        )
        for r in concept:
            print(
                f"  concept drift day {r['day']}: estimated {r['estimated']:.4f}"
                f" [{r['ci_low']:.4f}, {r['ci_high']:.4f}] vs realized {r['realized']:.4f}: misses by {r['error']:+.4f}"
            )
        figures[task] = {
            "metric": metric,
            "method": method,
            "covariate_days": len(covariate),
            "covariate_mean_abs_error": round(mae, 4),
            "covariate_realized_range": [min(realized), max(realized)],
            "covariate_in_interval_share": round(covered, 3),
            "concept_days_errors": [r["error"] for r in concept],
        }
        limit = 0.02 if task == "classification" else 0.05 * float(np.mean(realized))
        record.goal(f"{task}_covariate_mean_abs_error", round(mae, 4), round(limit, 4))
        record.check(f"{task}_estimates_defined", all(np.isfinite(r["estimated"]) for r in mine))

    def plot(figure) -> None:
        for axis, task in zip(figure.subplots(1, 2), ("classification", "regression"), strict=True):
            mine = [r for r in rows if r["task"] == task]
            days = [r["day"] for r in mine]
            axis.fill_between(days, [r["ci_low"] for r in mine], [r["ci_high"] for r in mine], alpha=0.2)
            axis.plot(days, [r["estimated"] for r in mine], "o-", label="estimated (day of scoring)")
            axis.plot(days, [r["realized"] for r in mine], "s--", label="realized (every label)")
            first_concept = next((r["day"] for r in mine if r["kind"] == "concept"), None)
            if first_concept is not None:
                axis.axvline(first_concept - 0.5, color="grey", lw=0.8)
            axis.set(title=f"{task}: {mine[0]['metric']}", xlabel="day (covariate shift, then concept drift)")
            axis.legend(fontsize=7)

    record.write(figures, rows, plot)


if __name__ == "__main__":
    main()
