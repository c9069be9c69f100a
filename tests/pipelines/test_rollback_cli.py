"""`python -m pipelines.promotion rollback`: one readable line, the aliases swapped, tags and a run recorded."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyClassifier

from pipelines import model_artifacts, registry
from pipelines.promotion import main
from pipelines.registry import PREVIOUS, RunKind

pytestmark = pytest.mark.integration


def test_rollback_cli_prints_one_line_and_records_tags_and_a_run(config, config_file, capsys):
    store = registry.connect(config)
    for _ in range(2):  # two registered versions; no training needed to test the registry operation
        with registry.tracked_run(store, RunKind.TRAINING, "train") as run_id:
            model = DummyClassifier().fit([[0], [1]], [0, 1])
            example = pd.DataFrame({"x": [0.0, 1.0]})
            source = model_artifacts.log_model(config.tracking_uri, run_id, model, "sklearn", example)
            store.register_version(config.model.name, source, run_id)
    store.set_alias(config.model.name, registry.CHAMPION, "2")
    store.set_alias(config.model.name, PREVIOUS, "1")
    capsys.readouterr()

    main(["rollback", "--reason", "v2 misbehaves", "--config", str(config_file)])

    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    prefix = f"rolled back {config.model.name}: champion v2 -> v1 (reason: v2 misbehaves; MLflow run "
    assert out[0].startswith(prefix) and out[0].endswith(")")
    run_id = out[0][len(prefix) : -1]
    client = MlflowClient(config.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "rollback-v2-to-v1"
    assert (
        run.data.tags.items()
        >= {
            "kind": "rollback",
            "model_name": config.model.name,
            "from_version": "2",
            "to_version": "1",
            "reason": "v2 misbehaves",
        }.items()
    )
    assert store.alias(config.model.name, registry.CHAMPION).version == "1"
    assert store.alias(config.model.name, PREVIOUS).version == "2"
    assert client.get_model_version(config.model.name, "2").tags["rolled_back"] == "replaced by v1: v2 misbehaves"
    assert client.get_model_version(config.model.name, "1").tags["restored"] == "rollback from v2: v2 misbehaves"
