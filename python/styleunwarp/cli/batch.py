"""``styleunwarp batch`` and ``styleunwarp watch``: acquisition folders."""

from __future__ import annotations

import click

from .options import backend_options, bunwarpj_options, coarse_alignment_option, coarse_option, fiji_option, pixel_size_options, style_options


def _pairing_options(func):
    from ..pipeline.pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN

    func = click.option("--cbs-pattern", default=DEFAULT_CBS_PATTERN, show_default=True, help="Regular expression for CBS files, with a group (?P<stem>...).")(func)
    func = click.option("--lom-pattern", default=DEFAULT_LOM_PATTERN, show_default=True, help="Regular expression for LOM files, with a group (?P<stem>...).")(func)
    return func


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@click.option("--backend", type=click.Choice(["bunwarpj", "native", "elastix"]), default="bunwarpj", show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Parallel worker processes (each with its own JVM).")
@click.option("--force", is_flag=True, help="Redo pairs that are already done.")
@coarse_alignment_option
@pixel_size_options
@click.option("--progress/--no-progress", default=True, show_default=True)
@coarse_option
@backend_options
@_pairing_options
@fiji_option
@bunwarpj_options
def batch(source, out_dir, model, style, backend, workers, force, coarse, prealign, lom_pixel_size, cbs_pixel_size, progress, coarse_sigma, backend_options, lom_pattern, cbs_pattern, fiji_dir, params) -> None:
    """Register every LOM/CBS pair of SOURCE (an acquisition folder or a CSV manifest).

    Pairs are NAME_LOM + NAME_CBS (or NAME_SEM) by default. Writes OUT/<pair>/ (the files
    of `styleunwarp register`), OUT/results.csv and OUT/report.html. A rerun resumes;
    exit status 1 if any pair failed or any file was left unpaired.
    """
    from ..errors import StyleunwarpError
    from ..pipeline.batch import run_batch

    try:
        summary = run_batch(
            source, out_dir, model=model, style=style, backend=backend, params=params, fiji_dir=fiji_dir, workers=workers,
            force=force, prealign=prealign, coarse=coarse, lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size, coarse_sigma=coarse_sigma, backend_options=backend_options, lom_pattern=lom_pattern,
            cbs_pattern=cbs_pattern, progress=progress,
            echo=click.echo,
        )  # fmt: skip
    except StyleunwarpError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.line())
    if not summary.ok:
        raise SystemExit(1)


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@click.option("--backend", type=click.Choice(["bunwarpj", "native", "elastix"]), default="bunwarpj", show_default=True)
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between scans.")
@click.option("--settle", type=float, default=10.0, show_default=True, help="A file counts once unchanged this long (s).")
@click.option("--max-idle", type=float, default=None, help="Stop after this many seconds without new pairs (default: run until Ctrl-C).")
@coarse_alignment_option
@pixel_size_options
@coarse_option
@_pairing_options
@fiji_option
@bunwarpj_options
def watch(folder, out_dir, model, style, backend, interval, settle, max_idle, coarse, prealign, lom_pixel_size, cbs_pixel_size, coarse_sigma, lom_pattern, cbs_pattern, fiji_dir, params) -> None:
    """Process pairs in FOLDER as the microscope writes them, until stopped."""
    from ..pipeline.watch import watch as run_watch

    n = run_watch(
        folder, out_dir, interval=interval, settle=settle, max_idle=max_idle, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern,
        echo=click.echo, model=model, style=style, backend=backend, params=params, fiji_dir=fiji_dir, prealign=prealign, coarse_sigma=coarse_sigma, coarse=coarse,
        lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size,
    )  # fmt: skip
    click.echo(f"{n} pairs processed")
