"""The HTML report of a batch folder: summary, plots, a sortable table, and the pictures of every pair.

Input (see the batch engine): ``DIR/results.csv`` (one row per pair) and ``DIR/<pair>/``
folders with ``registered.tif``, ``target.tif``, ``styled.tif``, ``direct_transf.txt``,
``overlay.png``, ``metrics.json`` (failed pairs: ``error.json`` and maybe some of these).
Without a ``results.csv`` the rows are rebuilt from the pair folders' ``metrics.json`` /
``error.json``.

Output: ``DIR/report.html`` and per pair ``DIR/<pair>/pair.html`` (slider and flicker
comparison of registered LOM and CBS, :mod:`.pairpage`), both written atomically, and the
pictures they show (:mod:`.pictures`). The layout fits a 1280 px wide window: a text table
of all pairs (sortable), then one block per pair with its pictures in a row and the
settings used. The pages work offline: no external URL, no script library, relative and
URL-quoted links, every name HTML-escaped.
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
from ..io import atomic_write_text
from .pairpage import PAGE_NAME, render_pair_page
from .pictures import THUMB_SIDE, VIEWS, ensure_figures

log = logging.getLogger(__name__)

PathLikeStr = str | PathLike[str]

RESULT_COLUMNS = (
    "pair", "status", "lom", "cbs", "tier", "grade_source",
    "tre_mean_px", "tre_p95_px", "nmi_before", "nmi_after", "consistency_px", "folded_fraction",
    "jacobian_min", "roughness", "displacement_mean_px", "registration_s", "total_s",
    "structure_z", "structure_aligned", "structure_residual_px", "second_opinion", "error",
)
"""The columns of ``results.csv`` (written by :mod:`styleunwarp.pipeline.batch`, read here)."""
TIERS = ("good", "decent", "bad", "poor")
TIER_RANK = {"poor": 0, "bad": 1, "decent": 2, "good": 3}
TIER_COLORS = {"good": "#2e7d32", "decent": "#9e9d24", "bad": "#ef6c00", "poor": "#c62828"}
OTHER_COLOR = "#757575"

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
    ("structure_z", "structure z", 1, 1.0, "structure evidence: MIND agreement of the moved LOM with the CBS, in chance spreads above chance (>= 5, with no residual misalignment, over 3 px or regional, where one can be estimated: aligned)"),
    ("structure_residual_px", "residual", 1, 1.0, "residual misalignment the structure evidence estimates, px (where the modalities share enough detail; over 3: not aligned)"),
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
    page: Path | None = None  # the pair's own page (slider / flicker comparison)

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


def row_from_metrics(name: str, metrics: dict | None, error: dict | None) -> dict:
    """A ``results.csv`` row from a pair's metrics (``None`` values as ``""``): what ``batch``
    writes, and what the report rebuilds when ``results.csv`` is absent."""
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
        "structure_z": (m.get("structure") or {}).get("z"),
        "structure_aligned": (m.get("structure") or {}).get("aligned"),
        "structure_residual_px": (m.get("structure") or {}).get("residual_px"),
        "second_opinion": (m.get("second_opinion") or {}).get("kept"),
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
            rows.append(row_from_metrics(sub.name, metrics, error))
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
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1em;color:#222;max-width:1260px}
h1{font-size:1.4em;margin-bottom:.2em}.sub{color:#666;margin-top:0}
.summary{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.4em .8em;min-width:6em}
.card b{display:block;font-size:1.3em}
.plots{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.plot text{font-size:11px;fill:#333}.plot .cnt{font-weight:bold}.plot .axis{font-size:12px}
table#pairs{border-collapse:collapse;font-size:.82em;width:100%}
#pairs th,#pairs td{border:1px solid #ddd;padding:2px 4px;vertical-align:top}
#pairs th{background:#f3f3f3;position:sticky;top:0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-weight:bold;white-space:nowrap}
.badge.none{background:#e0e0e0;color:#555}.badge.est{border:2px dashed #fff;outline:1px solid #999}
.t-good{background:#2e7d32}.t-decent{background:#9e9d24}.t-bad{background:#ef6c00}.t-poor{background:#c62828}
.st-failed{color:#c62828;font-weight:bold}.st-unpaired{color:#757575;font-weight:bold}
.err{color:#b71c1c;max-width:22em;white-space:pre-wrap;word-break:break-word}
.src{color:#666;font-size:.85em;word-break:break-all}td.pair-name{min-width:12em}
.pair{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.5em .7em}
.pair:target{outline:3px solid #1565c0}
.pair h3{margin:.1em 0 .3em;font-size:1.05em}.pair h3 a{font-weight:normal;font-size:.9em;margin-left:.6em}
.pics{display:grid;grid-template-columns:repeat(9,minmax(0,1fr));gap:6px}
.pics figure{margin:0;min-width:0}.pics img{display:block;width:100%;height:auto;border:1px solid #ddd}
.pics figcaption{font-size:11px;color:#333;line-height:1.2;margin-top:2px}
.pics figcaption.cmp{color:#6a1b9a}.pics .none{font-size:11px;color:#999;border:1px dashed #ddd;padding:1em .2em;text-align:center}
.kv{font-size:.8em;color:#333;margin:.4em 0 0;display:grid;grid-template-columns:max-content 1fr;gap:1px 10px}
.kv dt{color:#666}.kv dd{margin:0;word-break:break-word}
@media (max-width:1000px){.pics{grid-template-columns:repeat(5,minmax(0,1fr))}}
.help li{margin:.25em 0}.colorbar{vertical-align:middle}.pics .colorbar{display:block;width:100%;height:auto}
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


# ------------------------------------------------------------------------- pair settings
def _compact(value, limit: int = 300) -> str:
    """A short JSON-like text of a metrics value (floats to 4 significant digits)."""

    def rounded(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, list) and len(v) > 12:
            return f"[{len(v)} values]"
        if isinstance(v, list):
            return [rounded(x) for x in v]
        return v

    text = json.dumps(rounded(value), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def _params_text(params: dict) -> str:
    from ..registration.params import SCALE_LABELS

    def scale(v):
        return SCALE_LABELS.get(v, v) if isinstance(v, int) else v

    p = dict(params)
    parts = [f"mode {p.pop('mode', '?')}",
             f"deformation {scale(p.pop('min_scale_deformation', '?'))} → {scale(p.pop('max_scale_deformation', '?'))}"]
    names = {"img_subsamp_fact": "subsampling", "divergence_weight": "divergence", "curl_weight": "curl",
             "landmark_weight": "landmark", "image_weight": "image", "consistency_weight": "consistency",
             "stop_threshold": "stop threshold"}
    parts += [f"{names.get(k, k)} {v:g}" if isinstance(v, (int, float)) else f"{names.get(k, k)} {v}" for k, v in p.items()]
    return ", ".join(parts)


def pair_details(metrics: dict | None) -> list[tuple[str, str]]:
    """``(label, text)`` rows of what was done to a pair: backend, parameters, model, coarse alignment,
    the elastic step's keep-or-undo (and second pass), grid, times."""
    m = metrics or {}
    rows: list[tuple[str, str]] = []
    if m.get("backend"):
        opts = m.get("backend_options") or {}
        rows.append(("backend", str(m["backend"]) + (f" (options {_compact(opts)})" if opts else "")))
    if isinstance(m.get("params"), dict):
        rows.append(("parameters", _params_text(m["params"])))
    if m.get("style"):
        style = "none (raw LOM registered)" if m["style"] == "none" else f"model {m.get('model') or 'default'}"
        if m.get("style_target"):
            style += f"; compared as: {m['style_target']}"
        rows.append(("style", style))
    coarse = [(k, m[k]) for k in ("coarse", "prealignment") if m.get(k)]
    if m:
        rows.append(("coarse alignment", "; ".join(f"{k}: {_compact(v)}" for k, v in coarse) if coarse else "none"))
    fine = m.get("fine_affine") or {}
    if fine.get("reason"):
        rows.append(("fine affine step", f"{fine.get('kept', '')} kept: {fine['reason']}"))
    elastic = m.get("elastic") or {}
    if elastic.get("reason"):
        label = "elastic step (second pass)" if elastic.get("restart") else "elastic step"
        rows.append((label, f"{elastic.get('kept', '')} kept: {elastic['reason']}"))
    info = m.get("registration_info") or {}
    if info.get("coarse_sigma"):
        rows.append(("coarse-to-fine", f"blurred pass sigma {info['coarse_sigma']:g} px, then sharp"))
    grid = m.get("pixel_grid") or {}
    if grid:
        rows.append(("pixel grid", f"LOM scaled by {grid.get('factor', 1):.4g} ({grid.get('reason', '')})"))
    sizes = [f"{k.split('_')[0].upper()} {m[k]:.4g} µm" for k in ("lom_pixel_size_um", "cbs_pixel_size_um") if m.get(k)]
    if sizes:
        rows.append(("pixel sizes", ", ".join(sizes)))
    if m.get("cbs_data_bar_rows"):
        rows.append(("CBS data bar", f"{m['cbs_data_bar_rows']} rows cropped"))
    secs = m.get("seconds") or {}
    if secs:
        rows.append(("time", ", ".join(f"{k} {v:.1f} s" for k, v in secs.items() if isinstance(v, (int, float)))))
    for key in ("lom", "cbs"):
        if m.get(key):
            rows.append((f"{key.upper()} file", str(m[key])))
    return rows


