"""``styleunwarp demo``: the whole job on built-in synthetic data, with a scored table."""

from __future__ import annotations

import click

from .options import bunwarpj_options, fiji_option


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="styleunwarp-demo", show_default=True, help="Output folder.")
@click.option("--pairs", type=click.IntRange(1, 1000), default=3, show_default=True, help="Number of synthetic test pairs.")
@click.option("--size", type=click.IntRange(64, 4096), default=512, show_default=True, help="Image width and height (px).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "bunwarpj", "native"]), default="auto", show_default=True, help="auto: bUnwarpJ where installed, else the native engine.")
@click.option("--model", type=click.Path(exists=True), default=None, help="Style model (default: the shipped one).")
@fiji_option
@bunwarpj_options
def demo(out_dir: str, pairs: int, size: int, seed: int, backend: str, model: str | None, fiji_dir: str | None, params) -> None:
    """Synthesize LOM/CBS pairs with known deformations and register them three ways.

    Raw LOM (the study's baseline), styled LOM (the tool) and a perfect CBS-like rendering
    (the upper bound) are each registered to the CBS image; every result is scored against
    the ground truth (TRE, tier). Results go to OUT/results/, the table to OUT/summary.csv.
    """
    from ..demo import run_demo

    run_demo(out_dir, pairs=pairs, size=size, seed=seed, backend=backend, model=model, fiji_dir=fiji_dir, params=params, echo=click.echo)
