"""Shared helper for benchmarks: write one named section of docs/benchmarks.md."""

from __future__ import annotations

import platform
import re
import textwrap
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
#: one-off studies write their notes here, one file each (studies/)
NOTES = DOC.parent / "notes"
HEADER = "# Benchmarks\n\nEach section is written by the benchmark script named in it; re-run it to update.\n"


def cpu_features() -> str:
    """What decides bfloat16 speed on this CPU: AVX-512 BF16 and AMX (empty off x86 Linux)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        return ""
    if not flags:
        return ""
    bf16 = "AVX-512 BF16" if "avx512_bf16" in flags else "no AVX-512 BF16"
    amx = "AMX" if "amx_tile" in flags else "no AMX"
    return f"{bf16}, {amx}"


def machine() -> str:
    """One line describing the machine the numbers were taken on."""
    feats = cpu_features()
    cpu = platform.processor() or platform.machine()
    return f"{cpu}{f' ({feats})' if feats else ''}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def wrap_prose(body: str, width: int = 110) -> str:
    """``body`` with its long prose lines wrapped at ``width`` (tables, headings and lists kept as
    they are): the markdown renders the same, and the file stays readable in a diff."""
    out = []
    for line in body.splitlines():
        if len(line) <= width or line.lstrip().startswith(("|", "#", "-", "*", "```", "<!--")):
            out.append(line)
        else:
            out.append(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = doc.read_text() if doc.exists() else HEADER
    block = f"<!-- {name}:start -->\n{wrap_prose(body.rstrip())}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
