"""The demo: synthetic pairs registered as raw LOM, styled LOM and perfect CBS-like source."""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path
from typing import Callable

from .errors import ImageJNotFoundError, StyleunwarpError
from .evaluation import PERFECT, RAW, Variant, evaluate_test_set, format_summary, styled, summarize, write_rows_csv
from .registration import BUnwarpJParams

log = logging.getLogger(__name__)


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


def available_variants(model: str | PathLike[str] | None) -> list[Variant]:
    """Raw LOM, styled LOM (where a style model can be loaded) and the perfect CBS-like source."""
    variants = [RAW]
    try:
        from .style import StyleTransfer

        StyleTransfer.load(model) if model is not None else StyleTransfer.load_default()
        variants.append(styled(model))
    except (ImportError, StyleunwarpError, FileNotFoundError) as exc:
        log.warning("no style model available (%s): the styled-LOM variant is skipped", exc)
    variants.append(PERFECT)
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
    write_dataset(out / "data", 0, n_test=pairs, size=size, seed=seed, progress=False)
    variants = available_variants(model)
    rows = evaluate_test_set(out / "data" / "test", variants, out / "results", backend=backend, params=params, fiji_dir=fiji_dir, echo=echo)
    write_rows_csv(rows, out / "summary.csv")
    echo(format_summary(summarize(rows)))
    echo(f"wrote {out / 'summary.csv'} and per-pair results under {out / 'results'}")
    return rows
