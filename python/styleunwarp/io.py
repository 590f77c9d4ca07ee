"""Image files: reading and writing micrographs, pixel size, SEM data bar, normalisation.

Conventions
-----------
* :func:`read_image` returns a :class:`Micrograph` whose ``data`` is float32, ``(H, W)`` or
  ``(H, W, 3)`` for RGB, with the file's values unchanged (no rescaling) and its pixel size in
  micrometres. Bad files raise :class:`~styleunwarp.errors.InputError` naming the file.
* Pixel size sources, first found wins: FEI/Thermo metadata (``Scan.PixelWidth``, metres),
  Zeiss SEM metadata (``AP_IMAGE_PIXEL_SIZE``), OME-XML (``PhysicalSizeX`` and unit), ImageJ
  (resolution tag + ``unit=`` in the description), then the plain TIFF/PNG resolution in
  cm or inch. The plain resolution is trusted only when it gives a pixel of at most
  ``MAX_PLAIN_PIXEL_SIZE_UM`` (50 µm): coarser values are the display or print defaults that
  cameras and editors write (72, 96, 300 dpi), not a calibration.
* A TIFF whose first series holds several planes (a stack, a hyperstack, a multi-channel
  composite) is refused: styleunwarp registers single 2-D images. Other series of a different
  shape (thumbnails, previews) are ignored and counted in ``metadata['ignored_series']``.
* Writers are atomic: the file appears complete under its name or not at all.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .errors import InputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PLAIN_PIXEL_SIZE_UM",
    "Micrograph",
    "atomic_path",
    "atomic_write_text",
    "crop_data_bar",
    "detect_data_bar",
    "normalize",
    "read_image",
    "to_gray",
    "unit_to_um",
    "write_png",
    "write_tiff",
]

DEFAULT_MAX_PIXELS = 20000 * 20000
MAX_PLAIN_PIXEL_SIZE_UM = 50.0
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_LUMA = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)  # ITU-R BT.709, as scikit-image
_UNITS_UM = {
    "pm": 1e-6, "a": 1e-4, "angstrom": 1e-4, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "um": 1.0, "micron": 1.0, "micrometer": 1.0, "micrometre": 1.0, "mm": 1e3,
    "millimeter": 1e3, "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6, "in": 25400.0, "inch": 25400.0,
}
_IMAGEJ_KEYS = {
    "ImageJ", "images", "channels", "slices", "frames", "hyperstack", "mode", "unit", "spacing",
    "loop", "min", "max", "finterval", "fps", "xorigin", "yorigin", "zorigin", "cf", "c0", "c1",
    "vunit", "Info", "Labels", "Ranges", "LUTs", "Properties", "Plot", "Overlays", "ROI",
}


@dataclass(frozen=True, eq=False)
class Micrograph:
    """An image read from a file.

    Attributes
    ----------
    data : ndarray
        float32, ``(H, W)`` or ``(H, W, 3)`` (RGB), the file's values (data bar cropped if asked).
    pixel_size : float or None
        Physical size of one pixel in micrometres; None when the file does not say.
    path : Path or None
        The file read.
    metadata : dict
        Small facts: ``format``, ``dtype`` and ``bit_depth`` of the file, ``shape`` in the file,
        ``pixel_size_source``, ``sem``, ``data_bar_rows`` (rows cropped), and notes such as
        ``alpha_dropped``, ``ignored_series``, ``sem_scan_rows`` (FEI), ``stored`` (extra
        keys written by :func:`write_tiff`).
    """

    data: np.ndarray
    pixel_size: float | None = None
    path: Path | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return self.data.shape

    @property
    def is_rgb(self) -> bool:
        """True for ``(H, W, 3)`` data."""
        return self.data.ndim == 3


def unit_to_um(unit: str) -> float | None:
    """Micrometres per length ``unit`` (``'nm'``, ``'µm'``, ``'micron'``, ``'inch'``), or None."""
    u = str(unit).strip().lower().replace("\\u00b5", "u").replace("µ", "u").replace("μ", "u")
    u = u.replace("å", "a")
    if u.endswith("s") and u[:-1] in _UNITS_UM and len(u) > 3:  # plurals: microns, inches
        u = u[:-1]
    if u == "inche":
        u = "inch"
    return _UNITS_UM.get(u)


# --------------------------------------------------------------------------------------- read
def read_image(
    path: str | PathLike[str],
    *,
    crop_data_bar: bool | None = None,
    as_gray: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Micrograph:
    """Read a micrograph (TIFF 8/16/32-bit integer or float, PNG, JPEG, BMP).

    Parameters
    ----------
    path : path-like
        The image file.
    crop_data_bar : bool or None
        True: crop a detected SEM data bar; False: never; None (default): crop only when the
        file carries SEM metadata (FEI/Thermo, Zeiss) and a bar is detected.
    as_gray : bool
        Convert RGB to luminance (:func:`to_gray`).
    max_pixels : int
        Refuse images with more pixels than this (checked before the pixels are decoded).

    Returns
    -------
    Micrograph

    Raises
    ------
    InputError
        Missing, empty, corrupt or truncated file, stack, unsupported dtype or channel count,
        NaN/Inf values, more than ``max_pixels`` pixels.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a folder, not an image file")
    size = p.stat().st_size
    if size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic in _TIFF_MAGIC:
        data, meta, pixel_size = _read_tiff(p, size, max_pixels)
    else:
        data, meta, pixel_size = _read_pillow(p, max_pixels)
    data = _check_array(p, data, meta)
    meta["shape"] = tuple(data.shape)
    meta["data_bar_rows"] = 0
    if crop_data_bar or (crop_data_bar is None and meta.get("sem")):
        rows = detect_data_bar(data)
        if rows:
            data = data[:-rows]
            meta["data_bar_rows"] = rows
    if as_gray and data.ndim == 3:
        data = to_gray(data)
        meta["converted_to_gray"] = True
    return Micrograph(np.ascontiguousarray(data), pixel_size, p, meta)


