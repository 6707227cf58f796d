"""Does GLEAN use its latent bank? Short ×8 trainings of GLEAN variants and of the no-bank ablation,
side by side, with diagnostics of what each trained net takes from the bank.

Every variant is trained by the CLI (``napari-genprior train glean --scale 8 --steps N …``) with the
same data, seed, batch and schedule, two runs at a time with one torch thread each; then each net
is scored on the same held-out ×8 nuclei (evaluation seeds, as ``glean_bench.py``):

- PSNR and SSIM (data range 1);
- *latent spread*: the spread of the encoder's W+ latents across images (mean per-dimension standard
  deviation) over the spread of the bank's own latents (its mapping network on random z): near 0 means
  the encoder gives every image the same latents;
- *PSNR, latents swapped*: the PSNR when each image's latents are replaced by the next image's (the
  features the encoder fuses stay its own): equal to the PSNR when the latents carry nothing;
- *PSNR, bank features zeroed*: the PSNR when the bank's features above the input size are zeroed
  before the decoder: how much the output leans on them.

The bundled model (trained longer) is scored with the same diagnostics.

    python -m studies.glean_bank_study                 # 250 steps per variant, about 25 min
    python -m studies.glean_bank_study --steps 50 --n 4 --no-doc   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchmarks.report import NOTES, machine, markdown_table, write_section
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.metrics import structural_similarity as ssim

from napari_genprior.data.generators import EVAL_SEED_START, nuclei
from napari_genprior.models.load import load_glean
from napari_genprior.nets.glean import GLEAN
from napari_genprior.physics.degrade import degrade

RESULTS = Path(__file__).resolve().parent / "results" / "glean_bank_study.jsonl"
SEED0 = EVAL_SEED_START + 7000  # glean_bench's held-out images

VARIANTS: dict[str, list[str]] = {
    "GLEAN (as bundled: frozen bank)": [],
    "+ centred latents, residual fusion": ["--centred-latents", "--residual-fusion"],
    "+ … and W+ head at 10× lr": ["--centred-latents", "--residual-fusion", "--latent-lr-mult", "10"],
    "+ … and bank fine-tuned at 0.1× lr": ["--centred-latents", "--residual-fusion", "--unfreeze-bank"],
    # the encoder also learns to invert the bank: images drawn from it, with their true latents
    "+ centred, residual, bank samples with latent loss": [
        "--centred-latents",
        "--residual-fusion",
        "--bank-samples",
        "2",
        "--w-latent",
        "0.05",
    ],
    "no-bank ablation": ["--no-bank"],
}


def train(name: str, flags: list[str], steps: int, workdir: Path, data: list[str]) -> subprocess.Popen:
    out = workdir / f"v{list(VARIANTS).index(name)}.pt"
    cmd = [
        "napari-genprior",
        "train",
        "glean",
        "--scale",
        "8",
        "--steps",
        str(steps),
        "--out",
        str(out),
        *data,
    ]
    cmd += ["--sample-every", str(10**9), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = (workdir / f"v{list(VARIANTS).index(name)}.out").open("w")
    print("$", " ".join(cmd), flush=True)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def held_out(n: int, real: bool = False) -> tuple[np.ndarray, torch.Tensor]:
    """``n`` held-out HR images ``(n, 128, 128)`` and their ×8 bicubic LR in ``[-1, 1]``: synthetic
    nuclei (evaluation seeds), or with ``real`` crops of the held-out real nuclei planes."""
    if real:
        from napari_genprior.data.real import held_out_crops
        from napari_genprior.physics.degrade import degrade_batch

        hr = held_out_crops("nuclei", 128, n, seed=0)
        return hr, degrade_batch(torch.from_numpy(hr)[:, None], 8, "bicubic") * 2 - 1
    hr = np.stack([nuclei(128, SEED0 + i).astype(np.float32) for i in range(n)])
    lr = degrade(hr, 8, "bicubic", np.random.default_rng(SEED0))
    return hr, torch.from_numpy(lr)[:, None] * 2 - 1


def _forward(net: GLEAN, x: torch.Tensor, latents: str = "own", zero_bank: bool = False) -> torch.Tensor:
    """``GLEAN.forward`` with the latents swapped between images (``latents="swapped"``) or the
    bank's decoder features zeroed; the defaults give the plain forward."""
    trunk, enc, w = net.encode(x)
    feats = net.bank_path(enc, w.roll(1, 0) if latents == "swapped" else w)
    return net.decode(x, trunk, [torch.zeros_like(f) for f in feats] if zero_bank else feats)


