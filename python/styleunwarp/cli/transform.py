"""``styleunwarp transform``: bUnwarpJ's I/O menu on the command line."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np


def _target_shape(path: str) -> tuple[int, int]:
    from ..io import read_image

    return read_image(path).data.shape[:2]


def _load(path: str):
    from ..transform import read_transform

    return read_transform(path)


_TARGET = click.option("--target", "target", required=True, type=click.Path(exists=True, dir_okay=False), help="Target image (its size defines the grid).")


@click.group()
def transform() -> None:
    """Read, convert, apply and compare bUnwarpJ transform files (elastic or raw)."""


@transform.command("to-raw")
@click.argument("elastic", type=click.Path(exists=True, dir_okay=False))
@_TARGET
@click.argument("out", type=click.Path(dir_okay=False))
def to_raw(elastic: str, target: str, out: str) -> None:
    """Convert an ELASTIC transform file to bUnwarpJ's raw format, written to OUT."""
    from ..transform import RawTransform, write_raw

    t = _load(elastic)
    write_raw(RawTransform(t.to_dense(_target_shape(target))), out)
    click.echo(f"wrote {out}")


@transform.command("to-elastic")
@click.argument("raw", type=click.Path(exists=True, dir_okay=False))
@click.option("--intervals", type=click.IntRange(1, 1024), default=16, show_default=True, help="B-spline intervals of the result.")
@click.argument("out", type=click.Path(dir_okay=False))
def to_elastic(raw: str, intervals: int, out: str) -> None:
    """Fit an elastic transform to a RAW transform file (least squares) and write OUT."""
    from ..transform import fit_elastic, warping_index, write_elastic

    t = _load(raw)
    dense = t.to_dense()
    fitted = fit_elastic(dense, intervals)
    write_elastic(fitted, out)
    err = warping_index(fitted, dense, dense.shape[1:])
    click.echo(f"wrote {out} (fit RMS error {err:.4f} px)")


@transform.command("apply")
@click.argument("transform_file", metavar="TRANSFORM", type=click.Path(exists=True, dir_okay=False))
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@_TARGET
@click.argument("out", type=click.Path(dir_okay=False))
def apply(transform_file: str, source: str, target: str, out: str) -> None:
    """Warp SOURCE onto the TARGET grid with a direct TRANSFORM (as bUnwarpJ), write OUT (TIFF, SOURCE's 8/16-bit type kept)."""
    from ..io import read_image, write_tiff
    from ..transform import warp_image

    src = read_image(source)
    tgt = read_image(target)
    warped = warp_image(src.data, _load(transform_file), tgt.data.shape[:2])
    write_tiff(out, warped, pixel_size=tgt.pixel_size, dtype=src.metadata.get("dtype"))
    click.echo(f"wrote {out}")


@transform.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@_TARGET
@click.option("--source", "source", type=click.Path(exists=True, dir_okay=False), default=None, help="Source image (defaults to the target's size).")
def compare(a: str, b: str, target: str, source: str | None) -> None:
    """bUnwarpJ's warping index between two direct transforms A and B, plus error statistics."""
    from ..transform import displacement_error, inside_source, to_dense, warping_index

    shape = _target_shape(target)
    src_shape = _target_shape(source) if source else shape
    ta, tb = _load(a), _load(b)
    wi = warping_index(ta, tb, shape, src_shape)
    inside = inside_source(to_dense(ta, shape), src_shape)
    d = displacement_error(ta, tb, shape, inside)
    click.echo(f"warping index: {wi:.6f} px")
    if d.size:
        click.echo(f"distance: mean {d.mean():.4f}  median {np.median(d):.4f}  p95 {np.percentile(d, 95):.4f}  max {d.max():.4f} px over {d.size} pixels")


@transform.command("compose")
@click.argument("first", type=click.Path(exists=True, dir_okay=False))
@click.argument("second", type=click.Path(exists=True, dir_okay=False))
@_TARGET
@click.option("--middle", required=True, type=click.Path(exists=True, dir_okay=False), help="Image whose grid FIRST maps into and SECOND is defined on.")
@click.argument("out", type=click.Path(dir_okay=False))
def compose_cmd(first: str, second: str, target: str, middle: str, out: str) -> None:
    """Compose two direct transforms (SECOND after FIRST) into a raw transform OUT."""
    from ..transform import RawTransform, compose, write_raw

    dense = compose(_load(first), _load(second), _target_shape(target), _target_shape(middle))
    write_raw(RawTransform(dense), out)
    click.echo(f"wrote {out}")


@transform.command("invert")
@click.argument("transform_file", metavar="TRANSFORM", type=click.Path(exists=True, dir_okay=False))
@_TARGET
@click.option("--source", "source", required=True, type=click.Path(exists=True, dir_okay=False), help="Source image (the grid of the inverse).")
@click.argument("out", type=click.Path(dir_okay=False))
def invert(transform_file: str, target: str, source: str, out: str) -> None:
    """Invert a direct TRANSFORM numerically; writes the inverse as a raw transform OUT."""
    from ..transform import RawTransform, invert_map, to_dense, write_raw

    dense = to_dense(_load(transform_file), _target_shape(target))
    inv = invert_map(dense, _target_shape(source))
    bad = int(np.isnan(inv[0]).sum())
    write_raw(RawTransform(np.nan_to_num(inv, nan=-1.0)), out)
    click.echo(f"wrote {out}" + (f" ({bad} source pixels without inverse, written as -1)" if bad else ""))


@transform.command("jacobian")
@click.argument("transform_file", metavar="TRANSFORM", type=click.Path(exists=True, dir_okay=False))
@_TARGET
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the determinant map as a 32-bit TIFF.")
def jacobian(transform_file: str, target: str, out: str | None) -> None:
    """Jacobian determinant statistics of a direct TRANSFORM (values <= 0 mean folding)."""
    from ..io import write_tiff
    from ..transform import jacobian_determinant

    det = jacobian_determinant(_load(transform_file), _target_shape(target))
    folded = float((det <= 0).mean())
    click.echo(f"jacobian: min {det.min():.4f}  mean {det.mean():.4f}  max {det.max():.4f}  folded {100 * folded:.3f}%")
    if out:
        write_tiff(Path(out), det.astype(np.float32))
        click.echo(f"wrote {out}")