# ----------------------------------------------------------------------------------- HTML
def _pair_summary_html(e: PairEntry) -> str:
    bits = [_tier_badge(e.tier, e.grade_source), _e(e.status or "?")]
    for key, title, decimals, scale, _tip in _METRIC_COLUMNS[:6]:
        v = e.num(key)
        if v is not None:
            bits.append(f"{_e(title)} {_fmt(v, decimals, scale)}")
    return " · ".join(bits)


def _row_html(batch_dir: Path, e: PairEntry) -> str:
    cells = [f'<td class="num" data-v="{e.index}">{e.index}</td>']
    src = []
    for key in ("lom", "cbs"):
        v = str(e.row.get(key) or "")
        if v:
            src.append(f'<span title="{_e(v)}">{_e(key.upper())}: {_e(Path(v).name or v)}</span>')
    link = f'<a href="#pair-{e.index}"><b>{_e(e.name)}</b></a>' if e.folder is not None else f"<b>{_e(e.name)}</b>"
    pair_html = link + ('<div class="src">' + "<br>".join(src) + "</div>" if src else "")
    cells.append(f'<td class="pair-name" data-v="{_e(e.name.lower())}">{pair_html}</td>')
    status = e.status or "?"
    cells.append(f'<td data-v="{_e(status)}" class="st-{_e(status)}">{_e(status)}</td>')
    rank = TIER_RANK.get(e.tier)
    cells.append(f'<td data-v="{"" if rank is None else rank}">{_tier_badge(e.tier, e.grade_source)}</td>')
    for key, _title, decimals, scale, _tip in _METRIC_COLUMNS:
        v = e.num(key)
        cells.append(f'<td class="num" data-v="{"" if v is None else repr(v)}">{_fmt(v, decimals, scale)}</td>')
    err = str(e.row.get("error") or "")
    texts = ([err] if err else []) + e.notes
    text = "\n".join(texts)
    short = text if len(text) <= 300 else text[:300] + " …"
    cells.append(f'<td class="err" title="{_e(text)}">{_e(short)}</td>')
    return f'<tr class="st-row-{_e(status)}">' + "".join(cells) + "</tr>"


