"""The registry rules of a promotion that need no store: where the challenger alias points after a decision."""

from __future__ import annotations

import pytest

from pipelines.promotion import settle_challenger

pytestmark = pytest.mark.unit


class AliasClient:
    """The registry calls ``settle_challenger`` makes, on a dict of aliases."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = aliases

    def get_model_version_by_alias(self, name: str, alias: str):
        from mlflow.exceptions import MlflowException

        if alias not in self.aliases:
            raise MlflowException("no such alias", error_code="RESOURCE_DOES_NOT_EXIST")
        return type("Version", (), {"version": self.aliases[alias], "run_id": None})()

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        del self.aliases[alias]


def test_the_challenger_alias_names_the_last_kept_challenger_and_never_the_champion():
    kept = AliasClient(champion="1", challenger="3")
    settle_challenger(kept, "m", "2", challenger_holds=True)  # v2 evaluated (e.g. by hand) and kept out
    assert kept.aliases == {"champion": "1", "challenger": "2"}
    promoted = AliasClient(champion="2", previous_champion="1", challenger="2")
    settle_challenger(promoted, "m", "2", challenger_holds=False)
    assert promoted.aliases == {"champion": "2", "previous_champion": "1"}
    same = AliasClient(champion="2", challenger="2")  # "the challenger already is the champion": kept, yet removed
    settle_challenger(same, "m", "2", challenger_holds=True)
    assert same.aliases == {"champion": "2"}
