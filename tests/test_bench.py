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
