"""The ``lut`` representation: a pixelwise lookup table from the source's grey level or colour to the target's."""

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.errors import InputError
from styleunwarp.quality import ncc
from styleunwarp.style.representations import load
from styleunwarp.style.representations.lut import IntensityMap


def _field(seed: int, side: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.random((side, side)), 3.0)
    return (f - f.min()) / np.ptp(f)


def test_grey_table_learns_a_non_monotonic_relation_that_ncc_cannot_see():
    pairs = []
    for seed in range(3):
        s = _field(seed)
        pairs.append((s, np.abs(s - 0.5)))  # target bright at both ends of the source's range
    rep = IntensityMap.fit(pairs, channels=1)
    src, tgt = _field(9), np.abs(_field(9) - 0.5)
    mapped, target = rep.represent(src, tgt)
    assert mapped.shape == target.shape == src.shape and mapped.dtype == np.float32
    assert abs(ncc(src, tgt)) < 0.3  # the raw grey levels do not correlate
    assert ncc(mapped, target) > 0.85  # the mapped ones do
    assert 0 <= mapped.min() and mapped.max() <= 255.0


def test_colour_table_reads_what_luminance_mixes():
    # a stain's hue marks the target's structure; the luminance of the colours is the same everywhere
    pairs, structure = [], [_field(s) > 0.5 for s in range(4)]
    for m in structure:
        rgb = np.where(m[..., None], [0.8, 0.2, 0.5], [0.2, 0.378, 0.5]).astype(np.float32)  # equal BT.709 luminance
        rgb += np.random.default_rng(1).normal(0, 0.02, rgb.shape).astype(np.float32)
        pairs.append((rgb, m.astype(np.float32)))
    grey = IntensityMap.fit(pairs[:3], channels=1)
    colour = IntensityMap.fit(pairs[:3], channels=3)
    src, tgt = pairs[3]
    assert ncc(colour.represent(src, tgt)[0], tgt) > 0.9
    assert abs(ncc(grey.represent(src, tgt)[0], tgt)) < 0.5


def test_rare_bins_shrink_toward_the_mean_and_the_table_round_trips(tmp_path):
    s = np.zeros((64, 64), np.float32)
    s[0, 0] = 1.0  # one pixel in the top bin
    t = np.zeros_like(s)
    t[0, 0] = 1.0
    rep = IntensityMap.fit([(s, t)], channels=1)
    assert rep.table[-1] < 0.1  # one pixel is weak evidence: pulled toward the overall mean (about 0)
    section = rep.save(tmp_path)
    again = load(tmp_path, section)
    assert isinstance(again, IntensityMap) and np.allclose(again.table, rep.table, atol=1e-7)
    (tmp_path / section["weights"]).write_bytes(b"not a table")
    with pytest.raises(InputError, match="intensity map"):
        load(tmp_path, section)


def test_pairs_off_one_grid_are_refused():
    with pytest.raises(ValueError, match="one grid"):
        IntensityMap.fit([(_field(1, 16), _field(2, 16)[:, :15])], channels=1)


def test_auto_fits_the_table_and_register_uses_it(tmp_path):
    """``train --target auto`` with the lookup table as its only candidate, on pairs whose contrast is
    inverted with a gamma (SSD on the raw images fails there); ``register --model`` then loads the
    table from the card and registers a deformed held-out pair with it."""
    from click.testing import CliRunner

    from styleunwarp.cli import main
    from styleunwarp.io import write_tiff
    from styleunwarp.quality import tre
    from styleunwarp.style.auto import AutoConfig, train_auto
    from styleunwarp.style.heldout import make_cases
    from styleunwarp.transform import read_transform

    def pair(seed):
        t = _field(seed, 96) * 200 + 20
        s = 255.0 * (1.0 - t / 255.0) ** 1.7 + np.random.default_rng(seed + 100).normal(0, 2, t.shape)
        return s.astype(np.float32), t.astype(np.float32)

    for sub in ("lom", "cbs"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    for i in range(4):
        s, t = pair(i)
        write_tiff(tmp_path / "pairs" / "lom" / f"p{i}.tif", s)
        write_tiff(tmp_path / "pairs" / "cbs" / f"p{i}.tif", t)
    card = train_auto(tmp_path / "pairs", tmp_path / "m", AutoConfig(max_minutes=2.0, kinds=("lut",)))
    assert card["chain"]["representation"] == "lut" and card["representation"]["channels"] == 1
    assert (tmp_path / "m" / card["representation"]["weights"]).is_file()
    assert card["winner"]["within_5px"] >= 1
    # the winner scored again with its fine affine fit ending on blurred maps: kept only if it scores higher
    fits = [c.get("fine_sigmas") for c in card["candidates"]]
    assert fits == [None, [4.0, 2.0]], fits
    variant_won = card["winner"] is not None and card["winner"].get("fine_sigmas") == [4.0, 2.0]
    assert ("fine_sigmas" in card["chain"]) == variant_won
    assert "blurs 4, 2 px" in card["candidates"][1]["chain"]

    s, t = pair(11)
    case = make_cases([("x", s, t)], 2, seed=3)[1]
    write_tiff(tmp_path / "lom.tif", case.source)
    write_tiff(tmp_path / "cbs.tif", case.target)
    r = CliRunner().invoke(main, ["register", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--model",
                                  str(tmp_path / "m"), "--out", str(tmp_path / "reg"), "--no-second-opinion"])
    assert r.exit_code == 0, r.output
    metrics = __import__("json").loads((tmp_path / "reg" / "metrics.json").read_text())
    assert metrics["representation"] == "lut"
    assert metrics["fine_affine"]["fit_sigmas"] == (card["chain"].get("fine_sigmas") or [2.0, 1.0, 0.0])
    got = tre(read_transform(tmp_path / "reg" / "direct_transf.txt"), case.truth, case.target.shape, case.source.shape)
    assert got.mean < case.start_tre() and got.mean < 1.5
