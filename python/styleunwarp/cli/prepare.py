"""``styleunwarp prepare``: the Python half of the Fiji macro and script."""

from __future__ import annotations

import click

from .options import pixel_size_options, style_options


@click.command()
@click.argument("lom", type=click.Path(exists=True, dir_okay=False))
@click.argument("cbs", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@pixel_size_options
@click.option("--error-file", type=click.Path(dir_okay=False), default=None,
              help="On failure also write the one-line reason to this file (the Fiji macro reads it: ImageJ's exec() returns no stderr).")
def prepare(lom: str, cbs: str, out_dir: str, model: str | None, style: str, lom_pixel_size: float | None, cbs_pixel_size: float | None, error_file: str | None) -> None:
    """Style the LOM and normalise both images for bUnwarpJ.

    Writes OUT/styled.tif (the source bUnwarpJ registers) and OUT/target.tif (the CBS with
    its SEM data bar cropped), both 32-bit, about 0..255. The Fiji macro and script run
    bUnwarpJ on these two files and re-apply the transform to the original LOM.
    """
    from pathlib import Path

    from ..errors import StyleunwarpError
    from ..io import atomic_write_text
    from ..pipeline.pair import prepare_pair
    from . import error_line

    if error_file:
        Path(error_file).unlink(missing_ok=True)
    try:
        prep = prepare_pair(lom, cbs, out_dir, model=model, style=style, lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size)
    except (StyleunwarpError, ValueError, OSError) as exc:
        if error_file:
            Path(error_file).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(error_file, error_line(exc) + "\n")
        raise click.ClickException(error_line(exc)) from exc
    for w in prep.warnings:
        click.echo(f"{out_dir}: warning: {w}", err=True)
    click.echo(f"{out_dir}: styled.tif {prep.styled.shape[1]}x{prep.styled.shape[0]}, target.tif {prep.target.shape[1]}x{prep.target.shape[0]} ({prep.style_info['style']})")
