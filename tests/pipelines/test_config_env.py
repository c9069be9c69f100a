"""``${NAME}`` in a config file is read from the environment: one file per deployment, no endpoint or secret in git."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def _config_with(tmp_path: Path, **sections: dict) -> Path:
    config = yaml.safe_load((REPO / "include/config/demo.yaml").read_text())
    config.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.unit
def test_environment_references_are_replaced_in_every_string(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKE_BUCKET", "lake-prod")
    monkeypatch.setenv("S3_ENDPOINT", "http://127.0.0.1:9000")
    path = _config_with(
        tmp_path,
        storage={"root": "s3://${LAKE_BUCKET}/lake", "options": {"endpoint_url": "${S3_ENDPOINT}", "anon": False}},
    )
    config = load_config(path)
    assert config.storage.root == "s3://lake-prod/lake"
    assert config.storage.options == {"endpoint_url": "http://127.0.0.1:9000", "anon": False}
    assert config.dataset.features.numerical[0] == "income"  # strings without a reference are untouched


@pytest.mark.unit
def test_an_unset_variable_fails_with_the_key_and_the_name(tmp_path, monkeypatch):
    monkeypatch.delenv("S3_ENDPOINT", raising=False)
    path = _config_with(tmp_path, storage={"root": "s3://mlops/lake", "options": {"endpoint_url": "${S3_ENDPOINT}"}})
    with pytest.raises(ConfigError, match=r"storage\.options\.endpoint_url uses \$\{S3_ENDPOINT\}, which is not set"):
        load_config(path)


@pytest.mark.unit
def test_a_dollar_without_braces_is_kept(tmp_path):
    path = _config_with(tmp_path, mlflow={"tracking_uri": "sqlite:///$mlruns.db", "experiment": "costs in $"})
    assert load_config(path).mlflow.experiment == "costs in $"
