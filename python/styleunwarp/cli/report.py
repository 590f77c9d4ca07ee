"""``styleunwarp report``: the HTML report of a batch folder."""

from __future__ import annotations

import click


@click.command()
@click.argument("batch_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--force", is_flag=True, help="Remake every picture, not only missing or outdated ones.")
@click.option("--thumb-size", "thumb_side", type=click.IntRange(32, 1024), default=160, show_default=True,
              help="Longer side of the thumbnails, in pixels.")
def report(batch_dir: str, force: bool, thumb_side: int) -> None:
    """Write or refresh BATCH_DIR/report.html (and BATCH_DIR/PAIR/pair.html) and print its path.

    Reads BATCH_DIR/results.csv (or, without it, the pair folders' metrics.json and
    error.json) and makes the missing pictures in each pair folder: previews of the
    original LOM and the real CBS (read from the files metrics.json names), the registered
    LOM, overlay and checkerboard of registered LOM vs CBS, the two images bUnwarpJ
    compared, grid.png (deformation grid, folding in red), jacobian.png (with its colour
    bar), and thumbs/. pair.html compares registered LOM and CBS with a slider and by
    flicker. The pages open offline; click a column header to sort.
    """
    from ..report import write_report

    try:
        path = write_report(batch_dir, force=force, thumb_side=thumb_side)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
