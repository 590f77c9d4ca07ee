"""The demo: synthetic pairs registered as raw LOM, styled LOM and perfect CBS-like source."""

from __future__ import annotations

import csv
import io as _io
import logging
from os import PathLike
from pathlib import Path
from typing import Callable

from .errors import ImageJNotFoundError, InputError, StyleunwarpError
from .io import atomic_write_text
from .pipeline import register_pair
from .registration import BUnwarpJParams

log = logging.getLogger(__name__)

COLUMNS = ("pair", "variant", "tier", "tre_mean_px", "tre_p95_px", "nmi_after", "seconds")


def pick_backend(backend: str, fiji_dir: str | PathLike[str] | None) -> str:
    """Resolve ``"auto"``: bUnwarpJ where installed, otherwise the native engine if present."""
    if backend != "auto":
        return backend
    from .imagej import find_imagej

    try:
        find_imagej(fiji_dir, require_bunwarpj=True)
        return "bunwarpj"
    except ImageJNotFoundError as exc:
        try:
            import styleunwarp.registration.native  # noqa: F401
        except ImportError:
            raise ImageJNotFoundError(f"no registration backend: {exc}") from exc
        log.warning("bUnwarpJ not found, using the native engine (%s)", exc)
        return "native"


def _style_variants(model: str | PathLike[str] | None) -> list[tuple[str, str, str | None]]:
    """(variant name, style, model) for the LOM images; styled only where a model exists."""
    variants: list[tuple[str, str, str | None]] = [("raw LOM", "none", None)]
    try:
        from .style import StyleTransfer

        StyleTransfer.load(model) if model is not None else StyleTransfer.load_default()
        variants.append(("styled LOM", "model", None if model is None else str(model)))
    except (ImportError, StyleunwarpError, FileNotFoundError) as exc:
        log.warning("no style model available (%s): the styled-LOM variant is skipped", exc)
    return variants


def run_demo(
    out_dir: str | PathLike[str],
    *,
    pairs: int = 3,
    size: int = 512,
    seed: int = 0,
    backend: str = "auto",
    model: str | PathLike[str] | None = None,
    fiji_dir: str | PathLike[str] | None = None,
    params: BUnwarpJParams | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict]:
    """Run the demo and return its table rows (also written to ``out_dir/summary.csv``)."""
    from .synth import write_dataset

    out = Path(out_dir)
    backend = pick_backend(backend, fiji_dir)
    echo(f"styleunwarp demo: {pairs} synthetic {size}x{size} pairs, backend {backend}, output {out}")
    desc = write_dataset(out / "data", 0, n_test=pairs, size=size, seed=seed, progress=False)
    test = out / "data" / "test"
    variants = _style_variants(model)
    rows: list[dict] = []
    for entry in desc["test"]:
        name = Path(entry["lom"]).stem if "lom" in entry else entry["name"]
        cbs = test / "cbs" / f"{name}.tif"
        truth = test / "truth" / f"{name}_direct_transf.txt"
        sources = [(v, s, m, test / "lom" / f"{name}.tif") for v, s, m in variants]
        sources.append(("perfect CBS-like", "none", None, test / "cbs_like" / f"{name}.tif"))
        for variant, style, mdl, lom in sources:
            dest = out / "results" / variant.replace(" ", "_").replace("-", "_") / name
            try:
                res = register_pair(lom, cbs, dest, model=mdl, style=style, backend=backend, params=params, fiji_dir=fiji_dir, truth=truth)
            except (InputError, StyleunwarpError) as exc:
                echo(f"  {name:<12} {variant:<18} FAILED: {exc}")
                rows.append({"pair": name, "variant": variant, "tier": "failed"})
                continue
            m = res.metrics
            row = {
                "pair": name,
                "variant": variant,
                "tier": m["tier"],
                "tre_mean_px": round(m["tre"]["mean"], 3),
                "tre_p95_px": round(m["tre"]["p95"], 3),
                "nmi_after": round(m["nmi_after"], 4),
                "seconds": round(m["seconds"]["total"], 2),
            }
            rows.append(row)
            echo(f"  {name:<12} {variant:<18} TRE {row['tre_mean_px']:8.2f} px (p95 {row['tre_p95_px']:8.2f})  {row['tier']:<7} {row['seconds']:6.1f} s")
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buf.getvalue())
    echo("summary (tiers per variant):")
    for variant in dict.fromkeys(r["variant"] for r in rows):
        tiers = [r["tier"] for r in rows if r["variant"] == variant]
        counts = "  ".join(f"{t} {tiers.count(t)}" for t in ("poor", "bad", "decent", "good", "failed") if tiers.count(t))
        echo(f"  {variant:<18} {counts}")
    echo(f"wrote {out / 'summary.csv'} and per-pair results under {out / 'results'}")
    return rows
