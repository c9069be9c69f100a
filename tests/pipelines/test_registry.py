"""The registry seam's own rules: which versions may be loaded, which metrics a run may hold (the Registry contract
itself is in test_registry_contract.py, against every implementation)."""

from __future__ import annotations

import pytest

from pipelines import registry

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "version"), [("m", "../../etc/passwd"), ("../m", "1"), ("s3://bucket/model", "1"), ("m", "latest")]
)
def test_only_registered_versions_can_be_loaded(name, version):
    with pytest.raises(registry.RegistryError, match="refusing to load"):
        registry.ModelRef(name, version, None)


def test_a_metric_not_known_yet_is_left_out_not_logged_as_nan():
    values = {"realized_roc_auc": float("nan"), "ci_high": float("inf"), "labeled_rows": 12, "share": 0.5, "x": None}
    assert registry.finite_metrics(values) == {"labeled_rows": 12.0, "share": 0.5}
