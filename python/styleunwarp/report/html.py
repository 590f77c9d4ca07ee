"""The HTML report of a batch folder: summary, inline SVG plots, one table row per pair.

Input (see the batch engine): ``DIR/results.csv`` (one row per pair) and ``DIR/<pair>/``
folders with ``registered.tif``, ``target.tif``, ``direct_transf.txt``, ``overlay.png``,
``metrics.json`` (failed pairs: ``error.json`` and maybe some of these). Without a
``results.csv`` the rows are rebuilt from the pair folders' ``metrics.json`` / ``error.json``.

Output: ``DIR/report.html`` (written atomically), and per pair the pictures it shows, made
from the pair's files when missing or older than their sources: ``checkerboard.png``,
``grid.png``, ``jacobian.png``, full-size previews ``target.png`` and ``registered.png``
(browsers do not show float TIFFs), and ``thumbs/*.png``. The page works offline: no
external URL, no script library (a few lines of inline JavaScript sort the table), relative
and URL-quoted links, every name HTML-escaped.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from html import escape
from os import PathLike
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .. import __version__
from ..io import atomic_write_text, read_image, to_gray, write_png
from . import figures

log = logging.getLogger(__name__)

PathLikeStr = str | PathLike[str]

RESULT_COLUMNS = (
    "pair", "status", "lom", "cbs", "tier", "grade_source",
    "tre_mean_px", "tre_p95_px", "nmi_before", "nmi_after", "consistency_px", "folded_fraction",
    "jacobian_min", "roughness", "displacement_mean_px", "registration_s", "total_s", "error",
)
TIERS = ("good", "decent", "bad", "poor")
TIER_RANK = {"poor": 0, "bad": 1, "decent": 2, "good": 3}
TIER_COLORS = {"good": "#2e7d32", "decent": "#9e9d24", "bad": "#ef6c00", "poor": "#c62828"}
OTHER_COLOR = "#757575"
THUMB_SIDE = 160
GRID_STEP = 32

# (key in ``views``, column title, full-size file, thumbnail file)
_VIEWS = (
    ("target", "CBS (target)", "target.png", "thumbs/target.png"),
    ("registered", "registered LOM", "registered.png", "thumbs/registered.png"),
    ("overlay", "overlay", "overlay.png", "thumbs/overlay.png"),
    ("checkerboard", "checkerboard", "checkerboard.png", "thumbs/checkerboard.png"),
    ("grid", "deformation grid", "grid.png", "thumbs/grid.png"),
)
# (column in results.csv, title, decimals, scale, unit tooltip)
_METRIC_COLUMNS = (
    ("tre_mean_px", "TRE mean", 2, 1.0, "mean target registration error, px (needs ground truth)"),
    ("tre_p95_px", "TRE p95", 2, 1.0, "95th percentile of the TRE, px"),
    ("nmi_before", "NMI before", 3, 1.0, "normalised mutual information LOM vs CBS before registration (1 = unrelated, 2 = identical)"),
    ("nmi_after", "NMI after", 3, 1.0, "NMI of the registered LOM vs CBS"),
    ("nmi_gain", "NMI gain", 3, 1.0, "NMI after minus NMI before"),
    ("consistency_px", "consistency", 2, 1.0, "mean distance of inverse(direct(x)) from x, px (none in Mono mode)"),
    ("folded_fraction", "folded %", 2, 100.0, "percentage of target pixels where the map folds (Jacobian <= 0)"),
    ("jacobian_min", "Jac. min", 3, 1.0, "smallest Jacobian determinant of the direct map"),
    ("roughness", "roughness", 3, 1.0, "standard deviation of the Jacobian determinant"),
    ("displacement_mean_px", "displ. mean", 1, 1.0, "mean displacement of the direct map, px"),
    ("registration_s", "reg. s", 1, 1.0, "registration time, s"),
    ("total_s", "total s", 1, 1.0, "total time of the pair, s"),
)


@dataclass
class PairEntry:
    """One table row: the results.csv row, the pair folder's metrics and pictures."""

    index: int
    row: dict
    folder: Path | None
    metrics: dict | None = None
    views: dict = field(default_factory=dict)  # key -> (full Path or None, thumb Path or None)
    files: dict = field(default_factory=dict)  # label -> Path (existing files to link)
    notes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.row.get("pair") or "")

    @property
    def status(self) -> str:
        return str(self.row.get("status") or "").strip().lower()

    @property
    def tier(self) -> str:
        t = str(self.row.get("tier") or "").strip().lower()
        return t if t in TIER_RANK else ""

    @property
    def grade_source(self) -> str:
        return str(self.row.get("grade_source") or "").strip().lower()

    def num(self, key: str) -> float | None:
        """A metric as float (None if absent, empty or not finite)."""
        if key == "nmi_gain":
            a, b = self.num("nmi_after"), self.num("nmi_before")
            return None if a is None or b is None else a - b
        return _float(self.row.get(key))


