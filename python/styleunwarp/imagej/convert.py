"""numpy arrays to ImageJ 1 ``ImagePlus`` and back, in memory (no temporary files).

Grey images become ``FloatProcessor`` (32-bit) unless their dtype is uint8 / uint16, which
map to ``ByteProcessor`` / ``ShortProcessor``; ``(H, W, 3)`` uint8 RGB becomes a
``ColorProcessor``. Pixel data cross the bridge as one primitive array through JPype's
buffer protocol, not element by element.
"""

from __future__ import annotations

import numpy as np

from .jvm import jclass


def to_imageplus(array: np.ndarray, title: str = "image"):
    """Wrap a numpy image as an ``ij.ImagePlus`` (copies the pixels once)."""
    import jpype

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 3:
        rgb = np.clip(a, 0, 255).astype(np.uint32) if a.dtype != np.uint8 else a.astype(np.uint32)
        packed = (0xFF << 24) | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        h, w = a.shape[:2]
        pixels = jpype.JArray(jpype.JInt)(np.ascontiguousarray(packed.astype(np.int32).ravel()))
        proc = jclass("ij.process.ColorProcessor")(w, h, pixels)
    elif a.ndim == 2:
        h, w = a.shape
        if a.dtype == np.uint8:
            proc = jclass("ij.process.ByteProcessor")(w, h, jpype.JArray(jpype.JByte)(np.ascontiguousarray(a.view(np.int8).ravel())))
        elif a.dtype == np.uint16:
            proc = jclass("ij.process.ShortProcessor")(w, h, jpype.JArray(jpype.JShort)(np.ascontiguousarray(a.view(np.int16).ravel())), None)
        else:
            proc = jclass("ij.process.FloatProcessor")(w, h, jpype.JArray(jpype.JFloat)(np.ascontiguousarray(a, dtype=np.float32).ravel()))
    else:
        raise ValueError(f"cannot convert an array of shape {a.shape} to an ImagePlus (need (H, W) or (H, W, 3))")
    return jclass("ij.ImagePlus")(title, proc)


def from_imageplus(imp) -> np.ndarray:
    """Pixels of an ``ij.ImagePlus`` (its current processor) as a numpy array.

    32-bit → float32, 16-bit → uint16, 8-bit → uint8, RGB → ``(H, W, 3)`` uint8.
    """
    proc = imp.getProcessor()
    w, h = int(proc.getWidth()), int(proc.getHeight())
    pixels = np.asarray(proc.getPixels())
    name = str(proc.getClass().getSimpleName())
    if name == "ColorProcessor":
        p = pixels.astype(np.uint32).reshape(h, w)
        return np.stack([(p >> 16) & 0xFF, (p >> 8) & 0xFF, p & 0xFF], axis=-1).astype(np.uint8)
    if name == "ByteProcessor":
        return pixels.view(np.uint8).reshape(h, w).copy()
    if name == "ShortProcessor":
        return pixels.view(np.uint16).reshape(h, w).copy()
    return pixels.astype(np.float32).reshape(h, w)
