"""``styleunwarp register``: one LOM/CBS pair."""

from __future__ import annotations

import click

from .options import (
    adapt_option,
    backend_options,
    bunwarpj_options,
    coarse_alignment_option,
    coarse_option,
    error_file_option,
    fiji_option,
    model_alternatives,
    model_chain,
    pixel_size_options,
    second_opinion_option,
    style_options,
    verdict_lines,
)


@click.command()
@click.argument("lom", type=click.Path(exists=True, dir_okay=False))
@click.argument("cbs", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@click.option("--backend", type=click.Choice(["bunwarpj", "native", "elastix"]), default="bunwarpj", show_default=True)
@fiji_option
@click.option("--truth", type=click.Path(exists=True, dir_okay=False), default=None, help="Ground-truth direct transform: adds TRE and a tier.")
@coarse_alignment_option
@pixel_size_options
@coarse_option
@backend_options
@second_opinion_option
@adapt_option
@bunwarpj_options
@error_file_option
def register(
    lom: str, cbs: str, out_dir: str, model: str | None, style: str, backend: str, fiji_dir: str | None, truth: str | None, coarse: str,
    prealign: bool, lom_pixel_size: float | None, cbs_pixel_size: float | None, coarse_sigma: float | None, backend_options: dict,
    second_opinion: bool, params, fine_affine: bool = True, adapt_steps: int | None = None,
) -> None:  # fmt: skip
    """Register the LOM image to the CBS image and re-apply the transform to the original LOM.

    Writes styled.tif, target.tif, direct_transf.txt, inverse_transf.txt, registered.tif,
    metrics.json and overlay.png into --out, and prints a verdict (good / decent / bad /
    poor; estimated by the grader unless --truth is given). A bad or poor verdict is
    printed to stderr; the exit status stays 0 (the files are written), so scripts read
    "tier" in metrics.json.
    """
    from ..errors import StyleunwarpError
    from ..pipeline.second_opinion import register_pair_verified

    if prealign:
        click.echo("warning: --prealign is deprecated: coarse alignment is on by default (--coarse); using --coarse similarity", err=True)
        coarse = "similarity"
    try:
        alternatives = model_alternatives(model, style, second_opinion)
        backend, backend_options, coarse_sigma = model_chain(model, style, backend, backend_options, coarse_sigma)
        res = register_pair_verified(
            lom, cbs, out_dir, alternatives=alternatives, model=model, style=style, backend=backend, params=params, fiji_dir=fiji_dir, truth=truth, coarse=coarse,
            lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size, coarse_sigma=coarse_sigma, backend_options=backend_options,
            fine_affine=fine_affine, adapt_steps=adapt_steps,
        )  # fmt: skip
    except StyleunwarpError as exc:
        raise click.ClickException(str(exc)) from exc
    m = res.metrics
    for text, loud in verdict_lines(m):
        click.echo(f"{out_dir}: {text}", err=loud)
    click.echo(f"{out_dir}: NMI {m['nmi_before']:.3f} -> {m['nmi_after']:.3f}, registration {m['seconds']['registration']:.1f} s, tier {m['tier']}")
