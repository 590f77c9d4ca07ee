"""Finding LOM/CBS pairs in a microscope acquisition folder, or in a CSV manifest.

By default a pair is ``STEM_LOM.<ext>`` + ``STEM_CBS.<ext>`` (or ``STEM_SEM.<ext>``),
case-insensitive, with ``<ext>`` one of tif, tiff, png, jpg, jpeg, bmp. Other naming
schemes are given as two regular expressions with a named group ``stem``. A manifest is a
CSV file with columns ``lom`` and ``cbs`` (paths relative to the manifest's folder) and
optional ``name``, ``truth`` (a ground-truth direct transform, for scoring),
``lom_pixel_size`` and ``cbs_pixel_size`` (micrometres; override the files' metadata).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from ..errors import InputError

IMAGE_EXTENSIONS = ("tif", "tiff", "png", "jpg", "jpeg", "bmp")
_EXT = "|".join(IMAGE_EXTENSIONS)
DEFAULT_LOM_PATTERN = rf"(?i)^(?P<stem>.+)_LOM\.({_EXT})$"
DEFAULT_CBS_PATTERN = rf"(?i)^(?P<stem>.+)_(CBS|SEM)\.({_EXT})$"


@dataclass(frozen=True)
class PairSpec:
    """One pair to register: its name (also its output folder), the two files, and optional truth."""

    name: str
    lom: Path
    cbs: Path
    truth: Path | None = None
    lom_pixel_size: float | None = None
    cbs_pixel_size: float | None = None


@dataclass(frozen=True)
class Unpaired:
    """A file that could not be paired, and why."""

    path: Path
    reason: str


def safe_name(name: str) -> str:
    """A pair name usable as one folder name (path separators and control characters replaced)."""
    cleaned = re.sub(r"[\\/\x00-\x1f]", "_", name).strip()
    if cleaned in ("", ".", ".."):
        cleaned = f"pair_{abs(hash(name)) % 10**8}"
    return cleaned[:200]


def find_pairs(
    folder: str | PathLike[str],
    *,
    lom_pattern: str = DEFAULT_LOM_PATTERN,
    cbs_pattern: str = DEFAULT_CBS_PATTERN,
    recursive: bool = False,
) -> tuple[list[PairSpec], list[Unpaired]]:
    """Pair the LOM and CBS images of ``folder`` by their common stem.

    Returns the pairs (sorted by name) and the files that matched one pattern but found no
    partner, or found more than one. Files matching neither pattern are ignored.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(root, "acquisition folder not found")
    try:
        lom_re, cbs_re = re.compile(lom_pattern), re.compile(cbs_pattern)
    except re.error as exc:
        raise InputError(None, f"invalid pairing pattern: {exc}") from exc
    for rx, which in ((lom_re, "LOM"), (cbs_re, "CBS")):
        if "stem" not in rx.groupindex:
            raise InputError(None, f"the {which} pattern needs a named group (?P<stem>...)")
    files = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if p.is_file() and not p.name.startswith("."))
    loms: dict[str, list[Path]] = {}
    cbss: dict[str, list[Path]] = {}
    for p in files:
        rel = p.relative_to(root).as_posix()
        key_prefix = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        m = lom_re.match(p.name)
        if m:
            loms.setdefault(key_prefix + m.group("stem"), []).append(p)
            continue
        m = cbs_re.match(p.name)
        if m:
            cbss.setdefault(key_prefix + m.group("stem"), []).append(p)
    pairs: list[PairSpec] = []
    unpaired: list[Unpaired] = []
    for stem in sorted(set(loms) | set(cbss)):
        ls, cs = loms.get(stem, []), cbss.get(stem, [])
        if len(ls) == 1 and len(cs) == 1:
            pairs.append(PairSpec(safe_name(stem.replace("/", "__")), ls[0], cs[0]))
        elif not cs:
            unpaired += [Unpaired(p, "no CBS/SEM image with the same stem") for p in ls]
        elif not ls:
            unpaired += [Unpaired(p, "no LOM image with the same stem") for p in cs]
        else:
            names = ", ".join(p.name for p in ls + cs)
            unpaired += [Unpaired(p, f"ambiguous pair: several files share the stem ({names})") for p in ls + cs]
    return pairs, unpaired


def _pixel_size(path: Path, line: int, row: dict, column: str) -> float | None:
    raw = row.get(column, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(path, f"line {line}: {column} must be a positive number of micrometres, got {raw!r}")
    return value


def read_manifest(path: str | PathLike[str]) -> list[PairSpec]:
    """Pairs listed in a CSV manifest (columns ``lom``, ``cbs``; optional ``name``, ``truth``,
    ``lom_pixel_size``, ``cbs_pixel_size`` in micrometres)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = {f.strip().lower() for f in reader.fieldnames or []}
            if not {"lom", "cbs"} <= fields:
                raise InputError(p, f"manifest needs the columns 'lom' and 'cbs', found {sorted(fields)}")
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise InputError(p, "manifest not found") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(p, f"not a readable CSV manifest ({exc})") from None
    base = p.parent
    pairs, seen = [], set()
    for i, row in enumerate(rows, start=2):
        if not row.get("lom") or not row.get("cbs"):
            raise InputError(p, f"line {i}: empty 'lom' or 'cbs'")
        lom, cbs = base / row["lom"], base / row["cbs"]
        name = safe_name(row.get("name") or Path(row["lom"]).stem)
        if name in seen:
            raise InputError(p, f"line {i}: pair name {name!r} is used twice")
        seen.add(name)
        truth = base / row["truth"] if row.get("truth") else None
        sizes = [_pixel_size(p, i, row, col) for col in ("lom_pixel_size", "cbs_pixel_size")]
        pairs.append(PairSpec(name, lom, cbs, truth, *sizes))
    return pairs