# ----------------------------------------------------------------------------------- input
def _float(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _row_from_metrics(name: str, metrics: dict | None, error: dict | None) -> dict:
    """A results.csv-like row rebuilt from a pair folder (used when results.csv is absent)."""
    m = metrics or {}
    t = m.get("transform") or {}
    s = m.get("seconds") or {}
    tre = m.get("tre") or {}
    row = {
        "pair": name,
        "status": "done" if metrics is not None else "failed",
        "lom": m.get("lom") or "",
        "cbs": m.get("cbs") or "",
        "tier": m.get("tier") or "",
        "grade_source": m.get("grade_source") or ("tre" if m.get("tier") and tre else ""),
        "tre_mean_px": tre.get("mean"),
        "tre_p95_px": tre.get("p95"),
        "nmi_before": m.get("nmi_before"),
        "nmi_after": m.get("nmi_after"),
        "consistency_px": t.get("consistency_error"),
        "folded_fraction": t.get("folded_fraction"),
        "jacobian_min": t.get("jacobian_min"),
        "roughness": t.get("roughness"),
        "displacement_mean_px": t.get("displacement_mean"),
        "registration_s": s.get("registration"),
        "total_s": s.get("total"),
        "error": "",
    }
    if error:
        row["status"] = "failed"
        row["error"] = str(error.get("error") or "")
    return {k: ("" if v is None else v) for k, v in row.items()}


def read_results(batch_dir: PathLikeStr) -> list[dict]:
    """The rows of ``DIR/results.csv``; without it, rows rebuilt from the pair folders.

    Raises
    ------
    FileNotFoundError
        Neither a results.csv nor any pair folder (with metrics.json or error.json) is there.
    """
    d = Path(batch_dir)
    csv_path = d / "results.csv"
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            return [dict(r) for r in csv.DictReader(fh) if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    rows = []
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):  # .partial-*
        metrics, error = _load_json(sub / "metrics.json"), _load_json(sub / "error.json")
        if metrics is not None or error is not None:
            rows.append(_row_from_metrics(sub.name, metrics, error))
    if not rows:
        raise FileNotFoundError(f"{d}: no results.csv and no pair folder with metrics.json or error.json")
    return rows


def _pair_folder(batch_dir: Path, name: str) -> Path | None:
    """The pair's folder if it exists and lies inside the batch folder (names come from a CSV)."""
    if not name or name in (".", ".."):
        return None
    folder = batch_dir / name
    try:
        inside = folder.resolve().is_relative_to(batch_dir.resolve()) and folder.resolve() != batch_dir.resolve()
    except OSError:
        return None
    return folder if inside and folder.is_dir() else None


# --------------------------------------------------------------------------------- figures
def _png_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _stale(out: Path, *sources: Path) -> bool:
    """True when ``out`` is missing or older than any existing source."""
    if not out.is_file():
        return True
    mtime = out.stat().st_mtime
    return any(s.is_file() and s.stat().st_mtime > mtime for s in sources)


def ensure_figures(folder: PathLikeStr, *, thumb_side: int = THUMB_SIDE, step: float = GRID_STEP,
                   force: bool = False) -> tuple[dict, list[str]]:
    """Make the pictures the report shows for one pair folder, where missing or out of date.

    Returns ``(views, notes)``: ``views[key] = (full, thumb)`` paths (None where the picture
    cannot be made from the files present) for ``target``, ``registered``, ``overlay``,
    ``checkerboard`` and ``grid``, plus ``views['jacobian'] = (path, None)``; ``notes`` says
    what failed. Never raises for a bad pair file: the report goes on.
    """
    f = Path(folder)
    src = {"target": f / "target.tif", "registered": f / "registered.tif", "direct": f / "direct_transf.txt",
           "overlay": f / "overlay.png"}
    cache: dict = {}
    notes: list[str] = []

    def image(key: str) -> np.ndarray:
        if key not in cache:
            cache[key] = read_image(src[key]).data
        return cache[key]

    def direct():
        if "direct" not in cache:
            from ..transform import read_transform

            cache["direct"] = read_transform(src["direct"])
        return cache["direct"]

    def target_shape() -> tuple[int, int]:
        return tuple(image("target").shape[:2]) if src["target"].is_file() else tuple(image("registered").shape[:2])

    def grey(key: str) -> np.ndarray:
        return to_gray(image(key))

    def grid_pic(max_side: int | None) -> np.ndarray:
        bg = grey("target") if src["target"].is_file() else None
        shape = target_shape()
        grid_step = step if max(shape) >= 8 * step else max(4, max(shape) // 8)  # small images: 8 lines
        return figures.deformation_grid_rgb(direct(), shape, grid_step, bg, max_side=max_side)

    thumbs = f / "thumbs"
    # key: (full file, its sources, writer of the full file (None: the batch wrote it), picture to thumbnail)
    plans = {
        "target": (f / "target.png", [src["target"]],
                   lambda p: write_png(p, image("target")), lambda: image("target")),
        "registered": (f / "registered.png", [src["registered"]],
                       lambda p: write_png(p, image("registered")), lambda: image("registered")),
        "overlay": (f / "overlay.png", [src["overlay"]], None, None),
        "checkerboard": (f / "checkerboard.png", [src["registered"], src["target"]],
                         lambda p: figures.checkerboard_png(image("registered"), image("target"), p),
                         None),
        "grid": (f / "grid.png", [src["direct"], src["target"]],
                 lambda p: figures.write_rgb_png(p, grid_pic(None)), None),
    }
    has = {k: p.is_file() for k, p in src.items()}
    requires = {
        "target": has["target"],
        "registered": has["registered"],
        "overlay": has["overlay"],
        "checkerboard": has["registered"] and has["target"],
        "grid": has["direct"] and (has["target"] or has["registered"]),
    }
    views: dict = {}
    for key, (full, sources, make, pic) in plans.items():
        if not requires[key]:
            views[key] = (None, None)
            continue
        try:
            if make is not None and (force or _stale(full, *sources)):
                make(full)
            thumb = thumbs / full.name
            if force or _stale(thumb, full, *sources):
                thumbs.mkdir(exist_ok=True)
                if key == "grid":
                    figures.write_rgb_png(thumb, grid_pic(thumb_side))
                elif key in ("overlay", "checkerboard"):  # PNG pictures: keep their exact colours
                    figures.write_rgb_png(thumb, figures.thumbnail(_png_rgb(full), thumb_side))
                else:
                    write_png(thumb, figures.thumbnail(pic(), thumb_side))
            views[key] = (full, thumb)
        except Exception as exc:  # one bad file must not stop the report
            log.warning("%s: cannot make %s picture: %s", f, key, exc)
            notes.append(f"{key} picture: {type(exc).__name__}: {exc}")
            views[key] = (full if full.is_file() else None, None)
    jac = f / "jacobian.png"
    if src["direct"].is_file() and (src["target"].is_file() or src["registered"].is_file()):
        try:
            if force or _stale(jac, src["direct"], src["target"]):
                figures.jacobian_png(direct(), target_shape(), jac)
            views["jacobian"] = (jac, None)
        except Exception as exc:
            notes.append(f"jacobian picture: {type(exc).__name__}: {exc}")
    return views, notes


# ---------------------------------------------------------------------------------- HTML
def _e(value) -> str:
    return escape(str(value), quote=True)


def _href(batch_dir: Path, path: Path) -> str:
    rel = path.relative_to(batch_dir).as_posix()
    return _e(quote(rel, safe="/"))


def _fmt(value: float | None, decimals: int, scale: float = 1.0) -> str:
    return "" if value is None else f"{value * scale:.{decimals}f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _tier_badge(tier: str, source: str) -> str:
    if not tier:
        return '<span class="badge none">—</span>'
    est = source == "grader"
    title = ("estimated by the grader from metrics without ground truth" if est
             else "from the target registration error (ground truth)" if source == "tre" else "tier")
    label = f"≈ {tier}" if est else tier
    cls = f"badge t-{tier}" + (" est" if est else "")
    return f'<span class="{cls}" title="{_e(title)}">{_e(label)}</span>'


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _bar_svg(counts: dict[str, int]) -> str:
    labels = [*TIERS, "ungraded", "failed", "unpaired"]
    colors = {**TIER_COLORS, "ungraded": "#9e9e9e", "failed": "#424242", "unpaired": "#bdbdbd"}
    w, h, left, bottom, top = 420, 200, 36, 30, 14
    bw = (w - left - 10) / len(labels)
    vmax = max([counts.get(k, 0) for k in labels] + [1])
    parts = [f'<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="pairs per tier"><title>pairs per tier</title>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - 6}" y2="{h - bottom}" stroke="#333"/>']
    for i, k in enumerate(labels):
        c = counts.get(k, 0)
        bh = (h - bottom - top) * c / vmax
        x = left + i * bw + 4
        y = h - bottom - bh
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 8:.1f}" height="{bh:.1f}" fill="{colors[k]}">'
                     f'<title>{_e(k)}: {c}</title></rect>')
        parts.append(f'<text x="{x + (bw - 8) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="cnt">{c}</text>')
        parts.append(f'<text x="{x + (bw - 8) / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle" class="lbl">{_e(k)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _scatter_svg(entries: list[PairEntry]) -> str:
    use_tre = any(e.num("tre_mean_px") is not None for e in entries)
    if use_tre:
        xkey, ykey = "tre_mean_px", "nmi_gain"
        xlabel, ylabel = "TRE mean (px)", "NMI gain (after − before)"
    else:
        xkey, ykey = "consistency_px", "nmi_after"
        xlabel, ylabel = "consistency (px)", "NMI after"
    pts = [(e, e.num(xkey), e.num(ykey)) for e in entries]
    pts = [(e, x, y) for e, x, y in pts if x is not None and y is not None]
    title = f"{ylabel} vs {xlabel}"
    if not pts:
        return (f'<p class="noplot">No pair has both {_e(xlabel)} and {_e(ylabel)}: '
                f'nothing to plot.</p>')
    w, h, left, right, top, bottom = 420, 240, 52, 12, 12, 40
    xs = [x for _, x, _ in pts]
    ys = [y for _, _, y in pts]
    x0, x1 = min(0.0, min(xs)), max(xs)
    y0, y1 = min(ys), max(ys)
    x1 = x1 + 0.05 * (x1 - x0) if x1 > x0 else x0 + 1.0
    pad = 0.08 * (y1 - y0) if y1 > y0 else 0.05 * max(abs(y0), 1.0)
    y0, y1 = y0 - pad, y1 + pad

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (w - left - right)

    def sy(v: float) -> float:
        return h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom)

    parts = [f'<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
             f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" fill="none" stroke="#333"/>']
    for t in _nice_ticks(x0, x1):
        if x0 <= t <= x1:
            parts.append(f'<line x1="{sx(t):.1f}" y1="{h - bottom}" x2="{sx(t):.1f}" y2="{h - bottom + 4}" stroke="#333"/>'
                         f'<text x="{sx(t):.1f}" y="{h - bottom + 15}" text-anchor="middle" class="lbl">{t:g}</text>')
    for t in _nice_ticks(y0, y1):
        if y0 <= t <= y1:
            parts.append(f'<line x1="{left - 4}" y1="{sy(t):.1f}" x2="{left}" y2="{sy(t):.1f}" stroke="#333"/>'
                         f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" class="lbl">{t:g}</text>')
    if use_tre:
        for limit in (1.5, 3.0, 8.0):
            if x0 < limit < x1:
                parts.append(f'<line x1="{sx(limit):.1f}" y1="{top}" x2="{sx(limit):.1f}" y2="{h - bottom}" '
                             f'stroke="#999" stroke-dasharray="4 3"><title>tier limit {limit:g} px</title></line>')
    parts.append(f'<text x="{left + (w - left - right) / 2:.1f}" y="{h - 6}" text-anchor="middle" class="axis">{_e(xlabel)}</text>')
    parts.append(f'<text transform="translate(12 {top + (h - top - bottom) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle" class="axis">{_e(ylabel)}</text>')
    for e, x, y in pts:
        color = TIER_COLORS.get(e.tier, OTHER_COLOR)
        tip = f"{e.name}: {xlabel} {x:.3g}, {ylabel} {y:.3g}" + (f", {e.tier}" if e.tier else "")
        parts.append(f'<a href="#pair-{e.index}"><circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4.5" '
                     f'fill="{color}" fill-opacity="0.85" stroke="#fff"><title>{_e(tip)}</title></circle></a>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em}.sub{color:#666;margin-top:0}
.summary{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.4em .8em;min-width:6em}
.card b{display:block;font-size:1.3em}
.plots{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.plot text{font-size:11px;fill:#333}.plot .cnt{font-weight:bold}.plot .axis{font-size:12px}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ddd;padding:3px 5px;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.pic img{display:block;max-width:160px;max-height:160px}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-weight:bold}
.badge.none{background:#e0e0e0;color:#555}.badge.est{border:2px dashed #fff;outline:1px solid #999}
.t-good{background:#2e7d32}.t-decent{background:#9e9d24}.t-bad{background:#ef6c00}.t-poor{background:#c62828}
.st-failed{color:#c62828;font-weight:bold}.st-unpaired{color:#757575;font-weight:bold}
.err{color:#b71c1c;max-width:28em;white-space:pre-wrap;word-break:break-word}
.files a{margin-right:.4em}.src{color:#666;font-size:.85em;word-break:break-all}
tr:target{outline:3px solid #1565c0}.help li{margin:.25em 0}
"""

_SCRIPT = """
(function(){
  var table = document.getElementById('pairs');
  if (!table) return;
  var heads = table.tHead.rows[0].cells;
  function key(row, i){
    var c = row.cells[i]; var v = c.getAttribute('data-v');
    return v === null ? c.textContent.trim() : v;
  }
  Array.prototype.forEach.call(heads, function(th, i){
    th.addEventListener('click', function(){
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function(o){ o.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = key(a, i), y = key(b, i);
        if (x === y) return 0;
        if (x === '') return 1;
        if (y === '') return -1;
        var nx = Number(x), ny = Number(y);
        var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? r : -r;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
})();
"""


def _summary(entries: list[PairEntry]) -> dict:
    done = [e for e in entries if e.status == "done"]
    counts = {t: sum(1 for e in entries if e.tier == t) for t in TIERS}
    counts["ungraded"] = sum(1 for e in done if not e.tier)
    counts["failed"] = sum(1 for e in entries if e.status == "failed")
    counts["unpaired"] = sum(1 for e in entries if e.status == "unpaired")
    totals = [v for e in done if (v := e.num("total_s")) is not None]
    regs = [v for e in done if (v := e.num("registration_s")) is not None]
    return {
        "pairs": len(entries),
        "done": len(done),
        "counts": counts,
        "by_tre": sum(1 for e in entries if e.tier and e.grade_source == "tre"),
        "by_grader": sum(1 for e in entries if e.tier and e.grade_source == "grader"),
        "folded": sum(1 for e in entries if (e.num("folded_fraction") or 0) > 0),
        "median_total_s": _median(totals),
        "median_registration_s": _median(regs),
        "sum_total_s": sum(totals) if totals else None,
    }


def _pic_cell(batch_dir: Path, entry: PairEntry, key: str, title: str) -> str:
    full, thumb = entry.views.get(key, (None, None))
    if thumb is not None and thumb.is_file():
        target = full if full is not None and full.is_file() else thumb
        return (f'<td class="pic"><a href="{_href(batch_dir, target)}"><img src="{_href(batch_dir, thumb)}" '
                f'alt="{_e(title)} of {_e(entry.name)}" loading="lazy"></a></td>')
    if full is not None and full.is_file():
        return f'<td class="pic"><a href="{_href(batch_dir, full)}">{_e(title)}</a></td>'
    return '<td class="pic"></td>'


def _row_html(batch_dir: Path, e: PairEntry) -> str:
    cells = [f'<td class="num" data-v="{e.index}">{e.index}</td>']
    src = []
    for key in ("lom", "cbs"):
        v = str(e.row.get(key) or "")
        if v:
            src.append(f'<span title="{_e(v)}">{_e(key.upper())}: {_e(Path(v).name or v)}</span>')
    files = []
    for label, path in e.files.items():
        files.append(f'<a href="{_href(batch_dir, path)}">{_e(label)}</a>')
    pair_html = f'<b>{_e(e.name)}</b>'
    if src:
        pair_html += '<div class="src">' + "<br>".join(src) + "</div>"
    if files:
        pair_html += '<div class="files">' + " ".join(files) + "</div>"
    cells.append(f'<td data-v="{_e(e.name.lower())}">{pair_html}</td>')
    status = e.status or "?"
    cells.append(f'<td data-v="{_e(status)}" class="st-{_e(status)}">{_e(status)}</td>')
    rank = TIER_RANK.get(e.tier)
    cells.append(f'<td data-v="{"" if rank is None else rank}">{_tier_badge(e.tier, e.grade_source)}</td>')
    for key, title, *_ in _VIEWS:
        cells.append(_pic_cell(batch_dir, e, key, title))
    for key, _title, decimals, scale, _tip in _METRIC_COLUMNS:
        v = e.num(key)
        cells.append(f'<td class="num" data-v="{"" if v is None else repr(v)}">{_fmt(v, decimals, scale)}</td>')
    err = str(e.row.get("error") or "")
    texts = ([err] if err else []) + e.notes
    text = "\n".join(texts)
    short = text if len(text) <= 400 else text[:400] + " …"
    cells.append(f'<td class="err" title="{_e(text)}">{_e(short)}</td>')
    cls = f' class="st-row-{_e(status)}"'
    return f'<tr id="pair-{e.index}"{cls}>' + "".join(cells) + "</tr>"


def _help_html() -> str:
    return """<section class="help"><h2>How to read this</h2><ul>
<li><b>Tiers</b> (DIR/results.csv column <code>tier</code>), from the target registration error (TRE, pixels on the CBS grid) where ground truth exists:
<span class="badge t-good">good</span> mean ≤ 1.5 px and 95th percentile ≤ 3 px;
<span class="badge t-decent">decent</span> mean ≤ 3 px;
<span class="badge t-bad">bad</span> mean ≤ 8 px;
<span class="badge t-poor">poor</span> otherwise, or whenever the map folds.</li>
<li>Badges marked <span class="badge t-decent est">≈ decent</span> come from the grader: an estimate from metrics that need no ground truth (how well the registered styled LOM correlates with the CBS, direct/inverse consistency, folding), calibrated against TRE on synthetic pairs (docs/quality.md gives its error rate). It can be wrong; check the pictures.</li>
<li><b>Overlay</b>: registered LOM in magenta, CBS in green; aligned structures look grey/white, misalignment shows as magenta/green fringes.
<b>Checkerboard</b>: tiles alternate registered LOM and CBS; boundaries and grains should run straight across tile borders.</li>
<li><b>Deformation grid</b>: lines of constant source x and y every 32 source pixels (fewer on small images, coarser in the thumbnail), drawn on the CBS grid over the dimmed CBS.
Line colour is the local area change (Jacobian determinant): white ≈ 1, blue = LOM compressed, orange = LOM stretched, <b style="color:#c62828">red = folding</b> (the map is not invertible there: such a pair is <i>poor</i>). The Jacobian map (link <i>jacobian</i>) uses the same colours.</li>
<li><b>NMI</b> is the normalised mutual information of LOM and CBS (1 = unrelated, 2 = identical); its gain from before to after registration should be positive.
<b>Consistency</b> is how far inverse(direct(x)) lands from x (px; absent in Mono mode). <b>Folded %</b> and <b>Jac. min</b> ≤ 0 flag folding; <b>roughness</b> is the spread of the Jacobian.</li>
<li>bUnwarpJ never reports a failure by itself: a run can end with a wrong map. Trust the tier only together with the pictures.</li>
<li>Click a column header to sort (again to reverse); empty values go last. Click a thumbnail for the full-size picture.</li>
</ul></section>"""


def build_entries(batch_dir: PathLikeStr, *, force: bool = False, thumb_side: int = THUMB_SIDE) -> list[PairEntry]:
    """Read the results, the pair folders, and make the missing pictures."""
    d = Path(batch_dir)
    entries = []
    for i, row in enumerate(read_results(d), start=1):
        e = PairEntry(i, row, _pair_folder(d, str(row.get("pair") or "")))
        if e.folder is not None:
            e.metrics = _load_json(e.folder / "metrics.json")
            err_json = _load_json(e.folder / "error.json")
            if err_json and not str(row.get("error") or ""):
                stage = err_json.get("stage")
                e.notes.append(f"{stage}: {err_json.get('error')}" if stage else str(err_json.get("error")))
            if e.metrics:  # fill columns the CSV left empty
                filled = _row_from_metrics(e.name, e.metrics, None)
                for k, v in filled.items():
                    if k not in ("status", "error") and str(e.row.get(k) or "") == "" and v != "":
                        e.row[k] = v
            e.views, notes = ensure_figures(e.folder, thumb_side=thumb_side, force=force)
            e.notes.extend(notes)
            for label, name in (("metrics", "metrics.json"), ("error", "error.json"), ("direct", "direct_transf.txt"),
                                ("inverse", "inverse_transf.txt"), ("registered.tif", "registered.tif"),
                                ("jacobian", "jacobian.png")):
                if (e.folder / name).is_file():
                    e.files[label] = e.folder / name
        entries.append(e)
    return entries


def render_html(batch_dir: PathLikeStr, entries: list[PairEntry]) -> str:
    """The report page for already built entries."""
    d = Path(batch_dir)
    s = _summary(entries)
    c = s["counts"]
    backends = sorted({str(e.metrics.get("backend")) for e in entries if e.metrics and e.metrics.get("backend")})
    styles = sorted({str(e.metrics.get("style")) for e in entries if e.metrics and e.metrics.get("style")})
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")

    def card(label: str, value, title: str = "") -> str:
        t = f' title="{_e(title)}"' if title else ""
        return f'<div class="card"{t}><b>{_e(value)}</b>{_e(label)}</div>'

    def secs(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} s"

    cards = [card("pairs", s["pairs"]), card("done", s["done"]),
             card("failed", c["failed"]), card("unpaired", c["unpaired"])]
    cards += [f'<div class="card"><b>{c[t]}</b><span class="badge t-{t}">{t}</span></div>' for t in TIERS]
    others: dict[str, int] = {}
    for e in entries:
        if e.status not in ("done", "failed", "unpaired"):
            others[e.status or "unknown"] = others.get(e.status or "unknown", 0) + 1
    cards += [card(k, n, "status in results.csv") for k, n in sorted(others.items())]
    cards += [card("ungraded", c["ungraded"], "done but without a tier"),
              card("folded", s["folded"], "pairs whose map folds somewhere"),
              card("median time / pair", secs(s["median_total_s"])),
              card("median registration", secs(s["median_registration_s"]))]
    grading = (f"Tiers: {s['by_tre']} from TRE (ground truth), {s['by_grader']} estimated by the grader."
               if s["by_tre"] or s["by_grader"] else "No pair has a tier.")
    heads = ['<th title="row of results.csv">#</th>', "<th>pair</th>", "<th>status</th>",
             '<th title="click to sort worst first">tier</th>']
    heads += [f"<th>{_e(title)}</th>" for _, title, *_ in _VIEWS]
    heads += [f'<th title="{_e(tip)}">{_e(title)}</th>' for _, title, _, _, tip in _METRIC_COLUMNS]
    heads.append("<th>error / notes</th>")
    rows = "\n".join(_row_html(d, e) for e in entries)
    meta = [f"styleunwarp {__version__}", f"generated {now}"]
    if backends:
        meta.append("backend " + ", ".join(backends))
    if styles:
        meta.append("style " + ", ".join(styles))
    if s["sum_total_s"] is not None:
        meta.append(f"total pair time {s['sum_total_s']:.0f} s")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>styleunwarp report: {_e(d.resolve().name)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>styleunwarp report: {_e(d.resolve().name)}</h1>
<p class="sub">{_e(" · ".join(meta))}</p>
<div class="summary">{"".join(cards)}</div>
<p>{_e(grading)} Grader-based tiers are estimates without ground truth.</p>
</header>
<section class="plots">
{_bar_svg(c)}
{_scatter_svg(entries)}
</section>
<h2>Pairs</h2>
<table id="pairs" class="sortable">
<thead><tr>{"".join(heads)}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
{_help_html()}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_report(batch_dir: PathLikeStr, *, force: bool = False, thumb_side: int = THUMB_SIDE) -> Path:
    """Write (or refresh) ``DIR/report.html`` for a batch folder; return its path.

    Pictures missing or older than their sources are (re)made in the pair folders;
    ``force`` remakes them all. A pair whose files cannot be read gets a note in its row
    instead of pictures; the report is still written.

    Raises
    ------
    FileNotFoundError
        ``batch_dir`` is not a folder, or holds neither results.csv nor pair folders.
    """
    d = Path(batch_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: batch folder not found")
    entries = build_entries(d, force=force, thumb_side=thumb_side)
    out = d / "report.html"
    atomic_write_text(out, render_html(d, entries))
    return out
