"""The batch report: ``write_report(DIR)`` writes ``DIR/report.html``, a page per pair and the pictures.

:mod:`.figures` draws pictures (checkerboard, deformation grid coloured by the Jacobian with
folding in red, Jacobian map with its colour bar, thumbnails) with numpy and Pillow;
:mod:`.pictures` decides which pictures a pair folder gets and makes them when missing or
stale; :mod:`.pairpage` writes a pair's slider / flicker comparison page; :mod:`.html`
reads ``DIR/results.csv`` and the pair folders and writes the self-contained report
(inline CSS, inline SVG plots, a few lines of inline JavaScript; no external resources).
"""

from .figures import (
    checkerboard_png,
    deformation_grid_png,
    deformation_grid_rgb,
    grid_lines,
    jacobian_colors,
    jacobian_legend_rgb,
    jacobian_png,
    jacobian_rgb,
    thumbnail,
    write_rgb_png,
)
from .html import RESULT_COLUMNS, pair_details, read_results, write_report
from .pictures import VIEWS, ensure_figures

__all__ = [
    "RESULT_COLUMNS",
    "VIEWS",
    "checkerboard_png",
    "deformation_grid_png",
    "deformation_grid_rgb",
    "ensure_figures",
    "grid_lines",
    "pair_details",
    "jacobian_colors",
    "jacobian_legend_rgb",
    "jacobian_png",
    "jacobian_rgb",
    "read_results",
    "thumbnail",
    "write_report",
    "write_rgb_png",
]
