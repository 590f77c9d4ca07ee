"""The pictures the report shows for one pair folder, made from its files where missing or stale.

Views (``VIEWS``, in the report's column order): the original LOM and the real CBS (read
from the files named in ``metrics.json``), the registered LOM, an overlay and a checkerboard
of registered LOM vs real CBS, the two images bUnwarpJ compared (styled LOM and the CBS
representation, ``styled.tif`` / ``target.tif``), the deformation grid and the Jacobian map
with its colour bar. Each view has a full-size PNG in the pair folder and a thumbnail in
``thumbs/``. Nothing here raises for a bad pair file: what cannot be made gets a note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import read_image, to_gray, write_png
from ..pipeline.overlay import overlay_rgb
from . import figures

log = logging.getLogger(__name__)

PathLikeStr = str | PathLike[str]
THUMB_SIDE = 160
GRID_STEP = 32
FIGURES_VERSION = "2"
"""Bumped when a picture's meaning changes, so that older pictures are remade once."""
_VERSION_FILE = ".report-figures"


@dataclass(frozen=True)
class View:
    """One picture of a pair: its key, the column title, the full-size file, and what it shows."""

    key: str
    title: str
    file: str
    help: str


VIEWS = (
    View("lom", "original LOM", "lom.png", "the LOM image as acquired (before any processing)"),
    View("cbs", "CBS", "cbs.png", "the real CBS (SEM) image, the target; data bar cropped"),
    View("registered", "registered LOM", "registered.png", "the original LOM moved onto the CBS grid by the transform"),
    View("overlay", "overlay", "overlay.png", "registered LOM in magenta, CBS in green: grey/white where they agree"),
    View("checkerboard", "checkerboard", "checkerboard.png", "tiles alternate registered LOM and CBS"),
    View("styled", "compared: LOM repr.", "styled.png", "what bUnwarpJ moved: the LOM in the representation it registers (styled by the model, or raw)"),
    View("target", "compared: CBS repr.", "target.png", "what bUnwarpJ registered to: the CBS in the same representation"),
    View("grid", "deformation grid", "grid.png", "lines of constant source x and y on the CBS grid, coloured by the Jacobian"),
    View("jacobian", "Jacobian", "jacobian.png", "local area change of the map, with its colour bar; red = folding"),
)


def original_file(recorded: str | None, pair_dir: Path) -> Path | None:
    """The input file named in metrics.json, if it still exists.

    Relative paths are tried against the working folder, then the batch folder's parent and
    the batch folder (a batch run from another folder records paths relative to that one).
    """
    if not recorded:
        return None
    p = Path(recorded).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, pair_dir.parent.parent / p, pair_dir.parent / p]
    return next((c for c in candidates if c.is_file()), None)


def _stale(out: Path, *sources: Path | None) -> bool:
    """True when ``out`` is missing or older than any existing source."""
    if not out.is_file():
        return True
    mtime = out.stat().st_mtime
    return any(s is not None and s.is_file() and s.stat().st_mtime > mtime for s in sources)


def _png_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _same_grid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return a[:h, :w], b[:h, :w]


