"""Warping a source image onto the target grid, as bUnwarpJ does.

bUnwarpJ samples the source with cubic B-spline interpolation: an exact cubic prefilter
and half-sample symmetric ("mirror off bounds") extension of the image, which is scipy's
``mode="reflect"``. Target pixels whose source position falls outside
``0 <= x < W, 0 <= y < H`` become 0. Results are 32-bit float; RGB sources are warped
per channel and rounded and clipped to 8 bits, as ImageJ's ``ColorProcessor`` stores them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .model import Shape, Transform, to_dense


def inside_source(dense_map: np.ndarray, source_shape: Shape) -> np.ndarray:
    """Boolean ``(H, W)`` mask of target pixels that bUnwarpJ maps inside the source."""
    h, w = source_shape
    x, y = dense_map[0], dense_map[1]
    return (x >= 0) & (x < w) & (y >= 0) & (y < h)


def _warp_channel(channel: np.ndarray, dense_map: np.ndarray, inside: np.ndarray) -> np.ndarray:
    coeffs = ndimage.spline_filter(channel.astype(np.float64), order=3, mode="reflect")
    out = np.zeros(dense_map.shape[1:], dtype=np.float64)
    coords = np.stack([dense_map[1][inside], dense_map[0][inside]])  # (row, col) for scipy
    out[inside] = ndimage.map_coordinates(coeffs, coords, order=3, mode="reflect", prefilter=False)
    return out.astype(np.float32)


def warp_image(
    source: np.ndarray,
    transform: Transform | np.ndarray,
    target_shape: Shape | None = None,
) -> np.ndarray:
    """Warp ``source`` onto the target grid with a direct transform.

    Parameters
    ----------
    source
        ``(H, W)`` grey or ``(H, W, 3)`` RGB image.
    transform
        An :class:`ElasticTransform`, a :class:`RawTransform` or a dense ``(2, H, W)`` map.
    target_shape
        ``(H, W)`` of the target grid; needed for elastic transforms (the file does not
        hold it), taken from the map otherwise.

    Returns
    -------
    ``source(T(x, y))`` on the target grid: float32 for grey input; for RGB, uint8 when
    the input is uint8 (as bUnwarpJ's colour output), float32 otherwise.
    """
    src = np.asarray(source)
    if target_shape is None:
        if isinstance(transform, np.ndarray):
            target_shape = transform.shape[1:]
        elif hasattr(transform, "shape"):
            target_shape = transform.shape
        else:
            raise ValueError("target_shape is needed to evaluate an elastic transform")
    dense = to_dense(transform, tuple(target_shape))
    inside = inside_source(dense, src.shape[:2])
    if src.ndim == 2:
        return _warp_channel(src, dense, inside)
    if src.ndim == 3 and src.shape[2] == 3:
        channels = [_warp_channel(src[..., c], dense, inside) for c in range(3)]
        out = np.stack(channels, axis=-1)
        if src.dtype == np.uint8:
            return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
        return out
    raise ValueError(f"source must be (H, W) or (H, W, 3), got {src.shape}")
