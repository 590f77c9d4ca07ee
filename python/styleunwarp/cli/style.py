"""``styleunwarp style``: render LOM images CBS-like with a trained model."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("lom", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model", default=None, type=click.Path(exists=True),
              help="Model folder written by `train` (a chain folder or a style model), or a .safetensors file. Default: the shipped model.")
@click.option("-o", "--out", "out", required=True, type=click.Path(),
              help="Output TIFF for one input, or a folder (created) for several.")
@click.option("--tile", type=click.IntRange(32), default=512, show_default=True, help="Tile size for large images.")
@click.option("--overlap", type=click.IntRange(0), default=64, show_default=True, help="Tile overlap (blended).")
@click.option("--prepare-target", is_flag=True,
              help="Inputs are CBS images: write them in the representation the model renders LOM images into "
                   "(the registration target; the CBS's boundary map for an 'edges' model).")
def style(lom, model, out, tile, overlap, prepare_target) -> None:
    """Style LOM image(s) with a trained model (float32 0..255 TIFF, pixel size kept).

    A folder written by `train --target auto` renders its chosen representation (the raw
    image for a training-free chain, the shared code, or a translation).

    A 'cbs' model renders LOM CBS-like; an 'edges' model (the default) renders the CBS's
    boundary map: register its output to the CBS prepared with --prepare-target.
    """
    from ..errors import InputError
    from ..io import read_image, write_tiff
    from ..style import StyleTransfer
    from ..style.chain import chain_file, load_representation

    try:
        if chain_file(model) is not None:  # a `train --target auto` folder: its representation
            rep = load_representation(model)
            st = None
        else:
            st = StyleTransfer.load(model, tile=tile, overlap=overlap) if model else StyleTransfer.load_default(tile=tile, overlap=overlap)
    except ValueError as exc:  # InputError is a ValueError
        raise click.ClickException(str(exc)) from exc
    out_p = Path(out)
    several = len(lom) > 1 or out_p.is_dir() or not out_p.suffix
    if several:
        out_p.mkdir(parents=True, exist_ok=True)
        names = [Path(p).stem for p in lom]
        if len(set(names)) != len(names):
            raise click.ClickException("inputs share file names; style them into separate folders")
    failed = 0
    for p in lom:
        dest = out_p / f"{Path(p).stem}.tif" if several else out_p
        try:
            mic = read_image(p)
            if st is None:  # each side of a representation is computed on its own image
                styled = rep.represent(mic.data, mic.data)[1 if prepare_target else 0]
            else:
                styled = st.prepare_target(mic.data) if prepare_target else st(mic.data)
            write_tiff(dest, styled, pixel_size=mic.pixel_size, metadata={"styled_from": Path(p).name})
        except InputError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"{p} -> {dest}")
    if failed:
        raise click.ClickException(f"{failed} of {len(lom)} image(s) failed")