def _pair_block(batch_dir: Path, e: PairEntry) -> str:
    figs = []
    for view in VIEWS:
        full, thumb = e.views.get(view.key, (None, None))
        cls = ' class="cmp"' if view.key in ("styled", "target") else ""
        bar = colorbar_svg(150, 30, compact=True) if view.key == "jacobian" else ""
        caption = f'<figcaption{cls} title="{_e(view.help)}">{_e(view.title)}{bar}</figcaption>'
        if thumb is not None and thumb.is_file():
            href = full if full is not None and full.is_file() else thumb
            figs.append(f'<figure><a href="{_href(batch_dir, href)}"><img src="{_href(batch_dir, thumb)}" '
                        f'alt="{_e(view.title)} of {_e(e.name)}" title="{_e(view.help)}" loading="lazy"></a>{caption}</figure>')
        else:
            figs.append(f'<figure><div class="none">no picture</div>{caption}</figure>')
    links = []
    if e.page is not None:
        links.append(f'<a href="{_href(batch_dir, e.page)}">compare (slider, flicker)</a>')
    for label, path in e.files.items():
        links.append(f'<a href="{_href(batch_dir, path)}">{_e(label)}</a>')
    details = pair_details(e.metrics)
    notes = ([str(e.row.get("error"))] if e.row.get("error") else []) + e.notes
    details += [("note", n) for n in notes]
    kv = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in details)
    any_picture = any(thumb is not None for _, thumb in e.views.values())
    return (f'<section class="pair" id="pair-{e.index}"><h3>{e.index}. {_e(e.name)} {" ".join(links)}</h3>'
            f'<div class="sub">{_pair_summary_html(e)}</div>'
            + (f'<div class="pics">{"".join(figs)}</div>' if any_picture else "")
            + f'<dl class="kv">{kv}</dl></section>')


