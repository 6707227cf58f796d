"""Figures for docs/priors.md: for each bundled GAN prior, held-out real images (evaluation seeds)
beside samples of the prior, as ``docs/images/prior_<name>.png``.

    python docs/make_prior_grids.py            # all bundled priors
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_genprior.data.generators import EVAL_SEED_START
from napari_genprior.engines.prior import load_prior, sample_grid, sample_prior
from napari_genprior.models import list_models
from napari_genprior.train.gan import _domain_images

OUT = Path(__file__).resolve().parent / "images"


def figure(name: str, domain: str, size: int, n: int = 16) -> np.ndarray:
    """``(H, 2W + gap, 3)`` uint8: a 4×4 grid of real held-out images | a 4×4 grid of samples."""
    real = _domain_images(domain, size, EVAL_SEED_START, n)
    fake = sample_prior(load_prior(name), n, seed=0)
    a, b = sample_grid(real, 4), sample_grid(fake, 4)
    gap = np.full((a.shape[0], max(8, size // 8), 3), 255, np.uint8)
    return np.concatenate([a, gap, b], axis=1)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for m in list_models():
        if m.get("task") != "gan-prior":
            continue
        domain = m["training"]["data"]
        path = OUT / f"prior_{m['name']}.png"
        iio.imwrite(path, figure(m["name"], domain, m["size"]))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
