"""Writing a synthetic data set to disk: aligned training pairs and misaligned test pairs.

Layout (``OUT``)::

    dataset.json                      what is here: seeds, parameters, per-pair facts
    README.md                         the same in words
    train/lom/NAME.tif                LOM-like image, on the CBS grid (aligned pair)
    train/cbs/NAME.tif                CBS-like image
    test/lom/NAME.tif                 LOM-like source, deformed
    test/cbs/NAME.tif                 CBS target
    test/cbs_like/NAME.tif            CBS-like rendering on the LOM grid (perfect style transfer)
    test/truth/NAME_direct_transf.txt ground-truth direct transform (bUnwarpJ elastic file)

Grey images are 32-bit float ImageJ TIFFs (about 0..255); RGB LOM images are 8-bit RGB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from .pairs import SyntheticPair, make_pair

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_SPLITS = {"train": 0, "test": 1}


def pair_seed(seed: int, split: str, index: int) -> int:
    """The seed of pair ``index`` of ``split`` in a data set made with ``seed``.

    Independent of the data set's size, so a larger set starts with the same pairs;
    ``make_pair(seed=pair_seed(...))`` reproduces a pair.
    """
    return int(np.random.SeedSequence([int(seed), _SPLITS[split], int(index)]).generate_state(1, np.uint32)[0])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def cbs_images(folder: str | Path) -> list[Path]:
    """Image files of a folder of real CBS micrographs, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def _write_pair(root: Path, split: str, pair: SyntheticPair) -> dict:
    from ..io import write_tiff
    from ..transform import write_elastic

    entry = {"name": pair.name, "lom": f"{split}/lom/{pair.name}.tif", "cbs": f"{split}/cbs/{pair.name}.tif"}
    folders = ("lom", "cbs", "cbs_like", "truth") if split == "test" else ("lom", "cbs")
    for folder in folders:
        (root / split / folder).mkdir(parents=True, exist_ok=True)
    write_tiff(root / entry["lom"], pair.lom)
    write_tiff(root / entry["cbs"], pair.cbs)
    if split == "test":
        entry["cbs_like"] = f"test/cbs_like/{pair.name}.tif"
        write_tiff(root / entry["cbs_like"], pair.cbs_like_lom)
        if pair.truth is not None:
            entry["truth"] = f"test/truth/{pair.name}_direct_transf.txt"
            write_elastic(pair.truth, root / entry["truth"])
    entry["meta"] = _jsonable(pair.meta)
    return entry


_README = """# styleunwarp synthetic data set

Written by `styleunwarp synth` (styleunwarp {version}); `dataset.json` holds every seed and
parameter. Regenerate with:

    {command}

## Layout
- `train/lom/NAME.tif`, `train/cbs/NAME.tif`: aligned pairs ({n_train}) (the LOM-like image is
  rendered on the CBS grid, no deformation), for training the style network.
- `test/lom/NAME.tif` (source) and `test/cbs/NAME.tif` (target): misaligned pairs ({n_test}){test_kind}.
- `test/truth/NAME_direct_transf.txt`: the ground-truth **direct** transform of each test
  pair in bUnwarpJ's elastic format (B-spline coefficients; maps every target/CBS pixel to an
  absolute position in the source/LOM image). Compare a registration result with it by the
  distance between the two maps over the target grid (TRE, pixels).
- `test/cbs_like/NAME.tif`: the CBS-like rendering on the LOM (source) grid, i.e. what a
  perfect style transfer of `test/lom/NAME.tif` gives; registering it to the CBS shows
  what the registration can reach.

## Images
Grey images are 32-bit float ImageJ TIFFs, intensities about 0..255 (bUnwarpJ needs that
range); RGB LOM images are 8-bit RGB TIFFs. Sizes are {size}x{size} px.

## How they are made
A random austenitic microstructure (power-diagram grains with crystal orientations,
annealing twins along {{111}} traces, second-phase islands, pits) is evaluated at continuous
coordinates. The CBS-like image gives each grain and twin a grey level from its orientation
(channeling), with scan-line noise; the LOM-like image shows etched dark boundaries, a weak
tint from a different orientation function (not a monotone function of the CBS grey), optical
blur, uneven illumination and noise. For test pairs the LOM pixel p shows the structure at
T^-1(p), T the ground-truth transform: affine (rotation {rot} deg, shift {shift} px) plus a
smooth elastic part ({elastic} px RMS), {intervals} B-spline intervals. Intensity-based
registration of the raw LOM to the CBS fails on these pairs; the CBS-like source registers.
{from_cbs_text}"""

_FROM_CBS = """
Test pairs from real CBS images: the target is a crop of the real image (data bar removed,
scaled to 0..255); the LOM is rendered from the whole real image (its step edges as etched
dark lines, a non-monotone tint of the local grey, its pits dark; blur, illumination, noise)
and moved by T; `cbs_like` is the real CBS moved by T plus fresh scan noise.
"""


