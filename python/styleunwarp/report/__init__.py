"""The batch report: ``write_report(DIR)`` writes ``DIR/report.html`` and the pictures it shows.

:mod:`.figures` draws the per-pair pictures (checkerboard, deformation grid coloured by the
Jacobian with folding in red, Jacobian map, thumbnails) with numpy only; :mod:`.html`
reads ``DIR/results.csv`` and the pair folders and writes a self-contained page (inline CSS,
inline SVG plots, a few lines of inline JavaScript for sorting; no external resources).
"""

from .figures import (
    checkerboard_png,
    deformation_grid_png,
    deformation_grid_rgb,
    grid_lines,
    jacobian_colors,
    jacobian_png,
    jacobian_rgb,
    thumbnail,
    write_rgb_png,
)
from .html import RESULT_COLUMNS, ensure_figures, read_results, write_report

__all__ = [
    "RESULT_COLUMNS",
    "checkerboard_png",
    "deformation_grid_png",
    "deformation_grid_rgb",
    "ensure_figures",
    "grid_lines",
    "jacobian_colors",
    "jacobian_png",
    "jacobian_rgb",
    "read_results",
    "thumbnail",
    "write_report",
    "write_rgb_png",
]
