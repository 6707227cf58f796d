"""Numbers a user reads come from one source: generated tables match the model cards they are
made from, and no card calls something planned that is bundled."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from napari_genprior.models import list_models

ROOT = Path(__file__).resolve().parents[1]


def _make_tables():
    spec = importlib.util.spec_from_file_location("make_tables", ROOT / "docs" / "make_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_tables_match_their_sources():
    mt = _make_tables()
    for path, tables in mt.TABLES.items():
        text = path.read_text()
        for name, make in tables.items():
            assert mt.render(text, name, make()) == text, (
                f"{path.name}: table {name!r} is stale (python docs/make_tables.py)"
            )


def test_the_models_table_names_every_bundled_model_and_its_data():
    table = _make_tables().models_table()
    for card in list_models():
        row = next(r for r in table.splitlines() if r.startswith(f"| `{card['name']}` |"))
        assert "held out" in row and ("synthetic" in row or "real" in row)


def test_no_card_calls_a_bundled_engine_planned():
    tasks = {c.get("task") for c in list_models()}
    for card in list_models():
        text = " ".join(str(card.get(k, "")) for k in ("use", "summary"))
        if "glean" in tasks:
            assert "GLEAN (planned)" not in text, card["name"]
        assert "(planned)" not in text, card["name"]
