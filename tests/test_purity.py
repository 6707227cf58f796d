"""Layering: engines, nets, physics, models, train and the CLI pull in no napari or Qt; the import
graph of src (module-level and function-level imports alike) has no circle; the lower layers never
import the layers above them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "napari_genprior"
GUI = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy"}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module ``name`` imports, anywhere in the file (functions included)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            cands = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in cands if c in known and c != name}
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def test_pure_modules_import_no_napari_or_qt():
    pure = [
        m
        for m in _modules()
        if m.split(".")[1:2] and m.split(".")[1] in {"engines", "nets", "physics", "models", "train", "data"}
    ]
    pure += [
        "napari_genprior.cli",
        "napari_genprior.demo",
        "napari_genprior.batch",
        "napari_genprior.metrics",
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {sorted(pure)!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(GUI)!r})\n"
        "assert not bad, bad\n"
    )
    assert len(pure) > 25  # every engine, net, physics, model, train and data module
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n]
                pytest.fail("import circle: " + " → ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("nets", {"engines", "physics", "models", "train", "cli", "_napari", "batch", "data"}),
        ("physics", {"engines", "models", "train", "cli", "_napari", "batch"}),
        ("models", {"engines", "train", "cli", "_napari", "batch"}),
        ("engines", {"train", "cli", "_napari", "batch"}),
        ("train", {"cli", "_napari", "batch"}),
        # data.samples draws napari's sample images from the priors, so data may use engines
        ("data", {"train", "cli", "_napari", "batch"}),
        # devices, precision and seeding: below every engine
        ("runtime", {"engines", "nets", "physics", "models", "train", "data", "cli", "_napari", "batch"}),
    ],
)
def test_lower_layers_never_import_upper_ones(layer: str, forbidden: set[str]):
    graph = _graph()
    bad = [
        f"{m} → {n}"
        for m, deps in graph.items()
        if m.split(".")[1:2] == [layer]
        for n in deps
        if n.split(".")[1:2] and n.split(".")[1] in forbidden
    ]
    assert not bad, bad


def test_nothing_outside_the_cli_imports_it():
    # the command line is the top layer: batch.py takes its command table as an argument
    graph = _graph()
    assert "napari_genprior.cli.parser" in graph["napari_genprior.cli"]  # the package is seen
    bad = [
        f"{m} → {n}"
        for m, deps in graph.items()
        if m.split(".")[1:2] != ["cli"]
        for n in deps
        if n.split(".")[1:2] == ["cli"]
    ]
    assert not bad, bad


def test_the_graph_sees_function_level_imports():
    # the checks above mean something only if imports inside functions are found too
    graph = _graph()
    assert "napari_genprior.models.load" in graph["napari_genprior.engines.glean"]
