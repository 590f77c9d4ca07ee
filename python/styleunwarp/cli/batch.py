"""``styleunwarp batch`` and ``styleunwarp watch``: acquisition folders."""

from __future__ import annotations

import click

from .options import (adapt_option, backend_options, bunwarpj_options, coarse_alignment_option, coarse_option, fiji_option, model_alternatives, model_chain,
                      pixel_size_options, second_opinion_option, style_options)


def _pairing_options(func):
    from ..pipeline.pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN

    func = click.option("--cbs-pattern", default=DEFAULT_CBS_PATTERN, show_default=True, help="Regular expression for CBS files, with a group (?P<stem>...).")(func)
    func = click.option("--lom-pattern", default=DEFAULT_LOM_PATTERN, show_default=True, help="Regular expression for LOM files, with a group (?P<stem>...).")(func)
    return func


def _parse_threads(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value is None or value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise click.BadParameter(f"{value!r}: give a number of threads >= 1, or auto")
    return n


def _executor_options(func):
    """``--threads N|auto``, ``--workers N``, ``--cluster local:N``, ``--scheduler ADDRESS``: where the pairs run."""
    func = click.option("--threads", default="auto", show_default=True, metavar="N|auto", callback=_parse_threads,
                        help="Pairs registered at once in this process, on threads. auto: one per core for the native backend "
                             "(one registration uses one core), 1 for bUnwarpJ and elastix (they use the cores themselves).")(func)
    func = click.option("--scheduler", default=None, metavar="ADDRESS", help="A running dask.distributed scheduler (tcp://host:8786); its workers must share the filesystem (inputs, --out, Fiji, model).")(func)
    func = click.option("--cluster", default=None, metavar="local:N", help="Start a local dask cluster of N worker processes for the run (same as --workers N).")(func)
    func = click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Parallel worker processes on this machine, each with its own JVM (a local dask cluster).")(func)
    return func


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@style_options
@click.option("--backend", type=click.Choice(["bunwarpj", "native", "elastix"]), default="bunwarpj", show_default=True)
@_executor_options
@click.option("--force", is_flag=True, help="Redo pairs that are already done.")
@coarse_alignment_option
@pixel_size_options
@click.option("--progress/--no-progress", default=True, show_default=True)
@coarse_option
@backend_options
@_pairing_options
@fiji_option
@second_opinion_option
@adapt_option
@bunwarpj_options
def batch(source, out_dir, model, style, backend, threads, workers, cluster, scheduler, force, coarse, prealign, lom_pixel_size, cbs_pixel_size, progress, coarse_sigma, backend_options, lom_pattern, cbs_pattern, fiji_dir, second_opinion, params, fine_affine=True, adapt_steps=None) -> None:
    """Register every LOM/CBS pair of SOURCE (an acquisition folder or a CSV manifest).

    Pairs are NAME_LOM + NAME_CBS (or NAME_SEM) by default. Writes OUT/<pair>/ (the files
    of `styleunwarp register`), OUT/results.csv and OUT/report.html. A rerun resumes;
    exit status 1 if any pair failed or any file was left unpaired.
    """
    from ..errors import StyleunwarpError
    from ..pipeline.batch import run_batch

    try:
        alternatives = model_alternatives(model, style, second_opinion)
        backend, backend_options, coarse_sigma = model_chain(model, style, backend, backend_options, coarse_sigma)
        summary = run_batch(
            source, out_dir, model=model, style=style, backend=backend, params=params, fiji_dir=fiji_dir, workers=workers, cluster=cluster, scheduler=scheduler, threads=threads,
            force=force, prealign=prealign, coarse=coarse, lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size, coarse_sigma=coarse_sigma, backend_options=backend_options, lom_pattern=lom_pattern,
            cbs_pattern=cbs_pattern, progress=progress, alternatives=alternatives, fine_affine=fine_affine, adapt_steps=adapt_steps,
            echo=click.echo,
        )  # fmt: skip
    except StyleunwarpError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.line())
    for line in summary.details():
        click.echo(line, err=True)
    ignored = _ignored_files(source, lom_pattern, cbs_pattern)
    if summary.pairs == 0 or summary.unpaired or ignored:
        click.echo(_naming_rule(lom_pattern, cbs_pattern), err=True)
    if ignored:
        shown = ", ".join(p.name for p in ignored[:10]) + (f", … ({len(ignored) - 10} more)" if len(ignored) > 10 else "")
        click.echo(f"ignored (match neither pattern): {shown}", err=True)
    if summary.pairs == 0:
        raise click.ClickException(f"{source}: no LOM/CBS pair found")
    if not summary.ok:
        raise SystemExit(1)


def _naming_rule(lom_pattern: str, cbs_pattern: str) -> str:
    from ..pipeline.pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN, IMAGE_EXTENSIONS

    if (lom_pattern, cbs_pattern) == (DEFAULT_LOM_PATTERN, DEFAULT_CBS_PATTERN):
        rule = f"NAME_LOM.EXT + NAME_CBS.EXT (or NAME_SEM.EXT), EXT one of {'/'.join(IMAGE_EXTENSIONS)}, case-insensitive"
    else:
        rule = f"LOM files match {lom_pattern!r}, CBS files {cbs_pattern!r}, paired by the group 'stem'"
    return f"pairing rule: {rule}; other schemes: --lom-pattern/--cbs-pattern, or a CSV manifest (lom,cbs[,name,truth])"


def _ignored_files(source: str, lom_pattern: str, cbs_pattern: str) -> list:
    """Files of an acquisition folder that are neither in a pair nor reported unpaired."""
    from pathlib import Path

    from ..pipeline.pairing import find_pairs

    folder = Path(source)
    if not folder.is_dir():
        return []
    pairs, unpaired = find_pairs(folder, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern)
    used = {p for spec in pairs for p in (spec.lom, spec.cbs)} | {u.path for u in unpaired}
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".") and p not in used]


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
@_executor_options
@coarse_option
@backend_options
@_pairing_options
@fiji_option
@second_opinion_option
@bunwarpj_options
def watch(folder, out_dir, model, style, backend, interval, settle, max_idle, coarse, prealign, lom_pixel_size, cbs_pixel_size, threads, workers, cluster, scheduler, coarse_sigma, backend_options, lom_pattern, cbs_pattern, fiji_dir, second_opinion, params, fine_affine=True) -> None:
    """Process pairs in FOLDER as the microscope writes them, until stopped.

    Prints each pair's tier and time, and keeps OUT/results.csv and OUT/report.html up to date.
    """
    from ..errors import StyleunwarpError
    from ..pipeline.watch import watch as run_watch

    try:
        alternatives = model_alternatives(model, style, second_opinion)
        backend, backend_options, coarse_sigma = model_chain(model, style, backend, backend_options, coarse_sigma)
        n = run_watch(
            folder, out_dir, interval=interval, settle=settle, max_idle=max_idle, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern,
            echo=click.echo, workers=workers, cluster=cluster, scheduler=scheduler, threads=threads,
            model=model, style=style, backend=backend, params=params, fiji_dir=fiji_dir, prealign=prealign, coarse_sigma=coarse_sigma, coarse=coarse,
            lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size, backend_options=dict(backend_options or {}),
            alternatives=alternatives, fine_affine=fine_affine,
        )  # fmt: skip
    except StyleunwarpError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{n} pairs processed")
