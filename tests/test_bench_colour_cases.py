"""The benchmarks' colour-coded held-out cases (``bench_user_field.py --sets shale-hue``): a source
shown as hues is coded by the range of the field it came from, and a deformed copy keeps its empty
border black."""

from __future__ import annotations

import numpy as np

from conftest import load_benchmark
from styleunwarp.io import read_image, write_tiff


def _field(tmp_path, side: int = 160):
    """A grey source/target pair on one grid, as the data sets' folders hold them."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:side, 0:side]
    grey = (120 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 5, (side, side))).astype(np.float32)
    for sub, img in (("src", grey), ("tgt", 255 - grey)):
        (tmp_path / sub).mkdir()
        write_tiff(tmp_path / sub / "p.tif", img)
    return grey


def test_a_patch_is_coded_by_the_range_of_its_field():
    hue_coded = load_benchmark("bench_auto_candidates").hue_coded
    grey = np.linspace(0, 200, 100 * 100, dtype=np.float32).reshape(100, 100)
    patch = grey[10:40, 10:40]
    assert np.array_equal(hue_coded(patch, grey), hue_coded(grey)[10:40, 10:40])
    assert not np.array_equal(hue_coded(patch), hue_coded(grey)[10:40, 10:40])  # its own range would recode it


def test_recoded_cases_are_colour_with_a_black_border(tmp_path):
    grey = _field(tmp_path)
    hue_coded = load_benchmark("bench_auto_candidates").hue_coded
    bench = load_benchmark("bench_asdelivered")
    rigid = bench.rigid_patch_pairs(tmp_path, "src", "tgt", tmp_path / "rigid", 1, ["p.tif"], 96, recode=hue_coded)
    deformed = bench._deformed_real_pairs(tmp_path, "src", "tgt", tmp_path / "mixed", 1, None, names=["p.tif"],
                                          cycle="mixed", recode=hue_coded)
    patch = read_image(rigid[0]["lom"]).data
    assert patch.shape == (96, 96, 3)
    assert np.all(patch.max(axis=-1) >= 250)  # hues at full value: no empty border in a patch cut from the field
    moved = read_image(deformed[0]["lom"]).data
    assert moved.shape == grey.shape + (3,)
    border = moved.max(axis=-1) == 0
    assert 0 < border.mean() < 0.2  # the near-identity case's shift leaves a thin black margin, nothing more
    assert read_image(deformed[0]["cbs"]).data.ndim == 2  # the target stays grey


def test_held_out_cases_with_another_look_keep_their_structure_and_border(tmp_path):
    """``bench_user_field.py --held-out-look varied``: each case gets its own cast and tone curve (the
    structure's order kept), one draw per case from the seed, and a grey case's empty border stays black."""
    _field(tmp_path)
    uf = load_benchmark("bench_user_field")
    bench = load_benchmark("bench_asdelivered")
    hue_coded = load_benchmark("bench_auto_candidates").hue_coded
    grey = np.linspace(1, 250, 64 * 64).reshape(64, 64)
    coded = hue_coded(grey)
    looks = [uf.varied_look(coded, np.random.default_rng(s)) for s in range(3)]
    assert all(v.shape == coded.shape and v.dtype == np.uint8 for v in looks)
    assert all(np.abs(v.astype(int) - coded).mean() > 3 for v in looks)  # another look ...
    assert not np.array_equal(looks[0], looks[1])  # ... per draw
    g = uf.varied_look(grey.astype(np.uint8), np.random.default_rng(0))
    assert np.all(np.diff(g.ravel().astype(int)) >= 0)  # a grey ramp stays a ramp: the structure is unchanged
    first = uf.with_varied_look(None, 7)
    again = uf.with_varied_look(None, 7)
    assert np.array_equal(first(grey, grey), again(grey, grey))  # seeded
    cases = bench._deformed_real_pairs(tmp_path, "src", "tgt", tmp_path / "varied", 1, None, names=["p.tif"], cycle="mixed",
                                       recode=uf.with_varied_look(None, 1))
    moved = read_image(cases[0]["lom"]).data
    assert moved.ndim == 2  # grey stays grey
    assert 0 < (moved == 0).mean() < 0.2  # the shifted case's empty margin stays black


def test_every_user_field_set_names_real_pairs_and_its_rigid_cases():
    """Each set of ``bench_user_field.py`` reads one of the real pair folders, has its rigid-case geometry,
    and every recoded (colour) set is one of them: a set added without its geometry fails here, not
    an hour into a benchmark."""
    user_field = load_benchmark("bench_user_field")
    real = load_benchmark("bench_asdelivered").REAL_PAIRS
    assert set(user_field.SETS) == set(user_field.RIGID_CASES)
    as_published = {(folder, frozenset((src, tgt))) for folder, src, tgt in real.values()}
    assert {(folder, frozenset((src, tgt))) for folder, src, tgt in user_field.SETS.values()} == as_published
    assert all(src != tgt for _, src, tgt in user_field.SETS.values())
    assert ("petrography-bse-se", "se", "bse") in user_field.SETS.values()  # one set in the other direction
    assert user_field.RECODED <= set(user_field.SETS) and {"shale-hue", "clem-hue"} <= user_field.RECODED
    assert all(side > 0 and per_pair > 0 for side, per_pair in user_field.RIGID_CASES.values())
