"""``styleunwarp prepare``: the Python half of the Fiji macro and script."""

from __future__ import annotations

import click

from .options import error_file_option, pixel_size_options, style_options


@click.command()
@click.argument("lom", type=click.Path(exists=True, dir_okay=False))
@click.argument("cbs", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@pixel_size_options
@error_file_option
def prepare(lom: str, cbs: str, out_dir: str, model: str | None, style: str, lom_pixel_size: float | None, cbs_pixel_size: float | None) -> None:
    """Style the LOM and normalise both images for bUnwarpJ.

    Writes OUT/styled.tif (the source bUnwarpJ registers) and OUT/target.tif (the CBS with
    its SEM data bar cropped), both 32-bit, about 0..255. The Fiji macro and script run
    bUnwarpJ on these two files and re-apply the transform to the original LOM.
    """
    from ..pipeline.pair import prepare_pair

    prep = prepare_pair(lom, cbs, out_dir, model=model, style=style, lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size)
    for w in prep.warnings:
        click.echo(f"{out_dir}: warning: {w}", err=True)
    click.echo(f"{out_dir}: styled.tif {prep.styled.shape[1]}x{prep.styled.shape[0]}, target.tif {prep.target.shape[1]}x{prep.target.shape[0]} ({prep.style_info['style']})")
