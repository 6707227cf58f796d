"""Noise2Void on one image, as its users run it: trained on the noisy image itself, then applied to
it. Runs in a venv of its own (careamics 0.3.5 pins a torch of its own), called by
benchmarks/denoise_peers.py:

    .venv-n2v/bin/python benchmarks/n2v_worker.py noisy.npy out.npy [epochs]

``noisy.npy``: ``(Y, X)`` float32; ``out.npy``: the prediction, same shape, float32. Needs only
numpy and careamics (``python -m venv .venv-n2v && .venv-n2v/bin/pip install careamics==0.3.5``).
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    from careamics import CAREamist
    from careamics.config import create_n2v_config

    src, dst = sys.argv[1], sys.argv[2]
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 1200
    noisy = np.load(src).astype(np.float32)
    # careamics sets 8 of the image's 64² patches aside for validation; an image with fewer than 16
    # would keep too few to train on, so it sets a quarter aside
    patches = (noisy.shape[0] // 64) * (noisy.shape[1] // 64)
    cfg = create_n2v_config(
        experiment_name="n2v_peer",
        data_type="array",
        axes="YX",
        patch_size=(64, 64),
        batch_size=16,
        num_epochs=epochs,
        n_val_patches=8 if patches >= 16 else max(1, patches // 4),
    )
    model = CAREamist(cfg, enable_progress_bar=False)
    model.train(train_data=noisy)
    pred, _ = model.predict(noisy, data_type="array", axes="YX")
    np.save(dst, np.squeeze(np.asarray(pred[0] if isinstance(pred, list) else pred)).astype(np.float32))


if __name__ == "__main__":
    main()
