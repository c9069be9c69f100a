"""`python -m pipelines.promotion rollback`: one readable line, the aliases swapped, tags and a run recorded."""

from __future__ import annotations

import mlflow
import pytest
from sklearn.dummy import DummyClassifier

from pipelines import registry
from pipelines.promotion import PREVIOUS, main

pytestmark = pytest.mark.integration


def test_rollback_cli_prints_one_line_and_records_tags_and_a_run(config, config_file, capsys):
    client = registry.connect(config)
    for _ in range(2):  # two registered versions; no training needed to test the registry operation
        with mlflow.start_run():
            model = DummyClassifier().fit([[0], [1]], [0, 1])
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name=config.model.name, pip_requirements=["scikit-learn"]
            )
    client.set_registered_model_alias(config.model.name, registry.CHAMPION, "2")
    client.set_registered_model_alias(config.model.name, PREVIOUS, "1")
    capsys.readouterr()

    main(["rollback", "--reason", "v2 misbehaves", "--config", str(config_file)])

    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    prefix = f"rolled back {config.model.name}: champion v2 -> v1 (reason: v2 misbehaves; MLflow run "
    assert out[0].startswith(prefix) and out[0].endswith(")")
    run_id = out[0][len(prefix) : -1]
    assert (
        client.get_run(run_id).data.tags.items()
        >= {
            "kind": "rollback",
            "model_name": config.model.name,
            "from_version": "2",
            "to_version": "1",
            "reason": "v2 misbehaves",
        }.items()
    )
    assert registry.alias_version(client, config.model.name, registry.CHAMPION).version == "1"
    assert registry.alias_version(client, config.model.name, PREVIOUS).version == "2"
    assert client.get_model_version(config.model.name, "2").tags["rolled_back"] == "replaced by v1: v2 misbehaves"
    assert client.get_model_version(config.model.name, "1").tags["restored"] == "rollback from v2: v2 misbehaves"
