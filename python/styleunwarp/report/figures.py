"""Figures of one registered pair: checkerboard, deformation grid, Jacobian map, thumbnails.

Colour code shared by the grid and the Jacobian map (``det`` = Jacobian determinant of the
direct map, i.e. local area change target → source):

* near-white: ``det ≈ 1`` (area kept),
* blue: the source is compressed onto the target (``det → 0.5`` and below),
* orange: the source is stretched (``det → 2`` and above),
* **red**: ``det ≤ 0`` — the map folds there; no other colour of the scale is red.

Grey-level pictures (checkerboard, thumbnails of micrographs) are written with
:func:`styleunwarp.io.write_png` (contrast-stretched). Colour-coded pictures are written
with their exact colours through :func:`styleunwarp.io.atomic_path` (``write_png`` would
stretch them and change the colour code). Every write is atomic.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from ..io import PNG_COMPRESS_LEVEL, atomic_path, to_gray, write_png
from ..pipeline.overlay import checkerboard
from ..transform import ElasticTransform, RawTransform, jacobian_determinant, to_dense

__all__ = [
    "FOLD_RGB",
    "checkerboard_png",
    "deformation_grid_png",
    "deformation_grid_rgb",
    "grid_lines",
    "jacobian_colors",
    "jacobian_legend_rgb",
    "jacobian_png",
    "jacobian_rgb",
    "thumbnail",
    "write_rgb_png",
]

PathLikeStr = str | PathLike[str]
Shape = tuple[int, int]

FOLD_RGB = np.array([230, 20, 20], dtype=np.float32)
_NEUTRAL = np.array([235, 235, 235], dtype=np.float32)
_COMPRESS = np.array([50, 120, 255], dtype=np.float32)
_EXPAND = np.array([255, 185, 40], dtype=np.float32)
_EMPTY_RGB = np.array([24, 24, 24], dtype=np.float32)


# ------------------------------------------------------------------------------- helpers
def write_rgb_png(path: PathLikeStr, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 (or 0..255) picture as PNG with its exact colours, atomically."""
    from PIL import Image

    p = Path(path)
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ValueError(f"{p}: need an (H, W, 3) picture, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(np.nan_to_num(arr.astype(np.float64))), 0, 255).astype(np.uint8)
    with atomic_path(p) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return p


def _unit(image: np.ndarray) -> np.ndarray:
    """Grey image stretched to [0, 1] by the 0.5/99.5 percentiles (finite pixels only)."""
    a = to_gray(np.asarray(image, dtype=np.float32))
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros(a.shape, np.float32)
    lo, hi = np.percentile(a[finite], [0.5, 99.5])
    out = np.clip((np.where(finite, a, lo) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return out.astype(np.float32)


def _common_crop(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = min(a.shape[0], b.shape[0])
    w = min(a.shape[1], b.shape[1])
    return a[:h, :w], b[:h, :w]


def thumbnail(array: np.ndarray, max_side: int = 256) -> np.ndarray:
    """Downscaled copy whose longer side is at most ``max_side`` (area-averaged, anti-aliased).

    Grey ``(H, W)`` and colour ``(H, W, 3)`` arrays keep their dtype and value range (uint8
    stays uint8); an image already small enough is returned as a copy.
    """
    from skimage.transform import resize

    a = np.asarray(array)
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"thumbnail needs an (H, W) or (H, W, C) array, got shape {a.shape}")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    h, w = a.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return a.copy()
    shape = (max(1, round(h * scale)), max(1, round(w * scale))) + a.shape[2:]
    out = resize(a.astype(np.float32), shape, order=1, anti_aliasing=True, preserve_range=True)
    if a.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(a.dtype if np.issubdtype(a.dtype, np.floating) else np.float32)


# --------------------------------------------------------------------------- checkerboard
def checkerboard_png(registered: np.ndarray, target: np.ndarray, path: PathLikeStr, tiles: int = 8) -> Path:
    """Checkerboard of the registered LOM (RGB → grey) and the real CBS image, as a grey PNG.

    The two images should share the target grid; if they differ in size the common top-left
    part is shown. Tiles alternate registered / target, each contrast-stretched, so a good
    registration shows structures running straight across tile borders.
    """
    reg, tgt = _common_crop(to_gray(registered), to_gray(target))
    board = checkerboard(reg, tgt, tiles=tiles)
    return write_png(path, board * 255.0, low=0.0, high=100.0)


# ------------------------------------------------------------------------------- Jacobian
def jacobian_colors(det: np.ndarray) -> np.ndarray:
    """Colours (float32 ``(..., 3)``, 0..255) of Jacobian determinants; folding (``det <= 0``) red."""
    d = np.asarray(det, dtype=np.float64)
    folded = ~(d > 0)  # NaN counts as folded: it is not a valid map either
    t = np.clip(np.log2(np.where(folded, 1.0, d)), -1.0, 1.0)[..., None]
    rgb = np.where(t < 0, _NEUTRAL + (-t) * (_COMPRESS - _NEUTRAL), _NEUTRAL + t * (_EXPAND - _NEUTRAL))
    rgb = np.where(folded[..., None], FOLD_RGB, rgb)
    return rgb.astype(np.float32)


def _map_and_det(direct: ElasticTransform | RawTransform | np.ndarray, target_shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    shape = (int(target_shape[0]), int(target_shape[1]))
    return to_dense(direct, shape), jacobian_determinant(direct, shape)


def jacobian_rgb(direct: ElasticTransform | RawTransform | np.ndarray, target_shape: Shape) -> np.ndarray:
    """The Jacobian determinant of ``direct`` on the target grid as a uint8 RGB picture."""
    det = jacobian_determinant(direct, (int(target_shape[0]), int(target_shape[1])))
    return np.rint(jacobian_colors(det)).astype(np.uint8)


JACOBIAN_TICKS = (0.5, 0.71, 1.0, 1.41, 2.0)
"""Determinants labelled on the colour bar (the scale saturates below 0.5 and above 2)."""


def jacobian_legend_rgb(width: int, height: int = 40) -> np.ndarray:
    """A colour bar for :func:`jacobian_colors` as a uint8 RGB strip ``(height, width, 3)``.

    Left: a red box for folding (det ≤ 0); right: the continuous scale from det 0.5
    (compressed, blue) through 1 (white) to 2 (stretched, orange) on a log axis, with ticks.
    """
    from PIL import Image, ImageDraw, ImageFont

    width = max(int(width), 200)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    bar_top, bar_bottom = 3, height // 2
    fold_w = 44
    draw.rectangle([2, bar_top, fold_w, bar_bottom], fill=tuple(int(v) for v in FOLD_RGB))
    draw.text((4, bar_bottom + 3), "<=0 fold", fill=(0, 0, 0), font=font)
    x0, x1 = fold_w + 10, width - 12
    t = np.linspace(-1.0, 1.0, max(x1 - x0, 2))
    colors = np.rint(jacobian_colors(2.0**t)).astype(np.uint8)
    strip = np.repeat(colors[None], bar_bottom - bar_top + 1, axis=0)
    img.paste(Image.fromarray(strip), (x0, bar_top))
    draw.rectangle([x0 - 1, bar_top - 1, x0 + strip.shape[1], bar_bottom + 1], outline=(120, 120, 120))
    for tick in JACOBIAN_TICKS:
        x = x0 + (np.log2(tick) + 1.0) / 2.0 * (strip.shape[1] - 1)
        draw.line([x, bar_bottom, x, bar_bottom + 3], fill=(0, 0, 0))
        label = f"{tick:g}"
        tw = draw.textlength(label, font=font)
        draw.text((min(max(x - tw / 2, x0), width - tw - 1), bar_bottom + 4), label, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def jacobian_png(direct: ElasticTransform | RawTransform | np.ndarray, target_shape: Shape, path: PathLikeStr,
                 *, legend: bool = True) -> Path:
    """Write :func:`jacobian_rgb` (white = area kept, blue = compressed, orange = stretched, red = folded).

    With ``legend`` a colour bar (:func:`jacobian_legend_rgb`) is added below the map (the
    map is padded with white on the right when narrower than the bar).
    """
    rgb = jacobian_rgb(direct, target_shape)
    if legend:
        bar = jacobian_legend_rgb(rgb.shape[1])
        if bar.shape[1] > rgb.shape[1]:
            pad = np.full((rgb.shape[0], bar.shape[1] - rgb.shape[1], 3), 255, np.uint8)
            rgb = np.concatenate([rgb, pad], axis=1)
        rgb = np.concatenate([rgb, np.full((4, rgb.shape[1], 3), 255, np.uint8), bar], axis=0)
    return write_rgb_png(path, rgb)


# -------------------------------------------------------------------------- deformed grid
def grid_lines(dense_map: np.ndarray, step: float) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the deformed grid: iso-lines of source x and y every ``step`` px.

    A line passes between two neighbouring target pixels whose source coordinate falls in
    different multiples of ``step``; the pixel of the two nearer to the multiple is marked.
    For the identity map the lines are exactly the rows and columns ``k * step``.
    """
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    m = np.asarray(dense_map, dtype=np.float64)
    if m.ndim != 3 or m.shape[0] != 2:
        raise ValueError(f"a dense map is a (2, H, W) array, got {m.shape}")
    lines = np.zeros(m.shape[1:], dtype=bool)
    for c in range(2):
        v = m[c] / step
        near = np.rint(v)
        v = np.where(np.abs(v - near) < 1e-6, near, v)  # rounding noise must not move a line by a pixel
        finite = np.isfinite(v)
        k = np.floor(np.where(finite, v, 0.0))
        for axis in (0, 1):
            a = [slice(None), slice(None)]
            b = [slice(None), slice(None)]
            a[axis], b[axis] = slice(None, -1), slice(1, None)
            a, b = tuple(a), tuple(b)
            cross = (k[a] != k[b]) & finite[a] & finite[b]
            bound = np.maximum(k[a], k[b])
            first = np.abs(v[a] - bound) <= np.abs(v[b] - bound)
            lines[a] |= cross & first
            lines[b] |= cross & ~first
    return lines


def _sample_rows_cols(shape: Shape, max_side: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    h, w = shape
    if max_side is None or max(h, w) <= max_side:
        return None
    scale = max_side / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.rint((np.arange(nh) + 0.5) * h / nh - 0.5).clip(0, h - 1).astype(int)
    cols = np.rint((np.arange(nw) + 0.5) * w / nw - 0.5).clip(0, w - 1).astype(int)
    return rows, cols


def deformation_grid_rgb(
    direct: ElasticTransform | RawTransform | np.ndarray,
    target_shape: Shape,
    step: float = 32,
    background: np.ndarray | None = None,
    *,
    max_side: int | None = None,
    min_spacing: int = 6,
) -> np.ndarray:
    """The deformed grid of a direct transform as a uint8 RGB picture on the target grid.

    Lines are where the source coordinates (x or y) cross multiples of ``step`` source
    pixels: a regular grid for the identity, shifted for a shift, bent where the map bends.
    Each line pixel takes the Jacobian colour of its position (see the module doc); folded
    regions are also tinted red between the lines. ``background`` (an image on the target
    grid, grey or RGB) is shown dimmed underneath; without it the background is dark grey.

    ``max_side`` renders a small version directly (the map is sampled, not the picture, so
    lines stay one pixel wide and sharp); the step is then enlarged by an integer factor
    until lines are at least ``min_spacing`` output pixels apart.
    """
    shape = (int(target_shape[0]), int(target_shape[1]))
    m, det = _map_and_det(direct, shape)
    sample = _sample_rows_cols(shape, max_side)
    bg = None if background is None else _unit(background)
    if bg is not None and bg.shape != shape:
        full = np.zeros(shape, np.float32)
        h, w = min(shape[0], bg.shape[0]), min(shape[1], bg.shape[1])
        full[:h, :w] = bg[:h, :w]
        bg = full
    if sample is not None:
        rows, cols = sample
        m = m[:, rows][:, :, cols]
        det = det[rows][:, cols]
        bg = None if bg is None else bg[rows][:, cols]
        scale = len(rows) / shape[0]
        factor = max(1, int(np.ceil(min_spacing / max(step * scale, 1e-9))))
        step = step * factor
    if bg is None:
        rgb = np.broadcast_to(_EMPTY_RGB, det.shape + (3,)).copy()
    else:
        rgb = np.repeat((bg * 0.45 * 255.0)[:, :, None], 3, axis=2)
    folded = ~(det > 0)
    rgb[folded] = 0.35 * rgb[folded] + 0.65 * FOLD_RGB
    lines = grid_lines(m, step)
    rgb[lines] = jacobian_colors(det[lines])
    return np.rint(rgb).clip(0, 255).astype(np.uint8)


def deformation_grid_png(
    direct: ElasticTransform | RawTransform | np.ndarray,
    target_shape: Shape,
    path: PathLikeStr,
    step: float = 32,
    background: np.ndarray | None = None,
    *,
    max_side: int | None = None,
) -> Path:
    """Write :func:`deformation_grid_rgb` as a PNG (exact colours, atomic)."""
    return write_rgb_png(path, deformation_grid_rgb(direct, target_shape, step, background, max_side=max_side))
