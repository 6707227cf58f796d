"""Labelled image grids for the demo and the docs: column titles, row titles, a caption per panel."""

from __future__ import annotations

import numpy as np

__all__ = ["display", "labelled_grid"]


def display(a: np.ndarray, size: int, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Any grey ``(H, W)`` or colour ``(H, W, 3)`` image → ``(size, size·W/H, 3)`` uint8, contrast
    from ``lo``/``hi`` (default: its 0.5 and 99.8 percentiles); enlarged by nearest neighbour so
    that pixels stay visible, reduced by area averaging."""
    from skimage import transform

    a = np.asarray(a, dtype=np.float64)
    lo = float(np.percentile(a, 0.5)) if lo is None else lo
    hi = float(np.percentile(a, 99.8)) if hi is None else hi
    a = np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    h, w = a.shape[:2]
    out = (size, max(1, round(size * w / h)), 3)
    if out[0] != h:
        a = transform.resize(a, out, order=0 if out[0] > h else 1, anti_aliasing=out[0] < h)
    return (a * 255).round().astype(np.uint8)


def _font(size: int):  # noqa: ANN202 - a PIL font
    """DejaVu Sans where the system has it (it has × and ²), else Pillow's own font; and whether
    the font has those glyphs."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), True
    except OSError:
        pass
    try:
        return ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size), True
    except OSError:
        return ImageFont.load_default(size=size), False


def _ascii(x):  # noqa: ANN001, ANN202 - str, or nested lists of str, or None
    if x is None:
        return None
    if isinstance(x, str):
        return x.replace("×", "x").replace("²", "^2").replace("·", "-")
    return [_ascii(v) for v in x]


def labelled_grid(
    tiles: list[list[np.ndarray]],
    col_titles: list[str],
    row_titles: list[str] | None = None,
    captions: list[list[str]] | None = None,
    font_size: int = 15,
) -> np.ndarray:
    """Panels ``tiles[row][col]`` (uint8 ``(H, W, 3)``, all of one size) → one ``(H', W', 3)`` uint8
    figure with ``col_titles`` above the columns, ``row_titles`` left of the rows and an optional
    caption (e.g. a PSNR) under each panel."""
    from PIL import Image, ImageDraw

    font, full = _font(font_size)
    small, _ = _font(max(10, font_size - 3))
    if not full:  # Pillow's own font lacks × and ²
        col_titles, row_titles, captions = _ascii(col_titles), _ascii(row_titles), _ascii(captions)
    th, tw = tiles[0][0].shape[:2]
    pad, head = 6, font_size + 10
    cap = font_size + 4 if captions else 0
    left = 0
    if row_titles:
        left = max(int(font.getlength(t)) for t in row_titles) + 2 * pad
    n_rows, n_cols = len(tiles), len(tiles[0])
    width = left + n_cols * (tw + pad) + pad
    height = head + n_rows * (th + cap + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(col_titles):
        x = left + pad + c * (tw + pad) + tw // 2
        draw.text((x, head // 2 + 2), title, fill=(0, 0, 0), font=font, anchor="mm")
    for r, row in enumerate(tiles):
        y = head + r * (th + cap + pad)
        if row_titles:
            draw.text((pad, y + th // 2), row_titles[r], fill=(0, 0, 0), font=font, anchor="lm")
        for c, tile in enumerate(row):
            x = left + pad + c * (tw + pad)
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, y))
            if captions and captions[r][c]:
                draw.text(
                    (x + tw // 2, y + th + cap // 2 + 1),
                    captions[r][c],
                    fill=(60, 60, 60),
                    font=small,
                    anchor="mm",
                )
    return np.asarray(canvas)
