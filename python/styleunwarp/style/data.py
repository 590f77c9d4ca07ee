"""Aligned training pairs: discovery, per-image normalisation, paired augmentation."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from ..errors import InputError
from .appearance import vary_appearance

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")

#: Per-image input/target normalisation (recorded in every model card): the ``low`` and
#: ``high`` percentiles (of the image less an empty border: :func:`empty_border`) map to -1 and +1;
#: values are clipped to ``[-clip, clip]``.
NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.0, "range": [-1.0, 1.0], "clip": 3.0,
                 "excluding": "an empty border (the lowest value, touching the edge, at most a third of the image)",
                 "output": "tanh [-1, 1] mapped linearly to 0..255 float32"}

BORDER_MAX_FRACTION = 1.0 / 3.0
"""Largest part of an image that :func:`empty_border` calls a border; a larger flat region is content
(a fluorescence image's dark background, say)."""


def empty_border(arr: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``: the pixels of ``arr`` (``(C, H, W)``) that hold its lowest value in every
    channel and are connected to the image's edge through such pixels: the empty border that a
    rotated, shifted or padded image gets (warping tools fill it with 0). None where that region
    exceeds :data:`BORDER_MAX_FRACTION`. The highest value is left alone: a bright region touching the
    edge is mostly a saturated part of the content.

    Why: the per-image percentile stretch (:data:`NORMALIZATION`) would count such a border as dark
    content. A border of 8 % of a CLEM field moved the 1st percentile from the EM's darkest
    content to the border's 0, and a translation trained on three pairs then correlated 0.5 with its own
    output on the same field without the border (its correlation with the fluorescence 0.34 -> 0.20),
    while the border's pixels alone, with the stretch unchanged, left it at 0.99 (docs/representations.md)."""
    from scipy import ndimage

    flat = np.all(arr == arr.min(), axis=0)
    if not (flat[0].any() or flat[-1].any() or flat[:, 0].any() or flat[:, -1].any()):
        return np.zeros_like(flat)
    labels, _ = ndimage.label(flat)
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = np.isin(labels, touching[touching > 0])
    return border if border.mean() <= BORDER_MAX_FRACTION else np.zeros_like(border)


def normalize_input(image: np.ndarray, channels: int = 1, path: str | PathLike[str] | None = None) -> np.ndarray:
    """An image of any dtype (gray or RGB) → float32 ``(C, H, W)`` robustly scaled to about [-1, 1]
    (:data:`NORMALIZATION`: percentiles of the image less an empty border, :func:`empty_border`).

    ``channels=1`` converts RGB to luminance; ``channels=3`` keeps colour (gray is repeated),
    with one stretch for all channels.
    """
    from ..io import to_gray

    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise InputError(path, f"need a gray (H, W) or RGB (H, W, 3) image, got shape {img.shape}")
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.number)) or np.iscomplexobj(img):
        raise InputError(path, f"unsupported image dtype {img.dtype}")
    if channels == 1:
        arr = to_gray(img)[None]
    else:
        if img.ndim == 2 or img.shape[2] == 1:
            g = img.reshape(img.shape[0], img.shape[1]).astype(np.float32)
            arr = np.stack([g, g, g])
        else:
            arr = np.moveaxis(img[:, :, :3].astype(np.float32), 2, 0)
    if arr.shape[1] < 1 or arr.shape[2] < 1:
        raise InputError(path, "empty image")
    finite = np.isfinite(arr)
    if not finite.all():
        raise InputError(path, f"image contains {int((~finite).sum())} NaN or infinite values")
    n = NORMALIZATION
    border = empty_border(arr)
    content = arr[:, ~border] if border.any() else arr  # a border is at most a third of the image
    lo, hi = (float(v) for v in np.percentile(content, [n["low"], n["high"]]))
    if hi <= lo:
        lo, hi = float(content.min()), float(content.max())
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise InputError(path, f"constant image (every pixel is {lo:g}): nothing to style")
    out = (arr - lo) / (hi - lo) * 2.0 - 1.0
    return np.clip(out, -n["clip"], n["clip"]).astype(np.float32)


#: Training targets. ``cbs``: the CBS image itself (a CBS-like rendering). ``edges``: the
#: CBS's Gaussian gradient magnitude (σ = ``EDGE_SIGMA`` px) — a polarity-free boundary map.
#: The registration then compares ``model(lom)`` with :func:`target_representation` of the CBS.
TARGETS = ("cbs", "edges")
EDGE_SIGMA = 1.5
#: How strongly the CBS is denoised before its boundary map is taken (total variation, weight
#: this many times its measured noise sd: :func:`styleunwarp.noise.denoise`); 0 = not at all.
#: Off by default: 1.5 lowers the elastic step's error on real-CBS renderings (0.85 -> 0.74 px),
#: but the never-worse check then fails to undo some elastic results that make as-delivered
#: pairs worse (docs/study-table.md, "Denoising the CBS before its boundary map"). A model's
#: card can turn it on (``target.denoise``).
EDGE_DENOISE = 0.0