def colorbar_svg(width: int = 260, height: int = 34, *, compact: bool = False) -> str:
    """The Jacobian colour scale as inline SVG (same colours as the pictures); ``compact``: ticks 0.5, 1, 2 only."""
    from .figures import FOLD_RGB, JACOBIAN_TICKS, jacobian_colors

    x0, x1, bar_h = (34 if compact else 46), width - 8, 12 if compact else 14
    ticks = (0.5, 1.0, 2.0) if compact else JACOBIAN_TICKS
    fold_w, fold_label = (26, "fold") if compact else (36, "≤0 fold")
    n = 40
    cells = []
    for i in range(n):
        t = -1 + 2 * (i + 0.5) / n
        r, g, b = (int(round(c)) for c in jacobian_colors(np.array([2.0**t]))[0])
        cells.append(f'<rect x="{x0 + i * (x1 - x0) / n:.1f}" y="2" width="{(x1 - x0) / n + 0.6:.1f}" height="{bar_h}" fill="rgb({r},{g},{b})"/>')
    fr, fg, fb = (int(c) for c in FOLD_RGB)
    parts = [f'<svg class="colorbar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Jacobian colour scale">',
             f'<rect x="2" y="2" width="{fold_w}" height="{bar_h}" fill="rgb({fr},{fg},{fb})"><title>det ≤ 0: folding</title></rect>'
             f'<text x="{2 + fold_w / 2}" y="{bar_h + 14}" text-anchor="middle" font-size="10">{fold_label}</text>',
             *cells, f'<rect x="{x0}" y="2" width="{x1 - x0}" height="{bar_h}" fill="none" stroke="#999"/>']
    for tick in ticks:
        x = x0 + (math.log2(tick) + 1) / 2 * (x1 - x0)
        parts.append(f'<line x1="{x:.1f}" y1="{bar_h + 2}" x2="{x:.1f}" y2="{bar_h + 5}" stroke="#000"/>'
                     f'<text x="{x:.1f}" y="{bar_h + 14}" text-anchor="middle" font-size="10">{tick:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _help_html() -> str:
    return f"""<section class="help"><h2>How to read this</h2><ul>
<li><b>Tiers</b> (DIR/results.csv column <code>tier</code>), from the target registration error (TRE, pixels on the CBS grid) where ground truth exists:
<span class="badge t-good">good</span> mean ≤ 1.5 px and 95th percentile ≤ 3 px;
<span class="badge t-decent">decent</span> mean ≤ 3 px;
<span class="badge t-bad">bad</span> mean ≤ 8 px;
<span class="badge t-poor">poor</span> otherwise, or whenever the map folds.</li>
<li>Badges marked <span class="badge t-decent est">≈ decent</span> come from the grader: an estimate from metrics that need no ground truth: where the two images share enough detail, the residual misalignment the structure evidence estimates (the residual column); otherwise how well the registered styled LOM correlates with the CBS, direct/inverse consistency and folding; calibrated against TRE (docs/quality.md gives its error rate per data set). It can be wrong; check the pictures.</li>
<li><b>Pictures per pair</b>, left to right: the <b>original LOM</b> and the real <b>CBS</b> as read from their files; the <b>registered LOM</b> (the original LOM moved onto the CBS grid);
the <b>overlay</b> of registered LOM (magenta) and CBS (green): aligned structures look grey/white, misalignment shows as magenta/green fringes;
the <b>checkerboard</b>: tiles alternate registered LOM and CBS, structures should run straight across tile borders;
<b style="color:#6a1b9a">compared</b>: the two images bUnwarpJ actually registered (the LOM and the CBS in the style model's representation, e.g. boundary maps; with <code>--style none</code> the raw images);
the <b>deformation grid</b> and the <b>Jacobian</b>. The link <i>compare</i> opens a page with a slider and a flicker view of registered LOM and CBS.</li>
<li><b>Deformation grid</b>: lines of constant source x and y every 32 source pixels (fewer on small images, coarser in the thumbnail), drawn on the CBS grid over the dimmed CBS.
Colours are the local area change (Jacobian determinant) {colorbar_svg()} — white ≈ 1, blue = LOM compressed, orange = LOM stretched, <b style="color:#c62828">red = folding</b> (the map is not invertible there: such a pair is <i>poor</i>). The Jacobian picture uses the same colours and carries this colour bar.</li>
<li><b>NMI</b> is the normalised mutual information of LOM and CBS (1 = unrelated, 2 = identical); its gain from before to after registration should be positive.
<b>Consistency</b> is how far inverse(direct(x)) lands from x (px; absent in Mono mode). <b>Folded %</b> and <b>Jac. min</b> ≤ 0 flag folding; <b>roughness</b> is the spread of the Jacobian.</li>
<li>bUnwarpJ never reports a failure by itself: a run can end with a wrong map. Trust the tier only together with the pictures.</li>
<li>Click a column header to sort (again to reverse); empty values go last. Click a pair's name for its pictures, a thumbnail for the full-size picture.</li>
</ul></section>"""


def build_entries(batch_dir: PathLikeStr, *, force: bool = False, thumb_side: int = THUMB_SIDE) -> list[PairEntry]:
    """Read the results and the pair folders, make the missing pictures and the per-pair pages."""
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
                filled = row_from_metrics(e.name, e.metrics, None)
                for k, v in filled.items():
                    if k not in ("status", "error") and str(e.row.get(k) or "") == "" and v != "":
                        e.row[k] = v
            e.views, notes = ensure_figures(e.folder, e.metrics, thumb_side=thumb_side, force=force)
            e.notes.extend(notes)
            for label, name in (("metrics", "metrics.json"), ("error", "error.json"), ("direct", "direct_transf.txt"),
                                ("inverse", "inverse_transf.txt"), ("registered.tif", "registered.tif")):
                if (e.folder / name).is_file():
                    e.files[label] = e.folder / name
            if any(full is not None for full, _ in e.views.values()):
                page = e.folder / PAGE_NAME
                back = "../" * len(e.folder.relative_to(d).parts) + f"report.html#pair-{e.index}"
                atomic_write_text(page, render_pair_page(e.folder, e.name, e.views, _pair_summary_html(e),
                                                         pair_details(e.metrics) + [("note", n) for n in e.notes], back))
                e.page = page
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
    heads += [f'<th title="{_e(tip)}">{_e(title)}</th>' for _, title, _, _, tip in _METRIC_COLUMNS]
    heads.append("<th>error / notes</th>")
    rows = "\n".join(_row_html(d, e) for e in entries)
    blocks = "\n".join(_pair_block(d, e) for e in entries if e.folder is not None)
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
<h2>Pictures and settings per pair</h2>
{blocks}
{_help_html()}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_report(batch_dir: PathLikeStr, *, force: bool = False, thumb_side: int = THUMB_SIDE) -> Path:
    """Write (or refresh) ``DIR/report.html`` and the per-pair pages for a batch folder; return its path.

    Pictures missing or older than their sources are (re)made in the pair folders;
    ``force`` remakes them all. A pair whose files cannot be read gets a note instead of
    pictures; the report is still written.

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
