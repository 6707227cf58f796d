"""Tables generated from their one source: the bundled models' cards (``src/napari_genprior/models/
*.json``) and benchmark result logs (``benchmarks/results/*.jsonl``). Each table sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in the file it
belongs to; ``tests/test_docs_tables.py`` fails when a file's table differs from what this script
writes, so no number is typed in twice.

    python docs/make_tables.py          # rewrite the tables (make docs runs it)
    python docs/make_tables.py --check  # exit 1 if a table is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from napari_genprior.models import list_models

ROOT = Path(__file__).resolve().parents[1]


def data_kind(card: dict[str, Any]) -> str:
    """What a model learned from, in the words a user needs: synthetic, real, or both."""
    data = str(card.get("data", ""))
    if data.startswith("synthetic"):
        return "synthetic"
    if data.startswith("real"):
        return "real"
    if "synthetic" in data:
        return "real photographs + synthetic fluorescence"
    return "your folder" if data.startswith("folder") else data or "?"


def headline(card: dict[str, Any]) -> str:
    """The card's held-out figure, with the data it was measured on."""
    m = card.get("metrics", {})
    task = card.get("task")
    if task == "irn":
        mean = m["mean"]
        text = (
            f"round trip {mean['irn_psnr_tau0']:.2f} dB vs bicubic down + up {mean['bicubic_psnr']:.2f} dB "
            f"({data_kind(card)}, held out)"
        )
        real = card.get("real_held_out")
        if real:
            text += f"; **{real['irn_psnr']:.2f} vs {real['bicubic_psnr']:.2f} dB on real held-out microscope images**"
        return text
    if task == "glean":
        return f"{m['glean_psnr']:.2f} dB vs bicubic {m['bicubic_psnr']:.2f} dB ({data_kind(card)}, held out)"
    if task == "gan-prior":
        mean = m["mean"]
        text = f"SWD {mean['prior']:.1f} (blurred noise {mean['baseline_blurred_noise']:.1f}"
        if "real_vs_real" in mean:
            text += f", other images of the domain {mean['real_vs_real']:.1f}"
        if "synthetic_prior" in mean:
            text += f", the synthetic prior {mean['synthetic_prior']:.1f}"
        return text + f"; {data_kind(card)}, held out)"
    return "–"


def models_table() -> str:
    """One row per bundled model: what it is, what it learned from, how long, its held-out figure."""
    rows = [
        "| model | what | trained on | steps · wall time | held-out figure (from its card) |",
        "|---|---|---|---|---|",
    ]
    for c in list_models():
        rows.append(
            f"| `{c['name']}` | {c.get('summary', '').split(',')[0]} | {data_kind(c)} | "
            f"{c.get('steps', '?')} · {c.get('wall_time', '?')} | {headline(c)} |"
        )
    return "\n".join(rows)


PEERS_LOG = ROOT / "benchmarks" / "results" / "denoise_peers.jsonl"
DIP_LABEL = "DIP fast, auto-stop"
FILTER_LABEL = "plugin default: block-matching filter"


def denoise_peers_table() -> str:
    """The plugin's denoising (its default, the block-matching filter, and the DIP network) against
    BM3D and Noise2Void per case (the latest row of each case and method in
    ``benchmarks/results/denoise_peers.jsonl``, written by ``python -m benchmarks.denoise_peers``)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    if PEERS_LOG.exists():
        for line in PEERS_LOG.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                latest[(r["case"], r["label"])] = r
    rows = [
        "| image (data) | noisy | default: filter | DIP network | BM3D, true noise level "
        "| BM3D, estimated noise level | Noise2Void | default − best peer "
        "| seconds: filter · network · BM3D · N2V |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in dict.fromkeys(c for c, _ in latest):
        f = latest.get((case, FILTER_LABEL))
        d = latest.get((case, DIP_LABEL))
        first = f or d
        if first is None:
            continue
        peers = [r for (c, lab), r in latest.items() if c == case and lab not in (DIP_LABEL, FILTER_LABEL)]
        true = next(
            (r for r in peers if r["label"].startswith("BM3D") and "estimated" not in r["label"]), None
        )
        est = next((r for r in peers if r["label"].startswith("BM3D") and "estimated" in r["label"]), None)
        n2v = next((r for r in peers if r["label"].startswith("Noise2Void")), None)
        best = max(peers, key=lambda r: r["psnr"]) if peers else None
        micro = case.startswith(("nuclei", "timelapse"))

        def cell(r: dict[str, Any] | None, key: str = "psnr", fmt: str = ".2f") -> str:
            return "–" if r is None else format(r[key], fmt)

        cells = [
            f"{case} ({'real, held out, simulated camera' if micro else '8-bit image, σ = 25'})",
            f"{first['noisy_psnr']:.2f}",
            cell(f),
            cell(d),
            cell(true),
            cell(est),
            cell(n2v),
            f"{f['psnr'] - best['psnr']:+.2f} dB ({best['label']})" if best and f else "–",
            " · ".join(cell(r, "seconds", ".0f") for r in (f, d, true, n2v)),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


#: file → table name → generator
TABLES = {
    ROOT / "README.md": {"models": models_table, "denoise_peers": denoise_peers_table},
    ROOT / "docs" / "dip.md": {"denoise_peers": denoise_peers_table},
}


def render(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` replaced by ``body`` (the markers must exist)."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> … <!-- {name}:end --> block")
    return pattern.sub(lambda mt: mt.group(1) + body.rstrip("\n") + "\n" + mt.group(2), text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a table differs from its source")
    args = ap.parse_args()
    stale = []
    for path, tables in TABLES.items():
        text = path.read_text()
        new = text
        for name, make in tables.items():
            new = render(new, name, make())
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"stale tables in {', '.join(stale)}: run python docs/make_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