def write_dataset(
    out_dir: str | Path,
    n: int,
    *,
    n_test: int | None = None,
    size: int = 512,
    seed: int = 0,
    progress: bool = True,
    rgb: bool = False,
    from_cbs: str | Path | None = None,
    pair_options: dict | None = None,
) -> dict:
    """Write ``n`` aligned training pairs and ``n_test`` misaligned test pairs to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder (created; existing files of the same names are replaced).
    n
        Number of training pairs.
    n_test
        Number of test pairs (default ``max(1, n // 4)``; with ``from_cbs``, one per image).
    size
        Width and height of every image.
    seed
        Data-set seed; pair ``i`` of a split has seed :func:`pair_seed` ``(seed, split, i)``.
    progress
        Show a progress bar.
    rgb
        Colour LOM images.
    from_cbs
        Folder of real CBS images: the test pairs are built from them (crops of the real
        images with LOM-like renderings, see :func:`.pair_from_cbs`), cycling through the
        images; training pairs stay synthetic.
    pair_options
        Extra keyword arguments of :func:`.make_pair` (grain_size, twins, rotation_deg, ...).

    Returns
    -------
    The data-set description written to ``dataset.json``.
    """
    from tqdm import tqdm

    from ..io import atomic_write_text

    if n < 0 or (n_test is not None and n_test < 0):
        raise ValueError("numbers of pairs must be >= 0")
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    root = Path(out_dir)
    options = dict(pair_options or {})
    files = cbs_images(from_cbs) if from_cbs is not None else []
    if n_test is None:
        n_test = len(files) if files else max(1, n // 4)
    shape = (int(size), int(size))

    jobs: list[tuple[str, int]] = [("train", i) for i in range(n)] + [("test", i) for i in range(n_test)]
    entries: dict[str, list[dict]] = {"train": [], "test": []}
    cache: dict[Path, np.ndarray] = {}
    for split, i in tqdm(jobs, desc="synth", unit="pair", disable=not progress):
        s = pair_seed(seed, split, i)
        if split == "test" and files:
            from .fromcbs import pair_from_cbs, read_cbs

            path = files[i % len(files)]
            if path not in cache:
                cache.clear()
                cache[path] = read_cbs(path)
            name = f"{path.stem}_{i // len(files):02d}" if n_test > len(files) else path.stem
            pair_kw = {k: v for k, v in options.items() if k in ("intervals", "rotation_deg", "shift_px", "elastic_px")}
            pair = pair_from_cbs(cache[path], seed=s, shape=shape, rgb=rgb, name=name, **pair_kw)
            pair.meta["cbs_file"] = path.name
        else:
            pair = make_pair(shape, seed=s, deform=split == "test", rgb=rgb, name=f"{split}_{i:04d}", **options)
        entry = _write_pair(root, split, pair)
        entry["seed"] = s
        entries[split].append(entry)

    defaults = {"rotation_deg": [1.5, 4.0], "shift_px": [3.0, 8.0], "elastic_px": [1.0, 3.0], "intervals": 4}
    defaults.update(_jsonable(options))
    description = {
        "format": "styleunwarp-synth",
        "format_version": 1,
        "styleunwarp": __version__,
        "seed": int(seed),
        "size": int(size),
        "rgb": bool(rgb),
        "from_cbs": None if from_cbs is None else str(from_cbs),
        "conventions": {
            "source": "LOM (lom/)",
            "target": "CBS (cbs/)",
            "truth": "bUnwarpJ elastic file; direct transform: target pixel (x, y) -> absolute source position",
            "images": "grey: 32-bit float ImageJ TIFF, about 0..255; RGB: 8-bit RGB TIFF",
            "pair_seed": "styleunwarp.synth.pair_seed(seed, split, index); make_pair(shape, seed=...) reproduces a synthetic pair",
        },
        "parameters": defaults,
        "train": entries["train"],
        "test": entries["test"],
    }
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "dataset.json", json.dumps(description, indent=1) + "\n")
    command = f"styleunwarp synth OUT --n {n} --n-test {n_test} --size {size} --seed {seed}" + (" --rgb" if rgb else "") + (f" --from-cbs {from_cbs}" if from_cbs else "")
    readme = _README.format(
        version=__version__,
        command=command,
        n_train=n,
        n_test=n_test,
        test_kind=f" built from the real CBS images in `{from_cbs}` (crops, with LOM-like renderings of them)" if from_cbs else "",
        size=size,
        rot=_range(defaults["rotation_deg"]),
        shift=_range(defaults["shift_px"]),
        elastic=_range(defaults["elastic_px"]),
        intervals=defaults["intervals"],
        from_cbs_text=_FROM_CBS if from_cbs else "",
    )
    atomic_write_text(root / "README.md", readme)
    return description


def _range(r: Sequence[float]) -> str:
    return f"{r[0]:g} to {r[1]:g}"
