"""elastix (itk-elastix) as a registration backend: the classic multi-modal alternative.

Mutual information (Mattes), an affine stage then a B-spline stage, as a user would try
first on raw LOM → CBS. elastix's transform maps fixed (target) points to moving (source)
points, which is the direct-transform convention; its dense deformation field is fitted
with a bUnwarpJ elastic grid so that the result is saved and applied like any other
(``info["fit_rms_px"]`` is the fitting error). Optional: ``pip install itk-elastix``.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from ..errors import InputError, StyleunwarpError
from ..transform import fit_elastic
from .params import BUnwarpJParams
from .result import Points, Registration
from .validation import check_image

FIT_INTERVALS = 32
"""B-spline intervals of the bUnwarpJ grid fitted to elastix's deformation field."""


def _itk():
    try:
        import itk
    except ImportError as exc:
        raise StyleunwarpError("the elastix backend needs itk-elastix: pip install itk-elastix") from exc
    return itk


def register(
    target: np.ndarray,
    source: np.ndarray,
    params: BUnwarpJParams,
    *,
    target_mask: np.ndarray | None = None,
    source_mask: np.ndarray | None = None,
    landmarks: tuple[Points, Points] | None = None,
    grid_spacing: float = 32.0,
    iterations: int = 500,
    fit_intervals: int = FIT_INTERVALS,
) -> Registration:
    """Register with elastix: affine then B-spline, Mattes mutual information.

    ``params`` is accepted for the common interface; only ``params.mode`` matters (no
    inverse is computed). ``grid_spacing`` is the B-spline control point spacing (px).
    """
    if landmarks is not None or target_mask is not None or source_mask is not None:
        raise InputError(None, "the elastix backend does not take landmarks or masks here")
    itk = _itk()
    t = check_image(target, "target")
    s = check_image(source, "source")
    fixed = itk.image_view_from_array(np.ascontiguousarray(t))
    moving = itk.image_view_from_array(np.ascontiguousarray(s))
    po = itk.ParameterObject.New()
    for kind in ("affine", "bspline"):
        p = po.GetDefaultParameterMap(kind, 4)
        p["Metric"] = ["AdvancedMattesMutualInformation"]
        p["MaximumNumberOfIterations"] = [str(iterations)]
        p["NumberOfSpatialSamples"] = ["4096"]
        if kind == "bspline":
            p["FinalGridSpacingInPhysicalUnits"] = [str(float(grid_spacing))]
        p["WriteResultImage"] = ["false"]
        po.AddParameterMap(p)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="styleunwarp-elastix-") as work:  # transformix writes files
        try:
            _, result = itk.elastix_registration_method(fixed, moving, parameter_object=po, log_to_console=False, output_directory=work)
            field = itk.transformix_deformation_field(moving, result, output_directory=work)
        except Exception as exc:  # elastix raises RuntimeError with its log on failure
            raise StyleunwarpError(f"elastix failed: {exc}") from exc
    seconds = time.perf_counter() - t0
    disp = np.asarray(itk.array_from_image(field), dtype=np.float64)  # (H, W, 2): (dx, dy) per fixed pixel
    h, w = t.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dense = np.stack([xx + disp[..., 0], yy + disp[..., 1]])
    direct = fit_elastic(dense, fit_intervals)
    fit_rms = float(np.sqrt(((direct.to_dense((h, w)) - dense) ** 2).sum(axis=0).mean()))
    info = {"fit_rms_px": fit_rms, "grid_spacing_px": grid_spacing, "iterations": iterations}
    return Registration(direct, None, (h, w), s.shape, "elastix", params, seconds, info)
