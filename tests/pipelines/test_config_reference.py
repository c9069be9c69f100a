"""The configuration reference is generated from the config models: every key is described, and the committed page
is the one the models generate (scripts/config_reference.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipelines.config import Config

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "config_reference.py"


def _generator():
    spec = importlib.util.spec_from_file_location("config_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    """Every field of ``model`` and of every model its annotations mention (``X | None``, ``dict[str, X]``, ...)."""

    def inner(annotation) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in get_args(annotation) for m in inner(arg)]

    found = []
    for name, field in model.model_fields.items():
        found.append((prefix + name, field))
        for section in inner(field.annotation):
            found.extend(_fields(section, f"{prefix}{name}."))
    return found


def test_every_config_key_has_a_description():
    fields = _fields(Config)
    undescribed = [path for path, field in fields if not (field.description or "").strip()]
    assert not undescribed, f"fields without description= in pipelines/config.py: {undescribed}"
    assert {"dataset.checks.min", "alerts.smtp.to", "alerts.webhook.conn_id", "serving.predict_in"} <= dict(
        fields
    ).keys()
    # the generated page has a row for every one of them
    generated = [re.sub(r"\.<\w+>|\[\]", "", path) for path, _ in _generator().rows(Config)]
    assert sorted(generated) == sorted(path for path, _ in fields)


def test_committed_reference_is_the_generated_one():
    committed = (REPO / "docs" / "reference" / "configuration.md").read_text()
    assert committed == _generator().render(), (
        "docs/reference/configuration.md is stale: run scripts/config_reference.py"
    )


def test_check_mode_fails_on_a_stale_page(tmp_path, capsys):
    generator = _generator()
    page = tmp_path / "configuration.md"
    page.write_text(generator.render().replace("| `dataset.key` |", "| `dataset.keys` |"))
    assert generator.main(["--check", "--output", str(page)]) == 1
    out, err = capsys.readouterr()
    assert "-| `dataset.keys` |" in out and "+| `dataset.key` |" in out and "out of date" in err
    assert generator.main(["--output", str(page)]) == 0
    assert generator.main(["--check", "--output", str(page)]) == 0
