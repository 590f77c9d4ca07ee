"""bUnwarpJ's transform files, read and written in the plugin's exact layout.

Elastic file::

    Intervals=N
    <blank>
    X Coeffs -----------------------------------
    (N+3 rows of N+3 numbers, each right-aligned in 21 characters and followed by a space)
    <blank>
    Y Coeffs -----------------------------------
    (N+3 rows)

Raw file: ``Width=W``, ``Height=H``, blank, ``X Trans ---...`` and H rows of W absolute x
coordinates, blank, ``Y Trans ---...`` likewise. Numbers are written as Java's
``Double.toString`` writes them, so files written here are byte-identical to the plugin's.
"""

from __future__ import annotations

from decimal import Decimal
from os import PathLike
from pathlib import Path

import numpy as np

from ..errors import TransformFileError
from ..io import atomic_write_text
from .model import ElasticTransform, RawTransform, Transform

_RULE = " -----------------------------------"
PathLikeStr = str | PathLike[str]


def java_double(value: float) -> str:
    """Format a float as Java's ``Double.toString`` does (``0.001``, ``1.0E-4``, ``1.0E7``)."""
    x = float(value)
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0.0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        return repr(x)  # Python's shortest repr is plain decimal notation in this range
    sign, digits, exponent = Decimal(repr(x)).as_tuple()
    mantissa = "".join(map(str, digits)).rstrip("0") or "0"
    exp10 = exponent + len(digits) - 1
    frac = mantissa[1:] or "0"
    return f"{'-' if sign else ''}{mantissa[0]}.{frac}E{exp10}"


def _format_rows(values: np.ndarray) -> str:
    lines = []
    for row in values:
        lines.append("".join(java_double(v).rjust(21) + " " for v in row))
    return "\n".join(lines) + "\n"


def format_elastic(transform: ElasticTransform) -> str:
    """Text of an elastic transform file."""
    n = transform.intervals
    return (
        f"Intervals={n}\n\n"
        f"X Coeffs{_RULE}\n{_format_rows(transform.cx)}\n"
        f"Y Coeffs{_RULE}\n{_format_rows(transform.cy)}"
    )


def format_raw(transform: RawTransform) -> str:
    """Text of a raw transform file."""
    h, w = transform.shape
    return (
        f"Width={w}\nHeight={h}\n\n"
        f"X Trans{_RULE}\n{_format_rows(transform.map[0])}\n"
        f"Y Trans{_RULE}\n{_format_rows(transform.map[1])}"
    )


def write_elastic(transform: ElasticTransform, path: PathLikeStr) -> Path:
    """Write an elastic transform file (atomically) that bUnwarpJ loads as it is."""
    return atomic_write_text(path, format_elastic(transform))


def write_raw(transform: RawTransform | np.ndarray, path: PathLikeStr) -> Path:
    """Write a raw transform file (atomically); accepts a ``RawTransform`` or a dense map."""
    raw = transform if isinstance(transform, RawTransform) else RawTransform(transform)
    return atomic_write_text(path, format_raw(raw))


def _read_lines(path: PathLikeStr) -> list[str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except FileNotFoundError:
        raise TransformFileError(p, "file not found") from None
    except IsADirectoryError:
        raise TransformFileError(p, "is a folder, not a transform file") from None
    except UnicodeDecodeError:
        raise TransformFileError(p, "not a text file (bUnwarpJ transform files are plain text)") from None
    lines = text.splitlines()
    if not lines:
        raise TransformFileError(p, "empty file")
    return lines


def _header_int(path: PathLikeStr, line: str, key: str) -> int:
    name, sep, value = line.partition("=")
    if not sep or name.strip() != key:
        raise TransformFileError(path, f"expected '{key}=<integer>', found {line[:60]!r}")
    try:
        n = int(value.strip())
    except ValueError:
        raise TransformFileError(path, f"'{key}' is not an integer: {value.strip()[:30]!r}") from None
    if n < 1:
        raise TransformFileError(path, f"'{key}' must be positive, got {n}")
    return n


def _block(path: PathLikeStr, lines: list[str], start: int, title: str, rows: int, cols: int) -> np.ndarray:
    """Parse the matrix whose title line (``X Coeffs``...) is at ``lines[start]``."""
    if start >= len(lines) or not lines[start].startswith(title):
        found = lines[start][:40] if start < len(lines) else "end of file"
        raise TransformFileError(path, f"line {start + 1}: expected '{title} ---', found {found!r}")
    body = lines[start + 1 : start + 1 + rows]
    if len(body) < rows:
        raise TransformFileError(path, f"'{title}' block has {len(body)} rows, expected {rows} (truncated file?)")
    values = np.empty((rows, cols), dtype=np.float64)
    for r, line in enumerate(body):
        tokens = line.split()
        if len(tokens) != cols:
            raise TransformFileError(path, f"line {start + 2 + r}: {len(tokens)} numbers, expected {cols}")
        try:
            values[r] = [float(t) for t in tokens]
        except ValueError:
            raise TransformFileError(path, f"line {start + 2 + r}: not a number in {line.strip()[:60]!r}") from None
    if not np.all(np.isfinite(values)):
        raise TransformFileError(path, f"'{title}' block holds NaN or infinite values")
    return values


def read_elastic(path: PathLikeStr) -> ElasticTransform:
    """Read a bUnwarpJ elastic transform file."""
    lines = _read_lines(path)
    n = _header_int(path, lines[0], "Intervals")
    cx = _block(path, lines, 2, "X Coeffs", n + 3, n + 3)
    cy = _block(path, lines, 2 + (n + 3) + 2, "Y Coeffs", n + 3, n + 3)
    return ElasticTransform(cx, cy)


def read_raw(path: PathLikeStr) -> RawTransform:
    """Read a bUnwarpJ raw transform file."""
    lines = _read_lines(path)
    if len(lines) < 2:
        raise TransformFileError(path, "truncated raw transform (no Height line)")
    w = _header_int(path, lines[0], "Width")
    h = _header_int(path, lines[1], "Height")
    x = _block(path, lines, 3, "X Trans", h, w)
    y = _block(path, lines, 3 + h + 2, "Y Trans", h, w)
    return RawTransform(np.stack([x, y]))


def read_transform(path: PathLikeStr) -> Transform:
    """Read an elastic or raw bUnwarpJ transform file, whichever it is."""
    first = _read_lines(path)[0]
    if first.startswith("Intervals="):
        return read_elastic(path)
    if first.startswith("Width="):
        return read_raw(path)
    raise TransformFileError(path, f"not a bUnwarpJ transform file (first line {first[:40]!r})")