def _read_tiff(p: Path, size: int, max_pixels: int) -> tuple[np.ndarray, dict, float | None]:
    try:
        tif = tifffile.TiffFile(p)
    except Exception as exc:  # tifffile raises many types for broken headers
        raise InputError(p, f"not a readable TIFF file (corrupt or truncated): {exc}") from None
    with tif:
        if not tif.series:
            raise InputError(p, "not a readable TIFF file (corrupt or truncated): no image in it")
        series = tif.series[0]
        axes, shape = series.axes, series.shape
        kept = [(a, n) for a, n in zip(axes, shape) if n != 1 or a in "YX"]
        extra = [(a, n) for a, n in kept if a not in "YXS"]
        composite = _imagej_colour_composite(tif, kept)
        if extra and not composite:
            planes = math.prod(n for _, n in extra)
            raise InputError(
                p, f"is a stack of {planes} images (axes {axes}, shape {shape}); styleunwarp "
                "needs one 2-D image (gray, RGB, or an ImageJ composite of 3 colour channels): save a "
                "single slice, or for colour a composite of 3 channels (Image > Color > Make Composite) or RGB")
        height, width = dict(kept).get("Y", 0), dict(kept).get("X", 0)
        _check_size(p, height, width, max_pixels)
        page = series.keyframe
        end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n), default=0)
        if end > size:
            raise InputError(p, f"file is truncated: image data needs {end} bytes, file has {size}")
        photometric = int(page.photometric)
        if photometric == 5:  # SEPARATED (CMYK)
            raise InputError(p, "CMYK TIFF is not supported; save as RGB or grayscale")
        try:
            data = series.asarray()
        except Exception as exc:
            raise InputError(p, f"cannot decode image data (corrupt or truncated): {exc}") from None
        data = data.reshape([n for _, n in kept])
        if kept[0][0] == "S" or composite:  # colour samples or channels last
            data = np.moveaxis(data, 0, -1)
        if photometric == 3 and page.colormap is not None:  # PALETTE: index into colour map
            cmap = np.asarray(page.colormap).T
            data = cmap[np.clip(data, 0, len(cmap) - 1)]
            if cmap.max() > 255:
                data = (data // 257).astype(np.uint8)
        elif photometric == 0 and data.dtype.kind == "u":  # MINISWHITE
            data = (2 ** int(page.bitspersample) - 1 - data.astype(np.int64)).astype(data.dtype)
        meta: dict[str, Any] = {"format": "tiff", "dtype": str(data.dtype),
                                "bit_depth": int(page.bitspersample),
                                "sem": bool(tif.is_fei or tif.is_sem)}
        if len(tif.series) > 1:
            meta["ignored_series"] = len(tif.series) - 1
        pixel_size = _tiff_pixel_size(tif, page, meta)
    return data, meta, pixel_size


def _imagej_colour_composite(tif: tifffile.TiffFile, kept: list[tuple[str, int]]) -> bool:
    """Whether an ImageJ TIFF is one colour image saved as a composite of 3 channels (CYX), as
    Fiji keeps 48-bit colour and as styleunwarp's Fiji macro writes a 16-bit colour LOM registered."""
    if not tif.is_imagej or [a for a, _ in kept] != ["C", "Y", "X"] or kept[0][1] != 3:
        return False
    return str((tif.imagej_metadata or {}).get("mode", "")).lower() in ("composite", "color")


def _tiff_pixel_size(tif: tifffile.TiffFile, page: Any, meta: dict) -> float | None:
    """Pixel size in µm from the richest metadata present; records the source in ``meta``."""
    candidates: list[tuple[str, Any, Any]] = []  # (source, x size in µm, y size in µm)
    fei = tif.fei_metadata if tif.is_fei else None
    if fei:
        for section in ("Scan", "EScan", "IScan"):
            sec = fei.get(section) or {}
            if _positive(sec.get("PixelWidth")):
                height = sec.get("PixelHeight")
                candidates.append(("fei", sec["PixelWidth"] * 1e6,
                                   height * 1e6 if _positive(height) else None))
                scan_rows = (fei.get("Image") or {}).get("ResolutionY")
                if isinstance(scan_rows, int) and scan_rows > 0:
                    meta["sem_scan_rows"] = scan_rows
                break
    sem = tif.sem_metadata if tif.is_sem else None
    if sem:
        for key in ("ap_image_pixel_size", "ap_pixel_size"):
            entry = sem.get(key)
            if isinstance(entry, tuple) and len(entry) >= 3 and _positive(entry[1]):
                factor = unit_to_um(entry[2])
                if factor:
                    candidates.append(("zeiss", entry[1] * factor, None))
                    break
    if tif.is_ome and tif.ome_metadata:
        candidates.extend(_ome_pixel_size(tif.ome_metadata))
    xres, yres, resunit = _resolution(page)
    if tif.is_imagej and xres:
        factor = unit_to_um((tif.imagej_metadata or {}).get("unit", ""))
        if factor:
            candidates.append(("imagej", factor / xres, factor / yres if yres else None))
    if xres and resunit in (2, 3):
        size = (25400.0 if resunit == 2 else 10000.0) / xres
        if size <= MAX_PLAIN_PIXEL_SIZE_UM:
            candidates.append(("tiff-resolution", size, None))
    if tif.is_imagej:
        stored = {k: v for k, v in (tif.imagej_metadata or {}).items() if k not in _IMAGEJ_KEYS}
        if stored:
            meta["stored"] = stored
    if not candidates:
        meta["pixel_size_source"] = None
        return None
    source, size_x, size_y = candidates[0]
    meta["pixel_size_source"] = source
    if size_y and not math.isclose(size_x, size_y, rel_tol=1e-6):
        meta["pixel_size_y"] = float(size_y)
    return float(f"{size_x:.12g}")


def _ome_pixel_size(xml: str) -> list[tuple[str, Any, Any]]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    for elem in root.iter():
        if elem.tag.rsplit("}", 1)[-1] == "Pixels" and _positive(_float(elem.get("PhysicalSizeX"))):
            fx = unit_to_um(elem.get("PhysicalSizeXUnit", "µm"))
            fy = unit_to_um(elem.get("PhysicalSizeYUnit", "µm"))
            sy = _float(elem.get("PhysicalSizeY"))
            if fx:
                return [("ome", float(elem.get("PhysicalSizeX")) * fx,
                         sy * fy if fy and _positive(sy) else None)]
    return []


def _resolution(page: Any) -> tuple[float | None, float | None, int]:
    def value(name: str) -> float | None:
        tag = page.tags.get(name)
        if tag is None:
            return None
        num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
        return num / den if num and den else None

    unit = page.tags.get("ResolutionUnit")
    return value("XResolution"), value("YResolution"), int(unit.value) if unit else 2


def _read_pillow(p: Path, max_pixels: int) -> tuple[np.ndarray, dict, float | None]:
    import warnings

    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(p)
        except UnidentifiedImageError:
            raise InputError(p, "not an image file (format not recognised)") from None
        except Image.DecompressionBombError as exc:
            raise InputError(p, f"image is too large: {exc}") from None
        except Exception as exc:
            raise InputError(p, f"cannot open image: {exc}") from None
        with img:
            _check_size(p, img.height, img.width, max_pixels)
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise InputError(p, f"contains {frames} frames; styleunwarp needs one 2-D image")
            meta: dict[str, Any] = {"format": (img.format or "unknown").lower(), "sem": False}
            try:
                img.load()
            except Exception as exc:
                raise InputError(p, f"cannot decode image (corrupt or truncated): {exc}") from None
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode in ("LA", "La", "PA"):
                img = img.convert("L" if img.mode != "PA" else "RGBA")
                meta["alpha_dropped"] = True
            elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            dpi = img.info.get("dpi")
            data = np.array(img)
    meta["dtype"] = str(data.dtype)
    meta["bit_depth"] = 1 if data.dtype == bool else data.dtype.itemsize * 8
    pixel_size = None
    if dpi and _positive(_float(dpi[0])) and 25400.0 / float(dpi[0]) <= MAX_PLAIN_PIXEL_SIZE_UM:
        pixel_size = 25400.0 / float(dpi[0])
    meta["pixel_size_source"] = "dpi" if pixel_size else None
    return data, meta, pixel_size


def _check_size(p: Path, height: int, width: int, max_pixels: int) -> None:
    if height * width == 0:
        raise InputError(p, f"image has no pixels ({width}x{height})")
    if height * width > max_pixels:
        raise InputError(p, f"image is too large: {width}x{height} = {height * width} pixels, "
                            f"more than max_pixels={max_pixels}")


def _check_array(p: Path, data: np.ndarray, meta: dict) -> np.ndarray:
    """Validate dtype, channels and values; return float32 (H, W) or (H, W, 3)."""
    kind = data.dtype.kind
    if kind == "c":
        raise InputError(p, f"complex pixel values ({data.dtype}) are not supported")
    if kind not in "biuf":
        raise InputError(p, f"unsupported pixel type {data.dtype}")
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim == 3 and data.shape[2] == 4:
        data = data[:, :, :3]
        meta["alpha_dropped"] = True
    if data.ndim != 2 and not (data.ndim == 3 and data.shape[2] == 3):
        channels = data.shape[2] if data.ndim == 3 else "?"
        raise InputError(p, f"has {channels} channels (shape {data.shape}); expected gray (H, W), "
                            "RGB or RGBA")
    if data.size == 0:
        raise InputError(p, f"image has no pixels (shape {data.shape})")
    if kind == "f":
        n_nan = int(np.count_nonzero(np.isnan(data)))
        n_inf = int(np.count_nonzero(np.isinf(data)))
        if n_nan or n_inf:
            raise InputError(p, f"contains {n_nan} NaN and {n_inf} infinite values "
                                f"out of {data.size}; replace them before use")
    if kind == "b":
        meta["note"] = "boolean image read as 0/1"
    return data.astype(np.float32, copy=False)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------- data bar
def detect_data_bar(
    image: np.ndarray,
    *,
    max_fraction: float = 0.4,
    min_rows: int = 4,
    coverage: float = 0.5,
    max_gap: int = 3,
) -> int:
    """Number of rows at the bottom that form an SEM data bar (0 if none).

    A data bar is a band at the bottom of uniform background (one exact value, black, white
    or grey) with sparse text, scale bar and frame lines, ending sharply at the specimen.
    Scanning up from the bottom, a row belongs to the bar when at least ``coverage`` of its
    pixels equal the background value, or when 80 % of it is made of its four most common
    values (antialiased text on the background; frame lines). Up to ``max_gap`` other rows are
    bridged. The band is accepted when it is ``min_rows`` to ``max_fraction`` of the height,
    is not entirely uniform (a bar carries text), and ends sharply: in the 8 rows above it
    the background value covers at most a quarter of a row (median), and on average at least
    0.4 less of a row than inside the bar. A band that stays bar-like up to ``max_fraction``
    (uniform, posterised or noise-free synthetic images) is not a data bar.

    Parameters
    ----------
    image : ndarray
        (H, W) or (H, W, 3) image; exact pixel values matter, so pass it as read.

    Returns
    -------
    int
        Rows to remove from the bottom.
    """
    img = to_gray(image) if np.ndim(image) == 3 else np.asarray(image)
    if img.ndim != 2:
        raise InputError(None, f"detect_data_bar needs a 2-D or RGB image, got shape {img.shape}")
    height, width = img.shape
    limit = int(height * max_fraction)
    if limit < min_rows + 1 or width < 8:
        return 0
    band = img[height - limit:][::-1]  # band[k] is row H-1-k
    candidates = [_mode(band[k])[0] for k in range(3)]  # background: mode of the bottom rows ...
    candidates.append(_mode(band[: max(min_rows, limit // 4)])[0])  # ... or of the bottom band
    best = 0
    for background in dict.fromkeys(candidates):  # unique, in order
        best = max(best, _bar_rows(img, band, background, min_rows, coverage, max_gap))
    return best


def _bar_rows(img: np.ndarray, band: np.ndarray, background: Any, min_rows: int,
              coverage: float, max_gap: int) -> int:
    cover = (band == background).mean(axis=1)
    top, gap = -1, 0
    for k in range(len(band)):
        if cover[k] >= coverage or _palette_fraction(band[k]) >= 0.8:
            top, gap = k, 0
        else:
            gap += 1
            if gap > max_gap:
                break
    else:
        return 0  # bar-like up to the limit: a uniform or posterised image, not a data bar
    rows = top + 1
    if rows < min_rows or np.all(band[:rows] == background):
        return 0
    height = img.shape[0]
    above = (img[max(0, height - rows - 8): height - rows] == background).mean(axis=1)
    if above.size == 0 or np.median(above) > 0.25 or cover[:rows].mean() - above.mean() < 0.4:
        return 0
    return rows


def _mode(values: np.ndarray) -> tuple[Any, float]:
    uniq, counts = np.unique(values, return_counts=True)
    i = int(np.argmax(counts))
    return uniq[i], counts[i] / values.size


def _palette_fraction(row: np.ndarray, k: int = 4) -> float:
    counts = np.unique(row, return_counts=True)[1]
    return float(np.sort(counts)[-k:].sum() / row.size)


def crop_data_bar(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Remove a detected SEM data bar; return the cropped image and the rows removed."""
    rows = detect_data_bar(image)
    return (image[:-rows] if rows else image), rows


# ------------------------------------------------------------------------------- intensities
def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance as float32: (H, W) unchanged in value, RGB(A) by BT.709 weights."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img.astype(np.float32)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return img[:, :, :3].astype(np.float32) @ _LUMA
    raise InputError(None, f"cannot convert an array of shape {img.shape} to gray")


def normalize(
    image: np.ndarray,
    *,
    low: float = 0.5,
    high: float = 99.5,
    out_range: tuple[float, float] = (0.0, 255.0),
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Percentile contrast stretch to ``out_range``, clipped, float32.

    The ``low`` and ``high`` percentiles (of the pixels where ``mask`` is true; over all
    channels together for RGB, which keeps the colour balance) map to ``out_range``.
    bUnwarpJ needs intensities of roughly 0..255 (on [0, 1] it silently returns the identity).
    When the percentiles coincide the minimum and maximum are used.

    Raises
    ------
    InputError
        Constant image, NaN/Inf values, empty mask, bad percentiles.
    """
    img = np.asarray(image, dtype=np.float32)
    if not 0.0 <= low < high <= 100.0:
        raise InputError(None, f"normalize needs 0 <= low < high <= 100, got {low}, {high}")
    values = img
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != img.shape[:2]:
            raise InputError(None, f"mask shape {m.shape} differs from image shape {img.shape}")
        values = img[m]
        if values.size == 0:
            raise InputError(None, "normalize: the mask selects no pixels")
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise InputError(None, f"cannot normalize: image contains {bad} NaN or infinite values")
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise InputError(None, f"cannot normalize a constant image (every pixel is {lo:g})")
    a, b = float(out_range[0]), float(out_range[1])
    out = np.clip((img - lo) / (hi - lo), 0.0, 1.0)
    return (out * (b - a) + a).astype(np.float32)


# ---------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_path(path: str | PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary file (hidden, same folder, same suffix) is flushed to disk and renamed onto
    ``path`` when the block ends normally, and removed when it raises: ``path`` is either the
    old file or the complete new one, never a partial write.

    Examples
    --------
    >>> with atomic_path("out.tif") as tmp:          # doctest: +SKIP
    ...     tifffile.imwrite(tmp, array)
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(target, "output folder does not exist")
    tmp = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.tmp{target.suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError, AttributeError):  # persist the rename (POSIX only)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: str | PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); return the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
    return Path(path)


def write_tiff(
    path: str | PathLike[str],
    array: np.ndarray,
    *,
    pixel_size: float | None = None,
    unit: str = "micron",
    metadata: dict | None = None,
    dtype: str | np.dtype | None = None,
) -> Path:
    """Write an ImageJ TIFF atomically: gray as 32-bit float (or ``dtype``), RGB as 8-bit RGB (16-bit
    RGB, ``dtype`` ``uint16``, as a plain RGB TIFF: ImageJ's own has 8-bit RGB only).

    Parameters
    ----------
    path : path-like
        Output file.
    array : ndarray
        (H, W), or (H, W, 3) RGB. RGB values are rounded and clipped to 0..255 (ImageJ's RGB
        type); RGB reaching beyond [-45, 300] is refused (scale it with :func:`normalize`).
    pixel_size : float, optional
        Size of one pixel in ``unit``; ImageJ shows it (Image > Properties) and
        :func:`read_image` reads it back (in µm).
    unit : str
        Length unit of ``pixel_size``, as ImageJ names it (``'micron'``, ``'nm'``, ``'mm'``).
    metadata : dict, optional
        Extra scalar ``key: value`` pairs stored in the ImageJ description; read back in
        ``Micrograph.metadata['stored']``.
    dtype : str or dtype, optional
        Pixel type for a gray image, usually the input file's (``Micrograph.metadata['dtype']``):
        ``uint8`` / ``uint16`` are rounded and clipped to their range (see
        :func:`as_file_dtype`); anything else is written as 32-bit float. ``uint8`` / ``uint16`` for
        an RGB image (an 8- or 16-bit colour input, warped) rounds and clips it to that range too,
        whatever the interpolation's overshoot.

    Returns
    -------
    Path
    """
    p = Path(path)
    arr = np.asarray(array)
    if dtype is not None and (arr.ndim == 2 or np.dtype(dtype) in (np.uint8, np.uint16)):
        arr = as_file_dtype(arr, dtype)  # an 8/16-bit RGB input's warp too: cubic overshoot is clipped, not refused
    if arr.size == 0:
        raise InputError(p, "cannot write an empty image")
    if pixel_size is not None:
        if not _positive(pixel_size):
            raise InputError(p, f"pixel size must be a positive number, got {pixel_size!r}")
        if unit_to_um(unit) is None:
            raise InputError(p, f"unknown length unit {unit!r}")
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint16:
        return _write_rgb48(p, arr, pixel_size, unit, metadata)
    if arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16):
        kwargs: dict[str, Any] = {"photometric": "minisblack"}
    elif arr.ndim == 3 and arr.shape[2] == 3:
        if arr.dtype != np.uint8:
            if arr.size and (np.nanmin(arr) < -45 or np.nanmax(arr) > 300):
                raise InputError(p, f"RGB values span [{np.nanmin(arr):g}, {np.nanmax(arr):g}]; "
                                    "RGB is written as 8-bit: scale it to 0..255 first")
            arr = np.clip(np.nan_to_num(np.rint(arr)), 0, 255).astype(np.uint8)
        kwargs = {"photometric": "rgb"}
    elif arr.ndim == 2:
        arr = arr.astype(np.float32, copy=False)
        kwargs = {"photometric": "minisblack"}
    else:
        raise InputError(p, f"cannot write an array of shape {arr.shape}: need (H, W) or RGB")
    ij_meta: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", str(key)) or key in _IMAGEJ_KEYS:
            raise InputError(p, f"metadata key {key!r} is not allowed in an ImageJ description")
        if not isinstance(value, (str, int, float, bool)):
            value = json.dumps(value, default=str)
        ij_meta[key] = str(value).replace("\n", " ") if isinstance(value, str) else value
    if pixel_size is not None:
        ij_meta["unit"] = unit
        kwargs["resolution"] = (1.0 / pixel_size, 1.0 / pixel_size)
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, arr, imagej=True, metadata=ij_meta, **kwargs)
    return p


def _write_rgb48(p: Path, arr: np.ndarray, pixel_size: float | None, unit: str, metadata: dict | None) -> Path:
    """A 16-bit-per-channel RGB image as a plain RGB TIFF (ImageJ's own TIFF has 8-bit RGB only; Fiji
    opens this one, ImageJ 1 as a stack of three 16-bit slices). The pixel size goes into the
    resolution tags (pixels per cm), which :func:`read_image` reads back; ``metadata`` into the
    JSON description (not read back). ``pixel_size`` and ``unit`` were checked by :func:`write_tiff`."""
    kwargs: dict[str, Any] = {"photometric": "rgb", "metadata": dict(metadata) if metadata else None}
    if pixel_size is not None:
        per_cm = 1e4 / (float(pixel_size) * unit_to_um(unit))
        kwargs.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    with atomic_path(p) as tmp:
        tifffile.imwrite(tmp, arr, **kwargs)
    return p


INTEGER_FILE_DTYPES = ("uint8", "uint16")
"""Gray pixel types kept as such on output (ImageJ's 8-bit and 16-bit); others become 32-bit float."""


def as_file_dtype(array: np.ndarray, dtype: str | np.dtype | None) -> np.ndarray:
    """``array`` in the pixel type of an input file: 8/16-bit rounded and clipped, else float32.

    Warping (bUnwarpJ, or the native engine) interpolates in 32-bit float and cubic
    interpolation overshoots the input range; a 16-bit LOM should stay 16-bit after
    registration, so its values are rounded and clipped to 0..65535 (0..255 for 8-bit).
    """
    arr = np.asarray(array)
    name = None if dtype is None else np.dtype(dtype).name
    if name not in INTEGER_FILE_DTYPES:
        return arr.astype(np.float32, copy=False)
    info = np.iinfo(name)
    return np.clip(np.rint(np.nan_to_num(arr.astype(np.float64))), info.min, info.max).astype(name)


PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNG previews (overlays, report pictures): fast; they are previews."""


def write_png(
    path: str | PathLike[str], array: np.ndarray, *, low: float = 0.5, high: float = 99.5
) -> Path:
    """Write an 8-bit PNG preview atomically, contrast-stretched by :func:`normalize`.

    RGB stays RGB (one stretch for all channels); NaN pixels become black; a constant image
    is written as its value clipped to 0..255.
    """
    from PIL import Image

    p = Path(path)
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or arr.size == 0:
        raise InputError(p, f"cannot write an array of shape {arr.shape} as PNG")
    finite = np.isfinite(arr)
    try:
        out = normalize(np.where(finite, arr, 0.0), low=low, high=high,
                        mask=finite.all(axis=-1) if arr.ndim == 3 else finite)
    except InputError:  # constant (or all non-finite): nothing to stretch
        out = np.clip(np.where(finite, arr, 0.0), 0, 255)
    out = np.where(finite, out, 0.0)
    with atomic_path(p) as tmp:
        # previews: fast zlib level (level 6, PIL's default, took 3-4x longer for ~20 % smaller files)
        Image.fromarray(np.rint(out).astype(np.uint8)).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return p
