"""Every benchmark takes ``--smoke`` and ``--out`` (``make bench-smoke`` runs each with both; CI runs that), and the
smoke sizes replace only the defaults. Parsed, not run: the benchmarks themselves run in ``make bench-smoke``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHES = sorted(p for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture
def load(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # the benchmarks import their helper as a top-level module

    def load(path: Path):
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load


@pytest.mark.unit
def test_the_five_benchmarks_are_found():
    assert {p.stem for p in BENCHES} >= {"dag_parse", "drift", "extraction", "scoring", "serving"}


@pytest.mark.unit
@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.stem)
def test_every_benchmark_takes_smoke_and_out(load, path, tmp_path):
    import _results

    module = load(path)
    parser = module.build_parser()
    full = _results.parse(parser, ["--out", str(tmp_path)], module.SMOKE)
    smoke = _results.parse(module.build_parser(), ["--smoke", "--out", str(tmp_path)], module.SMOKE)
    assert (full.smoke, smoke.smoke) == (False, True)
    assert full.out == smoke.out == tmp_path
    assert _results.parse(module.build_parser(), [], module.SMOKE).out == REPO / "bench" / ".results"
    for dest, value in module.SMOKE.items():
        assert getattr(full, dest) == parser.get_default(dest)  # a full run keeps the defaults
        assert getattr(smoke, dest) == value != parser.get_default(dest)


@pytest.mark.unit
def test_an_explicit_size_wins_over_smoke(load):
    import _results

    module = load(REPO / "bench" / "drift.py")
    args = _results.parse(module.build_parser(), ["--smoke", "--current", "12345"], module.SMOKE)
    assert args.current == 12345
    assert args.reference == module.SMOKE["reference"]


@pytest.mark.unit
def test_a_failed_check_fails_the_run_after_writing_its_results_and_a_missed_goal_does_not(load, tmp_path):
    import json

    import _results

    module = load(REPO / "bench" / "drift.py")
    args = _results.parse(module.build_parser(), ["--smoke", "--out", str(tmp_path)], module.SMOKE)
    record = _results.Run("drift", args)
    record.goal("ratio_of_medians", 0.9, 0.25)
    record.check("verdicts_match", True)
    record.write({"ratio_of_medians": 0.9}, rows=[{"column": "n0", "plain_drifted": True}])
    written = json.loads((tmp_path / "drift.json").read_text())
    assert written["goals"]["ratio_of_medians"] == {"value": 0.9, "goal": "<= 0.25", "met": False}
    assert written["args"]["current"] == module.SMOKE["current"] and written["smoke"] is True
    assert set(written["load_average"]) == {"start", "end"}
    assert (tmp_path / "drift.csv").read_text().splitlines() == ["column,plain_drifted", "n0,True"]

    record.check("realized_rows_equal_labels_known_by_day", False)
    with pytest.raises(SystemExit, match="realized_rows_equal_labels_known_by_day"):
        record.write({"ratio_of_medians": 0.9})
    assert (
        json.loads((tmp_path / "drift.json").read_text())["checks"]["realized_rows_equal_labels_known_by_day"] is False
    )
