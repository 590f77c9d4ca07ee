"""``styleunwarp register``: one LOM/CBS pair."""

from __future__ import annotations

import click

from .options import backend_options, bunwarpj_options, coarse_option, fiji_option, style_options


@click.command()
@click.argument("lom", type=click.Path(exists=True, dir_okay=False))
@click.argument("cbs", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@click.option("--backend", type=click.Choice(["bunwarpj", "native", "elastix"]), default="bunwarpj", show_default=True)
@fiji_option
@click.option("--truth", type=click.Path(exists=True, dir_okay=False), default=None, help="Ground-truth direct transform: adds TRE and a tier.")
@click.option("--prealign", is_flag=True, help="Estimate rotation/scale/shift first (pairs not pre-aligned).")
@coarse_option
@backend_options
@bunwarpj_options
def register(lom: str, cbs: str, out_dir: str, model: str | None, style: str, backend: str, fiji_dir: str | None, truth: str | None, prealign: bool, coarse_sigma: float | None, backend_options: dict, params) -> None:
    """Register the LOM image to the CBS image and re-apply the transform to the original LOM.

    Writes styled.tif, direct_transf.txt, inverse_transf.txt, registered.tif, metrics.json
    and overlay.png into --out.
    """
    from ..errors import StyleunwarpError
    from ..pipeline import register_pair
    from ..style.chain import resolve_backend

    try:
        explicit = click.get_current_context().get_parameter_source("backend") != click.core.ParameterSource.DEFAULT
        backend, backend_options, coarse_sigma, chain = resolve_backend(model, style, backend, backend_options, coarse_sigma, explicit)
        if chain is not None:
            click.echo(f"model chain: {chain.representation} -> {backend}" + (" (--backend given)" if explicit else ""))
        res = register_pair(lom, cbs, out_dir, model=model, style=style, backend=backend, params=params, fiji_dir=fiji_dir, truth=truth, prealign=prealign, coarse_sigma=coarse_sigma, backend_options=backend_options)
    except StyleunwarpError as exc:
        raise click.ClickException(str(exc)) from exc
    m = res.metrics
    line = f"{out_dir}: NMI {m['nmi_before']:.3f} -> {m['nmi_after']:.3f}, registration {m['seconds']['registration']:.1f} s"
    if "tre" in m:
        line += f", TRE mean {m['tre']['mean']:.2f} px p95 {m['tre']['p95']:.2f} px ({m['tier']})"
    click.echo(line)
