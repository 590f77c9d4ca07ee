"""``styleunwarp synth``: write a synthetic LOM/CBS data set with ground truth."""

from __future__ import annotations

import click


@click.command("synth")
@click.argument("out", type=click.Path(file_okay=False, writable=True))
@click.option("--n", "n", type=click.IntRange(min=0), required=True, help="Number of aligned training pairs.")
@click.option("--n-test", "n_test", type=click.IntRange(min=0), default=None, help="Number of misaligned test pairs with ground truth [default: N/4, at least 1; with --from-cbs one per image].")
@click.option("--size", type=click.IntRange(min=16), default=512, show_default=True, help="Width and height of the images (px).")
@click.option("--seed", type=int, default=0, show_default=True, help="Data-set seed; the same seed gives the same files.")
@click.option("--rgb", is_flag=True, help="Colour LOM images (8-bit RGB TIFF).")
@click.option("--from-cbs", "from_cbs", type=click.Path(exists=True, file_okay=False), default=None, help="Build the test pairs from the real CBS images in this folder (LOM-like renderings of them) instead of synthetic microstructures.")
@click.option("--as-delivered", "as_delivered", is_flag=True, help="Write N pairs as two microscopes deliver them instead (RGB colour-etch LOM with scratches and dust, its own pixel size 1.3-2x the CBS's, a larger field rotated up to 8 deg, shifted, elastic; with and without the LOM pixel size in the file; ground truth CBS grid -> LOM). --size is the CBS side.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def synth(out: str, n: int, n_test: int | None, size: int, seed: int, rgb: bool, from_cbs: str | None, as_delivered: bool, progress: bool) -> None:
    """Write synthetic correlative pairs to OUT.

    OUT/train/{lom,cbs}/NAME.tif are aligned pairs (for training the style network);
    OUT/test/{lom,cbs}/NAME.tif are misaligned pairs with their ground-truth direct
    transform OUT/test/truth/NAME_direct_transf.txt (bUnwarpJ elastic file) and the
    perfect CBS-like source OUT/test/cbs_like/NAME.tif. OUT/dataset.json and
    OUT/README.md document seeds, parameters and format. With --as-delivered: see that option.
    """
    from ..errors import StyleunwarpError
    from ..synth import write_dataset

    if as_delivered:
        from ..synth.asdelivered import write_asdelivered

        try:
            desc = write_asdelivered(out, n, from_cbs=from_cbs, seed=seed, target_size=size)
        except (StyleunwarpError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"wrote {len(desc['pairs'])} as-delivered pairs to {out}/with_pixel_size and {out}/without_pixel_size, truth in {out}/truth")
        return

    try:
        desc = write_dataset(out, n, n_test=n_test, size=size, seed=seed, progress=progress, rgb=rgb, from_cbs=from_cbs)
    except (StyleunwarpError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(desc['train'])} training and {len(desc['test'])} test pairs to {out} (see {out}/dataset.json)")
