"""What an alert says: the event, the DAG, the day, the reason and links, composed from a task's own results.

Pure (no Airflow, no I/O): ``dags/_alerts.py`` sends these through the Airflow providers' notifiers configured in
the config's ``alerts`` section, with the links the UI's buttons use (``plugins/mlops_links.py``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from pipelines.config import AlertEvent, AlertsConfig
from pipelines.errors import QualityGateError

MAX_HEADLINE_CHARS = 120  # of the reason, in the subject line
MAX_REASON_CHARS = 2000  # an error message can hold a whole traceback-sized text; a message stays readable


@dataclass(frozen=True)
class Alert:
    event: AlertEvent
    dag_id: str
    day: str
    reason: str
    links: dict[str, str] = field(default_factory=dict)  # name -> URL; empty URLs are left out
    task_id: str = ""
    run_id: str = ""

    @property
    def subject(self) -> str:
        """One line a mail client or chat shows: what happened, where, for which day, and the start of why."""
        headline = self.reason.splitlines()[0] if self.reason else ""
        if len(headline) > MAX_HEADLINE_CHARS:
            headline = headline[: MAX_HEADLINE_CHARS - 1] + "…"
        return f"[mlops] {self.event}: {self.dag_id} {self.day}: {headline}"

    def _fields(self) -> list[tuple[str, str]]:
        return [
            ("Event", self.event),
            ("DAG", self.dag_id),
            ("Task", self.task_id),
            ("Run", self.run_id),
            ("Day", self.day),
            ("Reason", self.reason[:MAX_REASON_CHARS]),
        ]

    def present_links(self) -> dict[str, str]:
        return {name: url for name, url in self.links.items() if url}

    def text(self) -> str:
        """Plain text: the webhook's ``text`` (what chat tools display)."""
        lines = [f"{name}: {value}" for name, value in self._fields() if value]
        lines += [f"{name}: {url}" for name, url in self.present_links().items()]
        return "\n".join([self.subject, "", *lines])

    def html(self) -> str:
        """The e-mail body: the same fields, every value escaped, links clickable."""
        rows = [f"<b>{name}:</b> {html.escape(value)}" for name, value in self._fields() if value]
        rows += [
            f'<b>{html.escape(name)}:</b> <a href="{html.escape(url)}">{html.escape(url)}</a>'
            for name, url in self.present_links().items()
        ]
        return "<br>\n".join(rows)

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body: ``text`` plus each field, for tools that route on them."""
        return {
            "text": self.text(),
            "event": self.event,
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "day": self.day,
            "reason": self.reason[:MAX_REASON_CHARS],
            "links": self.present_links(),
        }


def failure_event(error: BaseException | str | None) -> AlertEvent:
    """A day the quality gate refused is a quarantine/volume alert; any other final failure is a task failure."""
    return "quarantine" if isinstance(error, QualityGateError) else "task_failure"


def failure_reason(error: BaseException | str | None) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__module__}.{type(error).__name__}: {error}"
    return str(error) if error else "the task failed (no error was passed to the callback)"


def quarantine_warning(result: dict[str, Any], alerts: AlertsConfig) -> str | None:
    """Why a published day's quarantine share calls for an alert, or None when it stays below the warn level."""
    rows_in, quarantined = result["rows_in"], result["rows_quarantined"]
    if not rows_in or quarantined / rows_in < alerts.quarantine_warn_share:
        return None
    return (
        f"{quarantined} of {rows_in} rows quarantined ({quarantined / rows_in:.1%}), at or above"
        f" alerts.quarantine_warn_share {alerts.quarantine_warn_share:.1%}; the day was published"
    )


def promotion_reason(decision: dict[str, Any]) -> str:
    """The decision in one sentence: who holds ``champion`` now, both metrics on the same holdout, and why."""
    challenger, champion = decision["challenger_version"], decision["champion_version"]
    outcome = (
        f"challenger v{challenger} promoted, replacing v{champion}"
        if decision["promoted"]
        else f"champion v{champion} kept, challenger v{challenger} not promoted"
    )
    challenger_metric, champion_metric = (
        "undefined" if value is None else f"{value:.4f}"
        for value in (decision["challenger_metric"], decision["champion_metric"])
    )
    return (
        f"{outcome}: {decision['metric']} {challenger_metric} (challenger) vs"
        f" {champion_metric} (champion) on {decision['holdout']}, n={decision['n']};"
        f" {decision['reason']}; trigger: {decision['trigger']}"
    )
