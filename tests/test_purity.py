"""Engines, nets and physics stay pure torch + numpy: importing them pulls in no napari or Qt."""

from __future__ import annotations

import subprocess
import sys


def test_engine_modules_import_no_napari_or_qt():
    code = (
        "import sys\n"
        "import napari_genprior.engines.dip, napari_genprior.engines.irn, napari_genprior.nets\n"
        "import napari_genprior.physics.noise, napari_genprior.train.irn, napari_genprior.models\n"
        "import napari_genprior.physics.downsample, napari_genprior.cli, napari_genprior.demo\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'napari', 'qtpy', 'PyQt5', 'PyQt6',"
        " 'PySide2', 'PySide6', 'magicgui', 'vispy'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
