"""``lut``: the target's expected grey level for each source grey level or colour, a lookup table.

The table is fitted on aligned pairs in seconds: the source's grey level (or its colour, quantised
per channel) indexes a bin. Each bin holds the mean grey level the target shows at that bin's
pixels, shrunk toward the overall mean where a bin was seen rarely. A source pixel is replaced by
its bin's value.

Being pixelwise, it has no spatial context. Unlike a network translation, it cannot draw structure
that is not in the source, nor place an edge off-centre. What it does is make the two images' grey
levels comparable for SSD and NCC (bUnwarpJ's similarity, the native engine's, the fine affine step).
That works where the target is a function of the source's grey level or colour: contrast inverted
or non-monotonic, or a stain's colour that marks the target's structure, which luminance mixes
with the rest. Where the target is not such a function (texture, context), the table is nearly
flat, and the chain loses the held-out comparison of ``train --target auto`` to the raw chains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from . import Representation

WEIGHTS = "lut.safetensors"
GREY_BINS = 64
"""Bins of a grey source's table."""
COLOUR_BINS = 16
"""Bins per channel of a colour source's table (16**3 colours)."""
SHRINK = 20.0
"""Pseudo-count pulling a bin toward the overall mean: a bin seen at 20 pixels is halfway."""


def _unit(image: np.ndarray) -> np.ndarray:
    """An image percentile-stretched to 0..1 (all channels together: the colour balance is kept)."""
    from ...io import normalize

    return normalize(np.asarray(image, np.float32), out_range=(0.0, 1.0))


def _grey_unit(image: np.ndarray) -> np.ndarray:
    """An image's luminance stretched to 0..1."""
    from ...io import to_gray

    return _unit(to_gray(np.asarray(image)))


def _source_bins(source: np.ndarray, channels: int) -> tuple[np.ndarray, int]:
    """``(bin index per pixel, number of bins)`` of a source for a ``channels``-channel table."""
    a = np.asarray(source)
    if channels == 1:
        q = np.clip((_grey_unit(a) * GREY_BINS).astype(np.int64), 0, GREY_BINS - 1)
        return q, GREY_BINS
    rgb = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]
    q = np.clip((_unit(rgb) * COLOUR_BINS).astype(np.int64), 0, COLOUR_BINS - 1)
    return (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2], COLOUR_BINS**3


class IntensityMap(Representation):
    """The source mapped pixelwise to the target's expected grey level; the target stretched as is."""

    kind = "lut"
    trainable = True

    def __init__(self, table: np.ndarray, channels: int) -> None:
        table = np.asarray(table, np.float64).ravel()
        expected = GREY_BINS if channels == 1 else COLOUR_BINS**3
        if channels not in (1, 3) or table.size != expected:
            raise ValueError(f"a {channels}-channel intensity map needs {expected} bins, got {table.size}")
        self.table = table
        self.channels = channels

    @classmethod
    def fit(cls, pairs: Iterable[tuple[np.ndarray, np.ndarray]], channels: int) -> "IntensityMap":
        """The table of aligned ``(source, target)`` pairs (each on one pixel grid).

        Each bin's value is ``(sum of target + SHRINK * overall mean) / (count + SHRINK)``; the
        target is stretched to 0..1 per image, so its values are on one scale whatever each
        acquisition's contrast."""
        sums = counts = None
        for source, target in pairs:
            idx, n = _source_bins(source, channels)
            t = _grey_unit(target)
            if t.shape != idx.shape:
                raise ValueError(f"source {idx.shape} and target {t.shape} are not on one grid")
            s = np.bincount(idx.ravel(), weights=t.ravel(), minlength=n)
            c = np.bincount(idx.ravel(), minlength=n).astype(np.float64)
            sums, counts = (s, c) if sums is None else (sums + s, counts + c)
        if sums is None or counts.sum() == 0:
            raise ValueError("no pixels to fit an intensity map on")
        mean = sums.sum() / counts.sum()
        return cls((sums + SHRINK * mean) / (counts + SHRINK), channels)

    def map_source(self, source: np.ndarray) -> np.ndarray:
        """The source's pixels replaced by their bin's expected target grey level (0..1)."""
        idx, _ = _source_bins(source, self.channels)
        return self.table[idx].astype(np.float32)

    def represent(self, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 255.0 * self.map_source(source), 255.0 * _grey_unit(target)

    def save(self, folder: Path) -> dict:
        from safetensors.numpy import save_file

        from ...io import atomic_path

        with atomic_path(Path(folder) / WEIGHTS) as tmp:
            save_file({"table": self.table.astype(np.float32)}, str(tmp), metadata={"format": "styleunwarp.lut/1"})
        return {"kind": self.kind, "weights": WEIGHTS, "channels": self.channels,
                "bins": GREY_BINS if self.channels == 1 else COLOUR_BINS, "shrink": SHRINK,
                "table": "mean target grey level (0..1, stretched per image) per source grey level or colour bin"}

    @classmethod
    def from_card(cls, folder: Path, section: dict) -> "IntensityMap":
        from safetensors.numpy import load_file

        from ...errors import InputError

        path = Path(folder) / WEIGHTS  # a fixed name: the card is data and names no path
        try:
            table = load_file(str(path))["table"]
            rep = cls(table, int(section["channels"]))
        except Exception as exc:  # noqa: BLE001 - any failure means the file does not fit the card
            raise InputError(path, f"cannot load the intensity map ({type(exc).__name__}: {exc})") from exc
        if not np.isfinite(rep.table).all():
            raise InputError(path, "intensity map contains NaN or infinite values")
        return rep


__all__ = ["COLOUR_BINS", "GREY_BINS", "IntensityMap", "SHRINK"]
