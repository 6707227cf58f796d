"""The files the ecosystem reads: LICENSE, the project URLs, the napari hub description, CITATION.cff."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from npe2 import PluginManifest

import napari_genprior

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_matches_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["license"] == "BSD-3-Clause"
    assert text.startswith("BSD 3-Clause License")
    assert re.search(r"Copyright \(c\) \d{4}, napari-genprior developers", text)
    assert "Neither the name of the copyright holder" in text  # the third clause


def test_project_urls_point_to_one_repository():
    urls = PYPROJECT["urls"]
    assert set(urls) == {"Homepage", "Source", "Issues", "Documentation"}
    repo = urls["Source"]
    assert repo.startswith("https://github.com/") and all(u.startswith(repo) for u in urls.values())
    assert urls["Issues"] == f"{repo}/issues"


def test_citation_cites_the_software_and_the_four_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["license"] == PYPROJECT["license"] and cff["version"] == napari_genprior.__version__
    assert cff["repository-code"] == PYPROJECT["urls"]["Source"]
    assert cff["authors"] == [{"name": "napari-genprior developers"}]
    refs = {r["title"]: r for r in cff["references"]}
    expected = {
        "Deep Image Prior": (2018, "Ulyanov"),
        "Invertible Image Rescaling": (2020, "Xiao"),
        "GLEAN: Generative Latent Bank for Large-Factor Image Super-Resolution": (2021, "Chan"),
        "JoIN: Joint GANs Inversion for Intrinsic Image Decomposition": (2023, "Shah"),
    }
    assert set(refs) == set(expected)
    for title, (year, first) in expected.items():
        assert refs[title]["year"] == year and refs[title]["authors"][0]["family-names"] == first


def test_hub_description_names_every_widget_and_quotes_no_measurements():
    text = (ROOT / ".napari-hub" / "DESCRIPTION.md").read_text()
    manifest = PluginManifest.from_file(Path(napari_genprior.__file__).parent / "napari.yaml")
    for widget in manifest.contributions.widgets:
        assert f"Plugins ▸ {manifest.display_name} ▸ {widget.display_name}" in text or (
            f"**{widget.display_name}**" in text
        ), widget.display_name
    for engine in ("Deep Image Prior", "Invertible Rescaling", "GLEAN", "JoIN"):
        assert engine in text
    assert not re.search(r"\d\s*(dB|%|s\b|min\b)|PSNR|SSIM", text)
