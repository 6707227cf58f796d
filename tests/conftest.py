import numpy as np
import pytest


@pytest.fixture
def smooth_image() -> np.ndarray:
    """A smooth 48×40 float image in [0, 1] (clean ground truth for denoising tests)."""
    y, x = np.mgrid[0:48, 0:40] / 40.0
    return (0.5 + 0.3 * np.sin(3 * x) * np.cos(2 * y)).astype(np.float32)


# Tiny, fast engine settings for tests.
FAST = {"channels": 16, "preview_every": 0}
