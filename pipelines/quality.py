"""Volume and quarantine checks on a day before its features are published: decided on numbers, no I/O.

An empty day, a day far below the usual volume, or a day whose rows are mostly rejected usually means a broken
feed (a missing file, a schema change upstream), not a quiet day; publishing it would score and monitor a wrong
picture. Each limit is in the config's ``quality`` section (``min_rows: 0`` accepts empty days).
"""

from __future__ import annotations

from statistics import median

from pipelines.config import QualityConfig


def volume_problems(rows_in: int, rows_quarantined: int, usual: list[int], quality: QualityConfig) -> list[str]:
    """What is wrong with a day's counts, each with its numbers; empty when the day may be published.

    ``usual`` holds the source rows of the preceding extracted days; their median is the expected volume.
    """
    problems = []
    if rows_in < quality.min_rows:
        problems.append(f"{rows_in} source rows, fewer than quality.min_rows {quality.min_rows}")
    if usual and quality.min_volume_ratio > 0:
        expected = median(usual)
        if rows_in < quality.min_volume_ratio * expected:
            problems.append(
                f"{rows_in} source rows, below quality.min_volume_ratio {quality.min_volume_ratio} of the median "
                f"{expected:g} over the {len(usual)} preceding extracted day(s)"
            )
    if rows_in and rows_quarantined / rows_in > quality.max_quarantine_share:
        problems.append(
            f"{rows_quarantined} of {rows_in} rows quarantined ({rows_quarantined / rows_in:.1%}), above "
            f"quality.max_quarantine_share {quality.max_quarantine_share:.1%}"
        )
    return problems
