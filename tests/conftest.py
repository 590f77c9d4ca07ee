"""Shared fixtures: the real bUnwarpJ, and the real public data sets (each skipped with a reason where absent).

Real data are never part of the repository. Tests that need them call :func:`real_data`
(files) or use :func:`needs_data` (a skip mark); both look in ``$STYLEUNWARP_DATA/<set>/``,
by default ``../shared/data/<set>/`` beside the repository, and say in the skip reason what
the data are, where they come from and how to point the tests at them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA_ENV = "STYLEUNWARP_DATA"
"""Folder holding the data-set folders below (default: ``../shared/data`` beside the repository)."""


@dataclass(frozen=True)
class DataSet:
    """A public data set some tests read: what it is, where it comes from, under which licence."""

    folder: str
    what: str
    source: str
    licence: str


DATASETS = {
    d.folder: d
    for d in (
        DataSet("openecci-cbs", "10 real SEM channeling-contrast (CBS) micrographs of austenitic steel, 16-bit TIFF with FEI metadata",
                "openECCI demo datasets, folder fcc_fe/ (https://doi.org/10.5281/zenodo.11169052)", "CC BY 4.0"),
        DataSet("petrography-bse-se", "24 aligned shale SEM pairs, BSE vs SE, 400x400 PNG (bse/, se/)",
                "GitHub ArashRabbani/Petrography2SEM (https://github.com/ArashRabbani/Petrography2SEM)", "MIT"),
        DataSet("deepclem-em-fm", "4 aligned CLEM pairs, SEM vs chromatin fluorescence, 1280x954 PNG (em/, fm/)",
                "GitHub Rickmic/Deep_CLEM (https://github.com/Rickmic/Deep_CLEM)", "MIT"),
    )
}


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` imported as a module (benchmarks are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def map_error(a, b, shape: tuple[int, int]) -> float:
    """Mean distance (px) between two 2x3 maps (target pixel -> source position) over a ``shape`` grid."""
    import numpy as np

    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.hypot(d[0, 0] * xx + d[0, 1] * yy + d[0, 2], d[1, 0] * xx + d[1, 1] * yy + d[1, 2]).mean())


def data_root() -> Path:
    """``$STYLEUNWARP_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_skip_reason(name: str, pattern: str = "*") -> str:
    """Why a test needing data set ``name`` is skipped, with how to get and point at the data."""
    d = DATASETS[name]
    folder = data_root() / d.folder
    return (f"needs the real data set '{d.folder}' ({d.what}; from {d.source}; licence {d.licence}): "
            f"no {pattern} in {folder}; download it into a folder '{d.folder}' and set {DATA_ENV} to its parent folder")


def real_data(name: str, pattern: str = "*") -> list[Path]:
    """The files of data set ``name`` matching ``pattern`` (sorted; recursive patterns allowed); [] if absent."""
    folder = data_root() / DATASETS[name].folder
    return sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []


def needs_data(name: str, pattern: str = "*") -> pytest.MarkDecorator:
    """A skip mark for tests that need the files ``pattern`` of data set ``name``."""
    return pytest.mark.skipif(not real_data(name, pattern), reason=data_skip_reason(name, pattern))


@pytest.fixture(scope="session")
def bunwarpj():
    """Start the JVM with ImageJ and bUnwarpJ; return ``jclass`` to get Java classes.

    Skips the test with the reason when Java, ImageJ or the plugin is not installed.
    """
    from styleunwarp.errors import ImageJNotFoundError
    from styleunwarp.imagej import find_imagej, jclass, start

    try:
        find_imagej(require_bunwarpj=True)
        start(require_bunwarpj=True)
    except ImageJNotFoundError as exc:
        pytest.skip(f"real bUnwarpJ not available: {exc}")
    return jclass