def target_representation(cbs: np.ndarray, kind: str = "cbs", path: str | PathLike[str] | None = None,
                          denoise: float = EDGE_DENOISE) -> np.ndarray:
    """The CBS image as a model of target ``kind`` is trained to predict it, float32 0..255.

    ``cbs``: the CBS contrast-stretched (1st..99th percentile → 0..255, clipped). ``edges``:
    Gaussian gradient magnitude (σ = 1.5 px) of the stretched CBS, denoised first by total
    variation of weight ``denoise`` × its noise sd (0: not denoised), stretched likewise.
    """
    from scipy import ndimage

    from ..noise import denoise as tv_denoise

    if kind not in TARGETS:
        raise ValueError(f"unknown target kind {kind!r}; choose from {TARGETS}")
    x = normalize_input(cbs, 1, path)[0].astype(np.float64)
    if kind == "edges":
        x = ndimage.gaussian_gradient_magnitude(tv_denoise(x, denoise), EDGE_SIGMA)
        x = normalize_input(x, 1, path)[0]
    return to_output_range(x)


def to_output_range(y: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] → float32 0..255 (what bUnwarpJ needs)."""
    return np.clip((np.asarray(y, dtype=np.float32) + 1.0) * 127.5, 0.0, 255.0).astype(np.float32)


@dataclass
class PairFiles:
    name: str
    lom: Path
    cbs: Path


def find_pairs(pairs: str | PathLike[str]) -> tuple[list[PairFiles], list[str]]:
    """Aligned pairs from a folder ``PAIRS/{lom,cbs}/NAME.ext``, a folder of ``NAME_LOM.ext`` +
    ``NAME_CBS.ext`` (or ``_SEM``) files as ``batch`` pairs them, or a CSV manifest.

    Pairing is by identical file stem. Returns ``(pairs, problems)``: every unpaired file
    (or manifest row with a missing file) is reported in ``problems`` and skipped.

    Raises
    ------
    InputError
        Neither a folder with ``lom`` and ``cbs`` sub-folders nor a CSV with ``lom,cbs``
        columns; or no usable pair at all.
    """
    p = Path(pairs)
    problems: list[str] = []
    found: list[PairFiles] = []
    if p.is_dir() and not ((p / "lom").is_dir() or (p / "cbs").is_dir()):
        from ..pipeline.pairing import find_pairs as find_flat

        flat, unpaired = find_flat(p)  # NAME_LOM.tif + NAME_CBS.tif (or _SEM), as `batch` pairs them
        if flat:
            problems += [f"{u.path}: {u.reason}; skipped" for u in unpaired]
            found = [PairFiles(f.name, f.lom, f.cbs) for f in flat]
    if found:
        pass
    elif p.is_dir():
        dirs = {}
        for sub in ("lom", "cbs"):
            d = p / sub
            if not d.is_dir():
                raise InputError(p, f"expected sub-folders 'lom' and 'cbs' with aligned pairs (or NAME_LOM/NAME_CBS files); '{sub}' is missing")
            files: dict[str, Path] = {}
            for f in sorted(d.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
                    if f.stem in files:
                        problems.append(f"{f}: duplicate name {f.stem!r} (kept {files[f.stem].name})")
                        continue
                    files[f.stem] = f
            dirs[sub] = files
        for stem in sorted(set(dirs["lom"]) | set(dirs["cbs"])):
            if stem not in dirs["cbs"]:
                problems.append(f"{dirs['lom'][stem]}: no CBS image named {stem!r} in {p / 'cbs'}; skipped")
            elif stem not in dirs["lom"]:
                problems.append(f"{dirs['cbs'][stem]}: no LOM image named {stem!r} in {p / 'lom'}; skipped")
            else:
                found.append(PairFiles(stem, dirs["lom"][stem], dirs["cbs"][stem]))
    elif p.is_file() and p.suffix.lower() == ".csv":
        try:
            with open(p, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                cols = [c.strip().lower() for c in (reader.fieldnames or [])]
                if "lom" not in cols or "cbs" not in cols:
                    raise InputError(p, f"manifest needs 'lom' and 'cbs' columns, has {reader.fieldnames}")
                for i, row in enumerate(reader, start=2):
                    row = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                    lom, cbs = (Path(row[k]) for k in ("lom", "cbs"))
                    lom, cbs = (f if f.is_absolute() else p.parent / f for f in (lom, cbs))
                    missing = [str(f) for f in (lom, cbs) if not f.is_file()]
                    if missing or not row["lom"] or not row["cbs"]:
                        problems.append(f"{p} line {i}: missing file(s) {missing or 'empty cell'}; skipped")
                        continue
                    found.append(PairFiles(row.get("name") or lom.stem, lom, cbs))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(p, f"cannot read the manifest: {exc}") from exc
    else:
        raise InputError(p, "PAIRS must be a folder with 'lom' and 'cbs' sub-folders or a .csv manifest")
    for msg in problems:
        log.warning(msg)
    if not found:
        raise InputError(p, "no aligned LOM/CBS pair found" + (f" ({len(problems)} unpaired files)" if problems else ""))
    return found, problems


FIELD_TOLERANCE = 0.01
"""Relative difference of two images' fields (or aspect ratios) within which an aligned pair of two
sizes is taken to show one field (and at most one pixel more, for rounding)."""


def source_on_target_grid(source, target) -> tuple[np.ndarray, str | None]:
    """The source of an aligned pair on its target's pixel grid, and what was done (``None``: nothing).

    ``source`` and ``target`` are :class:`styleunwarp.io.Micrograph`. An aligned pair shows one
    field; the two cameras may sample it with different pixel counts. When the sizes differ the
    source is resampled (cubic, pixel-centre convention, colour channels alike) onto the target's
    grid if the two show one field: by their pixel sizes where both are known (each image's extent
    in µm within :data:`FIELD_TOLERANCE`), else by their aspect ratios. Otherwise an
    :class:`InputError` names the source and says why (the pair cannot be aligned on one grid).
    """
    from ..pipeline.grid import resample_to

    s, t = source.data, target.data
    (hs, ws), (ht, wt) = s.shape[:2], t.shape[:2]
    if (hs, ws) == (ht, wt):
        return s, None

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= max(1.0, FIELD_TOLERANCE * max(a, b))

    size = f"size {ws}x{hs} px differs from its target's ({target.path}) {wt}x{ht} px"
    if source.pixel_size and target.pixel_size:
        f = float(source.pixel_size) / float(target.pixel_size)
        if not (close(hs * f, ht) and close(ws * f, wt)):
            raise InputError(source.path, f"{size}, and at pixel sizes {source.pixel_size:.4g} / {target.pixel_size:.4g} um "
                                          f"they show fields of {ws * source.pixel_size:.4g}x{hs * source.pixel_size:.4g} and "
                                          f"{wt * target.pixel_size:.4g}x{ht * target.pixel_size:.4g} um: an aligned pair must show one field")
        how = "one field by the pixel sizes"
    elif not close(ht / hs * ws, wt):
        raise InputError(source.path, f"{size} with another aspect ratio (and no pixel sizes for both): "
                                      "an aligned pair must show one field; give both images one grid")
    else:
        how = "one field by the aspect ratio, no pixel sizes for both"
    return resample_to(s, (ht, wt)), f"resampled from {ws}x{hs} to its target's grid {wt}x{ht} px ({how})"


@dataclass
class LoadedPair:
    name: str
    x: np.ndarray  # (C, H, W) normalised LOM
    y: np.ndarray  # (1, H, W) normalised CBS


def load_pair(pf: PairFiles, channels: int, target: str = "cbs") -> LoadedPair:
    """Read and normalise one pair, the LOM brought onto the CBS's grid where the two sizes differ
    (:func:`source_on_target_grid`; a pair that cannot show one field raises :class:`InputError`).

    The CBS becomes the training target of kind ``target`` (see :func:`target_representation`)
    in [-1, 1].
    """
    from ..io import read_image

    lom_image, cbs_image = read_image(pf.lom), read_image(pf.cbs)
    lom, how = source_on_target_grid(lom_image, cbs_image)
    if how:
        log.info("%s: %s", pf.lom, how)
    cbs = cbs_image.data
    y = target_representation(cbs, target, pf.cbs) / 127.5 - 1.0
    return LoadedPair(pf.name, normalize_input(lom, channels, pf.lom), y[None].astype(np.float32))


def sample_batch(pairs: list[LoadedPair], rng: np.random.Generator, batch: int, crop: int,
                 appearance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Random crops with the same position, flips and 90° rotation on both images of a pair.

    Images smaller than ``crop`` are reflect-padded first. ``appearance``: the probability that a
    crop's source gets a random look (:func:`styleunwarp.style.appearance.vary_appearance`; the
    target is left as it is).
    """
    xs, ys = [], []
    for _ in range(batch):
        p = pairs[int(rng.integers(len(pairs)))]
        x, y = p.x, p.y
        h, w = x.shape[1:]
        if h < crop or w < crop:
            ph, pw = max(0, crop - h), max(0, crop - w)
            pad = ((0, 0), (0, ph), (0, pw))
            x, y = np.pad(x, pad, mode="symmetric"), np.pad(y, pad, mode="symmetric")
            h, w = x.shape[1:]
        i = int(rng.integers(h - crop + 1))
        j = int(rng.integers(w - crop + 1))
        cx, cy = x[:, i:i + crop, j:j + crop], y[:, i:i + crop, j:j + crop]
        k = int(rng.integers(4))
        flip = bool(rng.integers(2))
        cx, cy = np.rot90(cx, k, axes=(1, 2)), np.rot90(cy, k, axes=(1, 2))
        if flip:
            cx, cy = cx[:, :, ::-1], cy[:, :, ::-1]
        if appearance > 0 and rng.random() < appearance:
            cx = vary_appearance(cx, rng)
        xs.append(np.ascontiguousarray(cx))
        ys.append(np.ascontiguousarray(cy))
    return np.stack(xs), np.stack(ys)