def _psnr_ssim(out: torch.Tensor, hr: np.ndarray) -> tuple[float, float]:
    est = np.clip((out[:, 0].numpy() + 1) / 2, 0, 1)
    p = [psnr(h, e, data_range=1.0) for h, e in zip(hr, est)]
    s = [ssim(h, e, data_range=1.0) for h, e in zip(hr, est)]
    return float(np.mean(p)), float(np.mean(s))


@torch.no_grad()
def diagnose(model: str, hr: np.ndarray, x: torch.Tensor) -> dict[str, float]:
    net, info = load_glean(model)
    p, s = _psnr_ssim(_forward(net, x), hr)
    row = {"steps": info["steps"], "psnr": p, "ssim": s}
    if net.no_bank:
        return row
    _, _, w = net.encode(x)
    z = torch.randn(2048, net.bank.style_dim, generator=torch.Generator().manual_seed(1))
    w_bank = net.bank.mapping(z)
    row["latent_spread"] = float(w.std(0).mean() / w_bank.std(0).mean())
    row["psnr_swapped"] = _psnr_ssim(_forward(net, x, latents="swapped"), hr)[0]
    row["psnr_zeroed"] = _psnr_ssim(_forward(net, x, zero_bank=True), hr)[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=250, help="training steps per variant")
    ap.add_argument("--n", type=int, default=16, help="held-out images")
    ap.add_argument("--workdir", type=Path, default=None, help="checkpoints (default: a temp dir)")
    ap.add_argument("--no-doc", action="store_true", help="do not write the notes")
    ap.add_argument(
        "--real",
        action="store_true",
        help="train on the real nuclei (bio-sample-fluo, mixed degradation) and score on the held-out real "
        "nuclei instead of synthetic ones (make data)",
    )
    ap.add_argument("--bank", default=None, help="the latent bank to train on (default: the bundled nuclei)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="glean_bank_study_"))
    workdir.mkdir(parents=True, exist_ok=True)
    names = list(VARIANTS)
    for i in range(0, len(names), 2):  # two runs at a time, one thread each (2 cores)
        data = ["--data", "bio-sample-fluo", "--degrade", "mixed"] if args.real else []
        data += ["--bank", args.bank] if args.bank else []
        procs = [train(n, VARIANTS[n], args.steps, workdir, data) for n in names[i : i + 2]]
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"a training run failed: see the .out files in {workdir}")
    torch.set_num_threads(2)
    hr, x = held_out(args.n, args.real)
    rows = {n: diagnose(str(workdir / f"v{k}.pt"), hr, x) for k, n in enumerate(names)}
    rows["bundled glean-nuclei-x8"] = diagnose("glean-nuclei-x8", hr, x)
    table = markdown_table(
        ["variant", "steps", "PSNR", "SSIM", "latent spread", "PSNR, latents swapped", "PSNR, bank zeroed"],
        [
            [
                n,
                r["steps"],
                f"{r['psnr']:.2f}",
                f"{r['ssim']:.4f}",
                f"{r['latent_spread']:.3f}" if "latent_spread" in r else "–",
                f"{r['psnr_swapped']:.2f}" if "psnr_swapped" in r else "–",
                f"{r['psnr_zeroed']:.2f}" if "psnr_zeroed" in r else "–",
            ]
            for n, r in rows.items()
        ],
    )
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
            "steps": args.steps,
            "n": args.n,
            "real": args.real,
        }
        fh.write(json.dumps({**record, "rows": rows}) + "\n")
    if args.no_doc:
        return
    body = (
        "## GLEAN: does it use its bank? (`studies/glean_bank_study.py`)\n\n"
        f"{machine()}; {time.strftime('%Y-%m-%d')}; whole run {(time.perf_counter() - t0) / 60:.0f} min. "
        f"×8 variants, each trained {args.steps} steps by `napari-genprior train glean` (same data, seed, "
        "batch 4, cosine schedule; two runs at a time at one thread each), scored on "
        + (
            f"{args.n} crops of the held-out **real** nuclei planes (trained on bio-sample-fluo, mixed LR). "
            if args.real
            else f"{args.n} held-out 128² synthetic nuclei (seeds from {SEED0}). "
        )
        + "Latent spread: the encoder's W+ spread "
        "across images over the bank's own (0 = one latent for every image). *Latents swapped*: each "
        "image gets the next image's latents. *Bank zeroed*: the bank's features above the input size "
        "are zeroed before the decoder. The bundled model (longer training) is scored the same way.\n\n"
        f"{table}\n"
    )
    write_section("GLEAN: does it use its bank?", body, doc=NOTES / "glean_bank_study.md")


if __name__ == "__main__":
    main()
