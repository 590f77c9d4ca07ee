"""The real bUnwarpJ plugin as a registration backend (through :mod:`styleunwarp.imagej`).

Calls ``bunwarpj.bUnwarpJ_.computeTransformationBatch(targetImp, sourceImp, targetMask,
sourceMask, Param(...))`` in-process (target first; with an initial affine map, the plugin's
overload that also takes the two initial ``AffineTransform``s), reads the direct and inverse B-spline
coefficients from the returned ``Transformation`` and re-applies transforms with the
plugin's own ``MiscTools.applyTransformationToSourceMT``. Nothing goes through files.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from os import PathLike
from typing import Iterator

import numpy as np

from ..errors import InputError, StyleunwarpError
from ..imagej import from_imageplus, jclass, start, to_imageplus
from ..transform import ElasticTransform
from .params import BUnwarpJParams
from .result import Points, Registration
from .validation import check_image

log = logging.getLogger(__name__)


class BUnwarpJError(StyleunwarpError, RuntimeError):
    """bUnwarpJ failed; the message carries the plugin's own."""


def _joint_range(target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Scale both images by one factor when their range is tiny (bUnwarpJ then returns the identity)."""
    span = max(float(np.ptp(target)), float(np.ptp(source)))
    if span >= 10.0:
        return target, source, 1.0
    factor = 255.0 / span
    log.warning("images span only %.3g grey levels; scaling both by %.4g for bUnwarpJ (its SSD term needs ~0..255)", span, factor)
    return target * factor, source * factor, factor


def _mask_processor(mask: np.ndarray | None, shape: tuple[int, int], role: str):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise InputError(None, f"{role} mask is {m.shape}, its image is {shape}")
    return to_imageplus((m != 0).astype(np.uint8) * 255, f"{role}-mask").getProcessor()


def _set_landmarks(imp, points: Points, role: str) -> None:
    import jpype

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise InputError(None, f"{role} landmarks must be (K, 2) arrays of (x, y), got {p.shape}")
    xs = jpype.JArray(jpype.JFloat)(p[:, 0].astype(np.float32))
    ys = jpype.JArray(jpype.JFloat)(p[:, 1].astype(np.float32))
    imp.setRoi(jclass("ij.gui.PointRoi")(xs, ys, int(p.shape[0])))


class _PluginLog:
    """Text that bUnwarpJ printed (headless, ``IJ.log`` goes to ``System.out``)."""

    def __init__(self) -> None:
        self.buffer = jclass("java.io.ByteArrayOutputStream")()

    def lines(self) -> list[str]:
        text = str(self.buffer.toString())
        return [line.strip() for line in text.splitlines() if line.strip()]


@contextmanager
def _captured_plugin_log() -> Iterator[_PluginLog]:
    """Capture what the plugin prints to ``System.out`` during the block."""
    system = jclass("java.lang.System")
    captured = _PluginLog()
    old = system.out
    system.setOut(jclass("java.io.PrintStream")(captured.buffer, True))
    try:
        yield captured
    finally:
        system.setOut(old)
        for line in captured.lines():
            log.debug("bUnwarpJ: %s", line)


def _coefficients(java_matrix) -> np.ndarray:
    return np.array([np.asarray(row, dtype=np.float64) for row in java_matrix])


def _initial_transforms(matrix: np.ndarray) -> tuple:
    """The plugin's ``(targetAffineTransf, sourceAffineTransf)`` for a ``2 x 3`` map target -> source.

    bUnwarpJ reads the source one as the map from target to source coordinates (its direct
    transform's start) and the target one as the map back (its inverse's start)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise InputError(None, f"the initial affine map must be a finite 2 x 3 matrix, got {m.shape}")
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    if abs(np.linalg.det(full)) < 1e-9:
        raise InputError(None, "the initial affine map is singular")
    back = np.linalg.inv(full)
    affine = jclass("java.awt.geom.AffineTransform")

    def java(a: np.ndarray):  # AffineTransform(m00, m10, m01, m11, m02, m12)
        return affine(float(a[0, 0]), float(a[1, 0]), float(a[0, 1]), float(a[1, 1]), float(a[0, 2]), float(a[1, 2]))

    return java(back), java(full)


def register(
    target: np.ndarray,
    source: np.ndarray,
    params: BUnwarpJParams,
    *,
    target_mask: np.ndarray | None = None,
    source_mask: np.ndarray | None = None,
    landmarks: tuple[Points, Points] | None = None,
    initial_affine: np.ndarray | None = None,
    fiji_dir: str | PathLike[str] | None = None,
) -> Registration:
    """Register ``source`` to ``target`` with the real bUnwarpJ (see :func:`styleunwarp.registration.register`).

    Landmarks become ``PointRoi`` selections on the two images, which bUnwarpJ reads as
    landmarks (integer pixel positions, as the plugin stores them). ``initial_affine``: a
    ``2 x 3`` map target pixel -> source pixel the plugin starts from (its direct B-spline
    initialised with it, its inverse with the inverse map), instead of the affine fit of the
    landmarks; the source is registered as it is, so pixels the start maps outside it are left out
    of the similarity term by the plugin itself.

    Raises
    ------
    InputError
        For unusable images, masks or landmarks.
    BUnwarpJError
        When the plugin throws or returns no transformation; carries its message.
    """
    t = check_image(target, "target")
    s = check_image(source, "source")
    t, s, factor = _joint_range(t, s)
    start(fiji_dir)
    target_imp = to_imageplus(t, "target")
    source_imp = to_imageplus(s, "source")
    target_mask_ip = _mask_processor(target_mask, t.shape, "target")
    source_mask_ip = _mask_processor(source_mask, s.shape, "source")
    if landmarks is not None:
        tp, sp = landmarks
        if len(tp) != len(sp):
            raise InputError(None, f"landmark counts differ: {len(tp)} on the target, {len(sp)} on the source")
        _set_landmarks(target_imp, tp, "target")
        _set_landmarks(source_imp, sp, "source")
    param = jclass("bunwarpj.Param")(*params.as_java_args())
    plugin = jclass("bunwarpj.bUnwarpJ_")
    if initial_affine is not None and params.img_subsamp_fact > 0:
        raise InputError(None, "bUnwarpJ's initial affine map cannot be used with image subsampling (the plugin mis-scales its translation); "
                               "use img_subsamp_fact 0 or warp the source first")
    initial = () if initial_affine is None else _initial_transforms(initial_affine)
    t0 = time.perf_counter()
    with _captured_plugin_log() as plugin_log:
        try:
            transf = plugin.computeTransformationBatch(target_imp, source_imp, target_mask_ip, source_mask_ip, *initial, param)
        except Exception as exc:  # a Java exception surfaces as a Python exception through JPype
            raise BUnwarpJError(f"bUnwarpJ failed: {exc}; plugin log: {' | '.join(plugin_log.lines()) or '(empty)'}") from exc
    seconds = time.perf_counter() - t0
    problems = [line for line in plugin_log.lines() if "error" in line.lower() or "exception" in line.lower()]
    for line in problems:
        log.warning("bUnwarpJ: %s", line)
    if transf is None:
        raise BUnwarpJError("bUnwarpJ returned no transformation (see the ImageJ log for its message)")
    direct = ElasticTransform(_coefficients(transf.getDirectDeformationCoefficientsX()), _coefficients(transf.getDirectDeformationCoefficientsY()))
    inverse = None
    if params.mode != "mono":
        inverse = ElasticTransform(_coefficients(transf.getInverseDeformationCoefficientsX()), _coefficients(transf.getInverseDeformationCoefficientsY()))
    info = {
        "intensity_scale": factor,
        "initial_affine": initial_affine is not None,
        "landmarks": 0 if landmarks is None else len(landmarks[0]),
        "plugin_messages": sorted(set(problems)),
    }
    return Registration(direct, inverse, t.shape, s.shape, "bunwarpj", params, seconds, info)


def apply_transform(
    source: np.ndarray,
    transform: ElasticTransform,
    target_shape: tuple[int, int],
    *,
    fiji_dir: str | PathLike[str] | None = None,
) -> np.ndarray:
    """Warp ``source`` onto a ``target_shape`` grid with bUnwarpJ's own apply, inside ImageJ.

    Grey input gives float32; ``(H, W, 3)`` 8-bit RGB (values 0..255, whole numbers) is warped per
    channel by the plugin and returned as uint8 RGB (ImageJ's ColorProcessor); other colour
    images (16-bit or float: ImageJ's RGB type holds 8 bits a channel) are warped channel by
    channel as 32-bit images and returned as float32. This is how the registration found on the
    styled LOM is re-applied to the original LOM.
    """
    import jpype

    src = np.asarray(source)
    if src.ndim == 3 and src.shape[2] == 3:
        if src.dtype != np.uint8:
            if not fits_8bit_rgb(src):
                return np.stack([apply_transform(src[..., c], transform, target_shape, fiji_dir=fiji_dir) for c in range(3)], axis=-1)
            src = np.rint(src).astype(np.uint8)
    elif src.ndim == 2:
        src = src.astype(np.float32) if src.dtype not in (np.uint8, np.uint16) else src
    else:
        raise InputError(None, f"source must be (H, W) grey or (H, W, 3) RGB, got {src.shape}")
    start(fiji_dir)
    source_imp = to_imageplus(src, "source")
    target_imp = to_imageplus(np.zeros(target_shape, np.float32), "target")
    cx = jpype.JArray(jpype.JDouble, 2)(transform.cx.tolist())
    cy = jpype.JArray(jpype.JDouble, 2)(transform.cy.tolist())
    try:
        jclass("bunwarpj.MiscTools").applyTransformationToSourceMT(source_imp, target_imp, transform.intervals, cx, cy)
    except Exception as exc:
        raise BUnwarpJError(f"bUnwarpJ could not apply the transform: {exc}") from exc
    return from_imageplus(source_imp)


def fits_8bit_rgb(image: np.ndarray) -> bool:
    """Whether a colour image's values are whole numbers in 0..255 (ImageJ's RGB type holds them exactly)."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return True
    return bool(a.size == 0 or (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 255 and np.array_equal(a, np.rint(a))))


def plugin_version(fiji_dir: str | PathLike[str] | None = None) -> str | None:
    """Version of the bUnwarpJ jar in use (from its manifest), if known."""
    from ..imagej.discovery import jar_version

    install = start(fiji_dir)
    return jar_version(install.bunwarpj_jar) if install.bunwarpj_jar else None