def ensure_figures(folder: PathLikeStr, metrics: dict | None = None, *, thumb_side: int = THUMB_SIDE,
                   step: float = GRID_STEP, force: bool = False) -> tuple[dict, list[str]]:
    """Make the pictures of one pair folder where missing or out of date.

    Returns ``(views, notes)``: ``views[key] = (full, thumb)`` paths (``None`` where the
    picture cannot be made from the files present) for every key of :data:`VIEWS`;
    ``notes`` says what could not be made and why.
    """
    f = Path(folder)
    metrics = metrics or {}
    version_file = f / _VERSION_FILE
    try:
        force = force or version_file.read_text().strip() != FIGURES_VERSION
    except OSError:
        force = True
    src = {"target": f / "target.tif", "styled": f / "styled.tif", "registered": f / "registered.tif",
           "direct": f / "direct_transf.txt", "overlay": f / "overlay.png", "metrics": f / "metrics.json",
           "lom": original_file(metrics.get("lom"), f), "cbs": original_file(metrics.get("cbs"), f)}
    has = {k: p is not None and p.is_file() for k, p in src.items()}
    cache: dict = {}
    notes: list[str] = []

    def image(key: str) -> np.ndarray:
        if key not in cache:
            cache[key] = read_image(src[key]).data  # the CBS is cropped exactly as the pipeline did
        return cache[key]

    def direct():
        if "direct" not in cache:
            from ..transform import read_transform

            cache["direct"] = read_transform(src["direct"])
        return cache["direct"]

    def target_shape() -> tuple[int, int]:
        for key in ("registered", "target", "cbs"):
            if has[key]:
                return tuple(image(key).shape[:2])
        raise FileNotFoundError("no image on the CBS grid")

    def grid_pic(max_side: int | None) -> np.ndarray:
        bg_key = "cbs" if has["cbs"] else "target" if has["target"] else None
        bg = to_gray(image(bg_key)) if bg_key else None
        shape = target_shape()
        grid_step = step if max(shape) >= 8 * step else max(4, max(shape) // 8)  # small images: 8 lines
        return figures.deformation_grid_rgb(direct(), shape, grid_step, bg, max_side=max_side)

    def grey_view(key: str) -> tuple[Callable, Callable]:
        return (lambda p: write_png(p, image(key))), (lambda p: write_png(p, figures.thumbnail(image(key), thumb_side)))

    def rgb_thumb(full: Path) -> Callable:
        return lambda p: figures.write_rgb_png(p, figures.thumbnail(_png_rgb(full), thumb_side))

    # key: (sources, requirement, writer of the full picture or None (the pipeline wrote it), writer of the thumbnail)
    plans: dict[str, tuple] = {}
    for key in ("lom", "cbs", "registered", "styled", "target"):
        plans[key] = ([src[key], src["metrics"]], has[key], *grey_view(key))
    plans["overlay"] = ([src["overlay"]], has["overlay"] or (has["registered"] and has["cbs"]),
                        None if has["overlay"] else (lambda p: write_png(p, overlay_rgb(*_same_grid(to_gray(image("registered")), to_gray(image("cbs")))))),
                        rgb_thumb(f / "overlay.png"))
    plans["checkerboard"] = ([src["registered"], src["cbs"]], has["registered"] and has["cbs"],
                             lambda p: figures.checkerboard_png(*_same_grid(image("registered"), image("cbs")), p),
                             rgb_thumb(f / "checkerboard.png"))
    on_grid = has["registered"] or has["target"] or has["cbs"]
    plans["grid"] = ([src["direct"], src["cbs"], src["target"]], has["direct"] and on_grid,
                     lambda p: figures.write_rgb_png(p, grid_pic(None)), lambda p: figures.write_rgb_png(p, grid_pic(thumb_side)))
    plans["jacobian"] = ([src["direct"], src["target"]], has["direct"] and on_grid,
                         lambda p: figures.jacobian_png(direct(), target_shape(), p),
                         lambda p: figures.write_rgb_png(p, figures.thumbnail(figures.jacobian_rgb(direct(), target_shape()), thumb_side)))
    why_missing = {"lom": ("lom", "original LOM"), "cbs": ("cbs", "original CBS")}
    views: dict = {}
    for view in VIEWS:
        sources, possible, make_full, make_thumb = plans[view.key]
        full, thumb = f / view.file, f / "thumbs" / view.file
        if not possible:
            views[view.key] = (None, None)
            if view.key in why_missing and metrics:
                key, label = why_missing[view.key]
                notes.append(f"{label} file not found ({metrics.get(key) or 'not recorded'}): no {view.title} picture"
                             + ("; no checkerboard" if key == "cbs" else ""))
            continue
        try:
            if make_full is not None and (force or _stale(full, *sources)):
                make_full(full)
            if force or _stale(thumb, full, *sources):
                thumb.parent.mkdir(exist_ok=True)
                make_thumb(thumb)
            views[view.key] = (full, thumb)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the report
            log.warning("%s: cannot make the %s picture: %s", f, view.title, exc)
            notes.append(f"{view.key} picture: {type(exc).__name__}: {exc}")
            views[view.key] = (full if full.is_file() else None, None)
    try:
        if any(v != (None, None) for v in views.values()):
            version_file.write_text(FIGURES_VERSION + "\n")
    except OSError:
        pass
    return views, notes
