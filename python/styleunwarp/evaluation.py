"""Scoring registration variants on test pairs with ground truth (synthetic data sets).

A test set is the ``test/`` folder that :func:`styleunwarp.synth.write_dataset` writes:
``lom/``, ``cbs/``, ``cbs_like/`` and ``truth/NAME_direct_transf.txt``. Each *variant*
says which image bUnwarpJ registers in place of the LOM: the raw LOM (the study's
baseline), the LOM styled by a model (the tool), or the perfect CBS-like rendering (the
upper bound). The registered image is always the original LOM.
"""

from __future__ import annotations

import csv
import io as _io
import statistics
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Callable, Iterable

from .errors import StyleunwarpError
from .io import atomic_write_text
from .pipeline import register_pair
from .quality import TIERS
from .registration import BUnwarpJParams

COLUMNS = ("pair", "variant", "tier", "tre_mean_px", "tre_p95_px", "nmi_after", "registration_s", "total_s", "error")


@dataclass(frozen=True)
class Variant:
    """One way of registering a test set.

    Attributes
    ----------
    name
        Label in tables (``"raw LOM"``, ``"styled LOM"``, ``"perfect CBS-like"``).
    source_dir
        Sub-folder of the test set holding the image bUnwarpJ sees (``lom`` or ``cbs_like``).
    style
        ``"none"`` or ``"model"`` (see :func:`styleunwarp.pipeline.pair.style_images`).
    model
        Style model path (``None`` = the shipped default) when ``style == "model"``.
    """

    name: str
    source_dir: str = "lom"
    style: str = "none"
    model: str | None = None

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "_").replace("-", "_")


RAW = Variant("raw LOM")
PERFECT = Variant("perfect CBS-like", source_dir="cbs_like")


def styled(model: str | PathLike[str] | None = None) -> Variant:
    """The styled-LOM variant with a model (``None`` = the shipped default)."""
    return Variant("styled LOM", style="model", model=None if model is None else str(model))


def test_pairs(test_dir: str | PathLike[str]) -> list[str]:
    """Names of the pairs in a test set that have a LOM, a CBS and a ground truth."""
    root = Path(test_dir)
    names = sorted(p.stem for p in (root / "lom").glob("*.tif"))
    return [n for n in names if (root / "cbs" / f"{n}.tif").is_file() and (root / "truth" / f"{n}_direct_transf.txt").is_file()]


def evaluate_test_set(
    test_dir: str | PathLike[str],
    variants: Iterable[Variant],
    out_dir: str | PathLike[str],
    *,
    backend: str = "bunwarpj",
    params: BUnwarpJParams | None = None,
    fiji_dir: str | PathLike[str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[dict]:
    """Register every pair of ``test_dir`` with every variant; one row per (pair, variant).

    Per-pair results go to ``out_dir/<variant>/<pair>/``; a failing pair gives a row with
    tier ``"failed"`` and the error, and the evaluation goes on.
    """
    root, out = Path(test_dir), Path(out_dir)
    rows: list[dict] = []
    variants = list(variants)
    for name in test_pairs(root):
        for v in variants:
            source = root / v.source_dir / f"{name}.tif"
            row: dict = {"pair": name, "variant": v.name}
            try:
                res = register_pair(
                    source,
                    root / "cbs" / f"{name}.tif",
                    out / v.slug / name,
                    model=v.model,
                    style=v.style,
                    backend=backend,
                    params=params,
                    fiji_dir=fiji_dir,
                    truth=root / "truth" / f"{name}_direct_transf.txt",
                )
                m = res.metrics
                row.update(
                    tier=m["tier"],
                    tre_mean_px=round(m["tre"]["mean"], 3),
                    tre_p95_px=round(m["tre"]["p95"], 3),
                    nmi_after=round(m["nmi_after"], 4),
                    registration_s=round(m["seconds"]["registration"], 2),
                    total_s=round(m["seconds"]["total"], 2),
                )
            except (StyleunwarpError, OSError) as exc:
                row.update(tier="failed", error=str(exc))
            rows.append(row)
            if echo:
                if row["tier"] == "failed":
                    echo(f"  {name:<16} {v.name:<18} FAILED: {row['error']}")
                else:
                    echo(f"  {name:<16} {v.name:<18} TRE {row['tre_mean_px']:8.2f} px (p95 {row['tre_p95_px']:8.2f})  {row['tier']:<7} {row['total_s']:6.1f} s")
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per variant: tier counts, mean/median TRE and median time."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == variant]
        ok = [r for r in sel if r["tier"] != "failed"]
        tres = [r["tre_mean_px"] for r in ok]
        summary = {"variant": variant, "pairs": len(sel)}
        summary.update({t: sum(r["tier"] == t for r in sel) for t in (*TIERS, "failed")})
        summary["tre_mean_px"] = round(statistics.fmean(tres), 3) if tres else None
        summary["tre_median_px"] = round(statistics.median(tres), 3) if tres else None
        summary["registration_s_median"] = round(statistics.median(r["registration_s"] for r in ok), 2) if ok else None
        out.append(summary)
    return out


def format_summary(summary: list[dict]) -> str:
    """A plain-text table of :func:`summarize` output."""
    head = f"{'variant':<18} {'pairs':>5} {'poor':>5} {'bad':>5} {'decent':>6} {'good':>5} {'failed':>6} {'mean TRE':>9} {'median TRE':>10} {'reg. s':>7}"
    lines = [head]
    for s in summary:
        mean = "-" if s["tre_mean_px"] is None else f"{s['tre_mean_px']:.2f}"
        med = "-" if s["tre_median_px"] is None else f"{s['tre_median_px']:.2f}"
        sec = "-" if s["registration_s_median"] is None else f"{s['registration_s_median']:.1f}"
        lines.append(f"{s['variant']:<18} {s['pairs']:>5} {s['poor']:>5} {s['bad']:>5} {s['decent']:>6} {s['good']:>5} {s['failed']:>6} {mean:>9} {med:>10} {sec:>7}")
    return "\n".join(lines)


def write_rows_csv(rows: list[dict], path: str | PathLike[str]) -> Path:
    """Write evaluation rows as CSV (atomically)."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())
